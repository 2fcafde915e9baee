"""Relay throughput: N messages through EmailSubmission/set to an SMTP sink on loopback.

    .venv/bin/python -m bench.relay [--messages 500] [--recipients 1] [--threads 1]
                                    [--database postgres://postgres@127.0.0.1:5432/groupware_relay_bench]

Runs in one process against a fresh database (SQLite in a temporary directory by default;
a PostgreSQL URL whose database name contains "bench" is dropped and recreated) with an
aiosmtpd sink as the smarthost. Phase 1 creates the drafts (Email/set, not timed). Phase 2
submits them, one EmailSubmission/set per message, through the JMAP API in-process (the
checks, DKIM signing and queueing). Phase 3 runs the relay (``relay_message`` for every
queued message, in ``--threads`` threads, like that many Celery workers) until the sink has
them all. Prints messages/s for phases 2 and 3 and end to end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import free_port, recreate_database


class _Sink:
    def __init__(self) -> None:
        self.count = 0
        self.octets = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            self.octets += len(envelope.original_content)
        return "250 2.0.0 Ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--recipients", type=int, default=1, help="remote recipients per message")
    parser.add_argument("--threads", type=int, default=1, help="relay threads (like Celery workers)")
    parser.add_argument("--database", default=None, help="postgres://... (default: SQLite in a temp dir)")
    parser.add_argument("--dkim", action="store_true", help="sign with a DKIM key (RSA 2048)")
    options = parser.parse_args()

    from aiosmtpd.controller import Controller

    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()

    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="relay-bench-")
    os.environ["FAST_PASSWORD_HASHER"] = "true"
    os.environ["SUBMISSION_SMARTHOST"] = f"smtp://127.0.0.1:{port}"
    os.environ["SUBMISSION_MESSAGES_PER_HOUR"] = str(options.messages * 2)
    os.environ["SUBMISSION_RECIPIENTS_PER_DAY"] = str(options.messages * options.recipients * 2)
    os.environ["SUBMISSION_MAX_RECIPIENTS"] = str(max(options.recipients, 1))
    os.environ.pop("REDIS_URL", None)
    if options.database:
        recreate_database(options.database, "bench.relay")
        os.environ["DATABASE_URL"] = options.database
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "groupware.settings"
    os.environ["LOG_LEVEL"] = "WARNING"

    import django

    django.setup()
    import orjson
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    settings.SUBMISSION_DISPATCH = "manual"  # the relay phase is timed on its own
    call_command("migrate", verbosity=0)

    from accounts.services import domain_create, user_create
    from groupware.mail.models import Mailbox
    from groupware.mail.submission.dkim_keys import dkim_key_generate
    from groupware.mail.submission.models import OutboundMessage
    from groupware.mail.submission.relay import due_message_pks, relay_message

    user = user_create(email="sender@example.com", password="bench-password-1234", name="Sender")
    if options.dkim:
        dkim_key_generate(domain=domain_create(name="example.com"), selector="bench")
    account = user.jmap_accounts.get()
    drafts = Mailbox.objects.get(account=account, role="drafts")
    client = Client()
    client.force_login(user)
    import base64

    auth = "Basic " + base64.b64encode(b"sender@example.com:bench-password-1234").decode()
    using = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"]

    def call(name: str, arguments: dict) -> dict:
        body = {"using": using, "methodCalls": [[name, {"accountId": account.jmap_id, **arguments}, "0"]]}
        response = client.post("/jmap/api/", orjson.dumps(body), content_type="application/json",
                                HTTP_AUTHORIZATION=auth)  # fmt: skip
        answer = orjson.loads(response.content)["methodResponses"][0]
        assert answer[0] == name, answer
        return answer[1]

    from groupware.core.ids import encode

    identity = call("Identity/get", {"ids": None})["list"][0]["id"]
    recipients = [{"name": None, "email": f"user{n}@remote.test"} for n in range(options.recipients)]
    text = "Benchmark message body line.\n" * 40  # about 1.2 KB
    email_ids = []
    for index in range(options.messages):
        created = call("Email/set", {"create": {"d": {
            "mailboxIds": {encode("m", drafts.pk): True}, "keywords": {"$draft": True},
            "from": [{"name": "Sender", "email": "sender@example.com"}], "to": recipients,
            "subject": f"Message {index}", "bodyStructure": {"type": "text/plain", "partId": "1"},
            "bodyValues": {"1": {"value": text}},
        }}})["created"]  # fmt: skip
        email_ids.append(created["d"]["id"])

    start = time.perf_counter()
    for email_id in email_ids:
        result = call("EmailSubmission/set", {"create": {"s": {"identityId": identity, "emailId": email_id}}})
        assert result["created"], result
    submitted = time.perf_counter()
    pks = due_message_pks(limit=options.messages + 10)
    assert len(pks) == options.messages

    def run(chunk: list[int]) -> None:
        try:
            for pk in chunk:
                relay_message(pk)
        finally:
            connection.close()

    if options.threads == 1:
        for pk in pks:  # in this thread, so a profiler sees it
            relay_message(pk)
    else:
        chunks = [pks[n :: options.threads] for n in range(options.threads)]
        with ThreadPoolExecutor(max_workers=options.threads) as pool:
            list(pool.map(run, chunks))
    relayed = time.perf_counter()
    controller.stop()
    unfinished = OutboundMessage.objects.filter(finished__isnull=True).count()
    assert sink.count == options.messages and unfinished == 0, (sink.count, unfinished)
    backend = "PostgreSQL" if options.database else "SQLite"
    print(f"relay benchmark: {options.messages} messages x {options.recipients} recipient(s), {backend}, "
          f"{options.threads} relay thread(s), DKIM {'on' if options.dkim else 'off'}, "
          f"{sink.octets // options.messages} octets each at the sink")  # fmt: skip
    print(f"  EmailSubmission/set (checks, queueing): {options.messages / (submitted - start):8.1f} messages/s")
    print(f"  relay to the sink:                      {options.messages / (relayed - submitted):8.1f} messages/s")
    print(f"  end to end:                             {options.messages / (relayed - start):8.1f} messages/s")


if __name__ == "__main__":
    main()
