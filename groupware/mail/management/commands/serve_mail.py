"""manage.py serve_mail: the LMTP and SMTP listeners (groupware.mail.delivery.server)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from groupware.mail.delivery.server import Listener, parse_listen, serve_mail


class Command(BaseCommand):
    help = "Receive mail over LMTP and SMTP (defaults: MAIL_LMTP_LISTEN, MAIL_SMTP_LISTEN)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--lmtp", default=None, help='"host:port" (port 0: any free port), or "off"')
        parser.add_argument("--smtp", default=None, help='"host:port" (port 0: any free port), or "off"')
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="delivery threads of each process that delivers (MAIL_DELIVERY_THREADS)",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="worker processes that serve the connections (MAIL_DELIVERY_WORKERS); 0: this process does",
        )
        parser.add_argument(
            "--reuse-port", action="store_true", help="SO_REUSEPORT: several serve_mail processes share the ports"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            lmtp = parse_listen(options["lmtp"] if options["lmtp"] is not None else settings.MAIL_LMTP_LISTEN)
            smtp = parse_listen(options["smtp"] if options["smtp"] is not None else settings.MAIL_SMTP_LISTEN)
        except ValueError as error:
            raise CommandError(f"bad listen address: {error}") from None
        if lmtp is None and smtp is None:
            raise CommandError("both listeners are off")
        threads = options["threads"] or settings.MAIL_DELIVERY_THREADS
        workers = options["workers"] if options["workers"] is not None else settings.MAIL_DELIVERY_WORKERS
        if workers < 0:
            raise CommandError("--workers must be 0 or more")
        asyncio.run(self._run(lmtp, smtp, threads, options["reuse_port"], workers))

    async def _run(
        self, lmtp: tuple[str, int] | None, smtp: tuple[str, int] | None, threads: int, reuse_port: bool, workers: int
    ) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

        def started(listeners: list[Listener]) -> None:
            for listener in listeners:
                # Tests and scripts read this line to learn the port (port 0 picks one).
                self.stdout.write(f"serve_mail: {listener.protocol} listening on {listener.host}:{listener.port}")
            self.stdout.flush()

        await serve_mail(
            lmtp=lmtp, smtp=smtp, threads=threads, started=started, stop=stop, reuse_port=reuse_port, workers=workers
        )
