"""Celery tasks run end to end: in a real worker process with Redis, in-process without it.

With REDIS_URL set, a worker subprocess (``celery -A groupware worker --pool=solo``) is started
against the same test database and a task sent through Redis must write to that database
from the worker's process. Without REDIS_URL (the embedded default) the same task runs inside
the caller's process (CELERY_TASK_ALWAYS_EAGER). CI runs the suite both ways, so each test
here runs in one of the two runs and is skipped, with the reason, in the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import Account, User
from accounts.services import user_create
from groupware.celery import app as celery_app
from groupware.core.models import ObjectChange
from tests.celery_probe import user_create_here

ROOT = Path(__file__).resolve().parent.parent


def database_url_for_worker() -> str | None:
    """DATABASE_URL naming the database this test run uses, or None when no other process can
    open it (SQLite's test database is in memory)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.postgresql":
        credentials = quote(db["USER"], safe="")
        if db["PASSWORD"]:
            credentials += ":" + quote(db["PASSWORD"], safe="")
        return f"postgres://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"
    name = str(db["NAME"])
    if db["ENGINE"] == "django.db.backends.sqlite3" and "memory" not in name and name != ":memory:":
        return f"sqlite:///{name}"
    return None


class Worker:
    def __init__(self, queue: str, database_url: str) -> None:
        self.queue = queue
        self.lines: list[str] = []
        self.ready = threading.Event()
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url}
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "groupware", "worker", "--pool=solo",
                "-I", "tests.celery_probe", "-Q", queue, "-n", f"{queue}@%h", "--loglevel=INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if " ready." in line:
                self.ready.set()

    def log(self) -> str:
        return "\n".join(self.lines[-60:])

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the Celery worker did not start:\n{self.log()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker):
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set, so there is no broker for a worker; CI's run with REDIS_URL covers this")
    database_url = database_url_for_worker()  # the test database's name is known from here on
    if database_url is None:
        pytest.skip(
            "the test database is in-memory SQLite, which a worker process cannot open; "
            "CI's run with DATABASE_URL=postgres://... covers this"
        )
    # A queue of its own, so that no other worker on the same Redis takes the tasks.
    running = Worker(f"test-{uuid.uuid4().hex[:12]}", database_url)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()  # before the test database is dropped


def wait_for(condition, worker: Worker, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s; worker log:\n{worker.log()}")


@pytest.mark.django_db(transaction=True)
def test_task_runs_in_a_real_worker_against_the_same_database(worker):
    assert not celery_app.conf.task_always_eager
    email = f"{worker.queue}@example.com"
    user_create_here.apply_async(args=[email], queue=worker.queue)

    user = wait_for(lambda: User.objects.filter(email=email).first(), worker, "the worker's write")
    # Written by the worker's process, through the service (the personal account exists too).
    assert user.name == f"created by pid {worker.process.pid}"
    assert worker.process.pid != os.getpid()
    assert user.jmap_accounts.filter(is_personal=True).count() == 1
    wait_for(
        lambda: any("tests.celery_probe.user_create_here" in line and "succeeded" in line for line in worker.lines),
        worker,
        "the worker's 'succeeded' log line",
    )


@pytest.mark.django_db(transaction=True)
def test_maintenance_task_purge_changes_runs_in_the_worker(worker):
    """The real periodic task, sent by name as beat sends it, on the database the test sees."""
    account = user_create(email="purge@example.com").jmap_accounts.get(is_personal=True)
    old = timezone.now() - timedelta(seconds=settings.JMAP_CHANGES_RETENTION + 3600)
    ObjectChange.objects.create(
        account=account, type_name="Note", object_id="gone", created_modseq=1, modseq=2, destroyed=True, changed=old
    )
    ObjectChange.objects.create(account=account, type_name="Note", object_id="recent", created_modseq=3, modseq=4)

    celery_app.send_task("groupware.core.tasks.purge_changes", queue=worker.queue)

    wait_for(lambda: not ObjectChange.objects.filter(object_id="gone").exists(), worker, "the purge")
    notes = ObjectChange.objects.filter(account=account, type_name="Note")
    assert list(notes.values_list("object_id", flat=True)) == ["recent"]
    wait_for(lambda: Account.objects.get(pk=account.pk).purged_modseq == 2, worker, "the purge floor update")


@pytest.mark.django_db
def test_embedded_default_runs_the_task_in_process():
    if settings.REDIS_URL:
        pytest.skip("REDIS_URL is set, so tasks go to the broker; CI's embedded run (no REDIS_URL) covers this")
    assert settings.CELERY_TASK_ALWAYS_EAGER is True
    assert celery_app.conf.task_always_eager is True

    result = user_create_here.delay("eager@example.com")

    user = User.objects.get(email="eager@example.com")
    assert result.get() == user.pk
    assert user.name == f"created by pid {os.getpid()}"
    assert user.jmap_accounts.filter(is_personal=True).count() == 1


def test_task_failures_propagate_in_the_embedded_default(db):
    """A failing task raises in the caller instead of being lost (CELERY_TASK_EAGER_PROPAGATES)."""
    if settings.REDIS_URL:
        pytest.skip("REDIS_URL is set, so tasks go to the broker; CI's embedded run (no REDIS_URL) covers this")
    user_create_here.delay("twice@example.com")
    with pytest.raises(Exception, match="already exists"):
        user_create_here.delay("twice@example.com")


@pytest.mark.django_db
def test_embedded_default_runs_purge_changes_in_process():
    if settings.REDIS_URL:
        pytest.skip("REDIS_URL is set, so tasks go to the broker; CI's embedded run (no REDIS_URL) covers this")
    from groupware.core.tasks import purge_changes

    account = user_create(email="purge@example.com").jmap_accounts.get(is_personal=True)
    old = timezone.now() - timedelta(seconds=settings.JMAP_CHANGES_RETENTION + 3600)
    ObjectChange.objects.create(
        account=account, type_name="Note", object_id="gone", created_modseq=1, modseq=2, destroyed=True, changed=old
    )

    assert purge_changes.delay().get() == 1

    assert not ObjectChange.objects.filter(object_id="gone").exists()
    assert Account.objects.get(pk=account.pk).purged_modseq == 2
