"""The relay task in a real Celery worker process (with Redis and PostgreSQL)."""

from __future__ import annotations

import os
import uuid

import pytest
from django.conf import settings

from groupware.celery import app as celery_app
from groupware.mail.submission.models import OutboundMessage, OutboundRecipient
from tests.mail.submission.conftest import SendApi
from tests.mail.submission.smtp import SmtpServer
from tests.test_celery_worker import Worker, database_url_for_worker, wait_for


@pytest.fixture(scope="module")
def sink_and_worker(django_db_setup, django_db_blocker):
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set, so there is no broker for a worker; CI's run with REDIS_URL covers this")
    database_url = database_url_for_worker()
    if database_url is None:
        pytest.skip("the test database is in-memory SQLite, which a worker process cannot open")
    with SmtpServer() as sink:
        previous = os.environ.get("SUBMISSION_SMARTHOST")
        os.environ["SUBMISSION_SMARTHOST"] = f"smtp://127.0.0.1:{sink.port}"
        try:
            worker = Worker(f"test-relay-{uuid.uuid4().hex[:12]}", database_url)
        finally:
            if previous is None:
                os.environ.pop("SUBMISSION_SMARTHOST", None)
            else:
                os.environ["SUBMISSION_SMARTHOST"] = previous
        try:
            worker.wait_ready()
            yield sink, worker
        finally:
            worker.stop()


@pytest.mark.django_db(transaction=True)
def test_relay_task_sends_from_the_worker(sink_and_worker, user):
    from tests.conftest import JmapClient

    sink, worker = sink_and_worker
    api = SendApi(JmapClient(user))
    created = api.submit(api.draft(subject="via worker"))["created"]["s"]
    outbound = OutboundMessage.objects.get()
    celery_app.send_task("groupware.mail.submission.tasks.relay_message", args=[outbound.pk], queue=worker.queue)
    wait_for(lambda: sink.messages, worker, "the message at the sink")
    wait_for(lambda: OutboundRecipient.objects.get().state == "sent", worker, "the recorded outcome")
    # Sent twice (a redelivered task): nothing is sent again.
    celery_app.send_task("groupware.mail.submission.tasks.relay_message", args=[outbound.pk], queue=worker.queue)
    wait_for(
        lambda: sum("relay_message" in line and "succeeded" in line for line in worker.lines) >= 2,
        worker,
        "the second run",
    )
    assert len(sink.messages) == 1
    assert b"Subject: via worker" in sink.messages[0].data
    assert api.submission(created["id"])["undoStatus"] == "final"
