"""The LMTP (RFC 2033) and SMTP (RFC 5321) listeners, on aiosmtpd.

Both accept mail for local recipients only (unknown ones are refused at RCPT with 550, so
the SMTP port is no open relay) and hand each message to ``deliver_message`` in a thread
pool (the database work is synchronous); with ``workers``, worker processes serve the
connections, each with its own pool (groupware.mail.delivery.workers). LMTP answers once
per recipient after DATA; SMTP answers once: 451 if any recipient failed temporarily (a
retransmission is deduplicated for the recipients that already have it), else 250 if any
was delivered.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax
from django.db import DatabaseError, close_old_connections, connections

from groupware.mail.delivery.recipients import recipient_cached, recipient_resolve_cached
from groupware.mail.delivery.services import (
    LOCAL_ERROR,
    DeliveryResult,
    deliver_message,
    mail_hostname,
    temporary_failure,
    unknown_recipient,
)
from groupware.mail.delivery.workers import ConnectionWorkers
from groupware.mail.services.emails import max_message_size

logger = logging.getLogger(__name__)

# Lines longer than RFC 5321's 1000 octets are common in real mail: accept them up to this
# (stored as they are); past it the whole message is refused with 500 after DATA.
MAX_LINE_LENGTH = 256 * 1024
MAX_RECIPIENTS = 1000
RCPT_OK = "250 2.1.5 OK"


def check_recipient(address: str) -> str:
    """The RCPT reply for an address (runs in a worker thread)."""
    close_old_connections()
    try:
        recipient = recipient_resolve_cached(address)
    except DatabaseError:
        logger.warning("database unavailable at RCPT %s", address, exc_info=True)
        close_old_connections()
        return temporary_failure(address).reply
    except Exception:
        logger.exception("RCPT %s failed", address)
        return temporary_failure(address, LOCAL_ERROR).reply
    if recipient is None:
        return unknown_recipient(address).reply
    return RCPT_OK


def null_sender(mail_from: str | None) -> str:
    """The reverse-path without brackets; aiosmtpd hands the null sender over as "<>"."""
    value = (mail_from or "").strip()
    return "" if value in ("", "<>") else value


def smtp_reply(results: list[DeliveryResult]) -> str:
    """One SMTP reply for every recipient's result (see the module doc)."""
    temporary = [result for result in results if result.temporary]
    if temporary:
        return temporary[0].reply
    delivered = [result for result in results if result.ok]
    if delivered:
        return "250 2.0.0 delivered"
    return results[0].reply


class DeliveryHandler:
    """aiosmtpd handler hooks shared by the LMTP and SMTP servers."""

    def __init__(self, executor: ThreadPoolExecutor, protocol: str) -> None:
        self.executor = executor  # where RCPT checks and deliveries run: this process's threads
        self.protocol = protocol

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        if recipient_cached(address) is not None:
            reply = RCPT_OK  # known moments ago: no thread, no query
        else:
            reply = await asyncio.get_running_loop().run_in_executor(self.executor, check_recipient, address)
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")
        try:
            delivery = partial(
                deliver_message,
                raw=bytes(raw),
                mail_from=null_sender(envelope.mail_from),
                recipients=list(envelope.rcpt_tos),
                helo=session.host_name,
                peer=peer,
                protocol=self.protocol,
                cached_recipients=True,
            )
            results = await asyncio.get_running_loop().run_in_executor(self.executor, delivery)
        except Exception:
            logger.exception("delivery failed")
            results = [temporary_failure(rcpt, LOCAL_ERROR) for rcpt in envelope.rcpt_tos]
        if self.protocol == "LMTP":
            # RFC 2033 §4.2: one reply per successful RCPT, in order.
            return "\r\n".join(result.reply for result in results)
        return smtp_reply(results)


# A path as nearly every MTA sends it: <dot-atom@dot-atom>, then parameters. aiosmtpd
# parses every path with the email package's header grammar (and defines a class on each
# call): a third of the listener's CPU. Anything else still goes that way.
_SIMPLE_PATH = re.compile(
    r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+([^(\"]*))?"
)


# RFC 5321 §4.1.1.4: the mail data ends with a line holding a single ".".
_END_OF_DATA = b"\r\n.\r\n"
# Everything buffered in one read: the reader buffers at most twice its line limit.
_READ_BUFFERED = 1 << 30
DATA_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
DATA_TOO_MUCH = "552 Error: Too much mail data"


class _Limits:
    line_length_limit = MAX_LINE_LENGTH

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_PATH.fullmatch(arg.strip()) if arg else None
        if match is None:
            return super()._getaddr(arg)  # type: ignore[misc]
        local, domain, rest = match.groups()
        if self.local_part_limit and len(local) > self.local_part_limit:  # type: ignore[attr-defined]
            return None, None
        return f"{local}@{domain}", rest or ""

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """DATA read in blocks, not line by line as aiosmtpd reads it (a Python step and an
        await per line: most of the listener's time for a message of a few hundred
        lines). The same replies: 354, then the handler's, or 500 for a line over
        ``line_length_limit`` or 552 past ``data_size_limit``, whichever came first, after
        the whole data has been read; the dot-stuffing undone (RFC 5321 §4.5.2)."""
        if self._decode_data:  # type: ignore[attr-defined]
            return await super().smtp_DATA(arg)  # type: ignore[misc]
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):  # type: ignore[attr-defined]
            return None
        if not self.envelope.rcpt_tos:  # type: ignore[attr-defined]
            return await self.push("503 Error: need RCPT command")  # type: ignore[attr-defined]
        if arg:
            return await self.push("501 Syntax: DATA")  # type: ignore[attr-defined]
        await self.push("354 End data with <CR><LF>.<CR><LF>")  # type: ignore[attr-defined]
        read = await self._data_octets()
        if read is None:  # the connection closed before the end of the data
            return None
        content, refusal = read
        if refusal is not None:
            await self.push(refusal)  # type: ignore[attr-defined]
            return self._set_post_data_state()  # type: ignore[attr-defined]
        self.envelope.content = self.envelope.original_content = content  # type: ignore[attr-defined]
        status = await self._call_handler_hook("DATA")  # type: ignore[attr-defined]
        self._set_post_data_state()  # type: ignore[attr-defined]
        return await self.push("250 OK" if status is MISSING else status)  # type: ignore[attr-defined]

    async def _data_octets(self) -> tuple[bytes, str | None] | None:
        """The mail data up to the line holding a single "." (the content, unstuffed, and
        None; or b"" and the refusal), or None if the connection closed first. Whatever the
        client sent after the end (pipelined commands) is left to be read next."""
        reader: asyncio.StreamReader = self._reader  # type: ignore[attr-defined]
        size_limit = self.data_size_limit or 0  # type: ignore[attr-defined]
        data = bytearray()
        refusal: str | None = None
        # The search context before each block: the last octets before it (at first, the
        # DATA command's line break, so a "." right away ends empty data).
        before = b"\r\n"
        while True:
            block = await reader.read(_READ_BUFFERED)
            if not block:
                return None
            window = before + block
            end = window.find(_END_OF_DATA)
            if end < 0:
                kept = block
                before = window[-(len(_END_OF_DATA) - 1) :]
            else:
                # Through the line break before the ".", which may have come already.
                kept = window[len(before) : end + 2]
                early = len(before) - (end + 2)
                if early > 0 and refusal is None:
                    del data[len(data) - early :]
                rest = window[end + len(_END_OF_DATA) :]
                if rest and not reader.at_eof():
                    reader.feed_data(rest)  # the buffer was read empty: the rest comes first
            if refusal is None:
                data += kept
                if size_limit and len(data) > size_limit:
                    refusal = self._data_refusal(data, size_limit)
                    data = bytearray()  # past the limit the data is read to its end and dropped
            if end >= 0:
                break
        if refusal is not None:
            return b"", refusal
        if len(data) > self.line_length_limit - 2 and self._longest_line(data) > self.line_length_limit:
            return b"", DATA_TOO_LONG
        content = bytes(data)
        if content.startswith(b"."):
            content = content[1:]
        return content.replace(b"\r\n.", b"\r\n"), None

    def _data_refusal(self, received: bytearray, size_limit: int) -> str:
        """The refusal of data past ``data_size_limit``: 500 if a line before the limit was
        already too long (that came first), else 552."""
        head = received[: size_limit + 1]
        return DATA_TOO_LONG if self._longest_line(head) > self.line_length_limit else DATA_TOO_MUCH

    @staticmethod
    def _longest_line(data: bytes | bytearray) -> int:
        """The longest line's length with its CRLF (the unit of ``line_length_limit``)."""
        return max(map(len, data.split(b"\r\n"))) + 2


class LmtpServer(_Limits, LMTP):
    # aiosmtpd refuses an oversized DATA with one reply; LMTP owes one per recipient.
    _data_refusals = (DATA_TOO_MUCH, DATA_TOO_LONG)
    _in_data = False

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        self._in_data = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_data = False

    async def push(self, status: Any) -> None:
        text = status.decode() if isinstance(status, bytes) else str(status)
        envelope = self.envelope
        if self._in_data and text.startswith(self._data_refusals) and envelope is not None:
            for _ in envelope.rcpt_tos[1:]:
                await super().push(status)
        await super().push(status)


class SmtpServer(_Limits, SMTP):
    pass


@dataclass
class Listener:
    protocol: str
    host: str
    port: int


def parse_listen(value: str | None) -> tuple[str, int] | None:
    """ "host:port" (IPv6 as "[::1]:port"), or None for "off"/empty."""
    if value is None or value.strip().lower() in ("", "off", "none", "no"):
        return None
    host, _, port = value.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def quiet_protocol_log() -> None:
    """aiosmtpd's own log says every command at INFO: far too much for a mail server."""
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().getEffectiveLevel()))


def protocol_factory(
    protocol: str, executor: ThreadPoolExecutor, loop: asyncio.AbstractEventLoop
) -> Callable[[], SMTP]:
    """The protocol instance of each new LMTP or SMTP connection, delivering in ``executor``."""
    cls = LmtpServer if protocol == "LMTP" else SmtpServer
    handler = DeliveryHandler(executor, protocol)
    hostname = mail_hostname()

    def factory() -> SMTP:
        return cls(
            handler,
            hostname=hostname,
            data_size_limit=max_message_size(),  # per connection: settings may change
            enable_SMTPUTF8=True,
            decode_data=False,
            ident="groupware",
            loop=loop,
        )

    return factory


async def serve_mail(
    *,
    lmtp: tuple[str, int] | None,
    smtp: tuple[str, int] | None,
    threads: int,
    started: Callable[[list[Listener]], None] | None = None,
    stop: asyncio.Event | None = None,
    reuse_port: bool = False,
    workers: int = 0,
) -> None:
    """Run the listeners until ``stop`` is set (forever without one). ``workers`` > 0: that
    many worker processes serve the connections, each delivering in ``threads`` threads
    (groupware.mail.delivery.workers); 0: this process serves them, delivering in
    ``threads`` threads."""
    quiet_protocol_log()
    addresses = [(protocol, address) for protocol, address in (("LMTP", lmtp), ("SMTP", smtp)) if address is not None]
    if workers > 0:
        await _serve_with_workers(addresses, threads, started, stop, reuse_port, workers)
        return
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="delivery")
    servers: list[asyncio.base_events.Server] = []
    listeners: list[Listener] = []
    for protocol, address in addresses:
        factory = protocol_factory(protocol, executor, loop)
        server = await loop.create_server(factory, host=address[0], port=address[1], reuse_port=reuse_port or None)
        servers.append(server)
        bound = server.sockets[0].getsockname()
        listeners.append(Listener(protocol, bound[0], bound[1]))
    if started is not None:
        started(listeners)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()
        # Only threads that ran hold a connection (the pool starts them on demand).
        started_threads = len(getattr(executor, "_threads", ())) or 0
        if started_threads:
            await loop.run_in_executor(None, close_thread_connections, executor, started_threads)
        executor.shutdown(wait=True)


async def _serve_with_workers(
    addresses: list[tuple[str, tuple[str, int]]],
    threads: int,
    started: Callable[[list[Listener]], None] | None,
    stop: asyncio.Event | None,
    reuse_port: bool,
    workers: int,
) -> None:
    """Accept here, hand every connection to a worker process (ConnectionWorkers)."""
    loop = asyncio.get_running_loop()
    pool = ConnectionWorkers(workers, threads, loop)
    pool.start()
    sockets: list[socket.socket] = []
    listeners: list[Listener] = []
    try:
        for protocol, (host, port) in addresses:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, port), family=family, backlog=128, reuse_port=reuse_port)
            sock.setblocking(False)
            sockets.append(sock)
            pool.keep_from_workers(sock)
            bound = sock.getsockname()
            listeners.append(Listener(protocol, bound[0], bound[1]))

            def accept(sock: socket.socket = sock, protocol: str = protocol) -> None:
                while True:
                    try:
                        connection, _peer = sock.accept()
                    except (BlockingIOError, InterruptedError):
                        return
                    except OSError:
                        logger.warning("accepting a %s connection failed", protocol, exc_info=True)
                        return
                    pool.hand_over(connection, protocol)

            loop.add_reader(sock, accept)
        if started is not None:
            started(listeners)
        await (stop or asyncio.Event()).wait()
    finally:
        for sock in sockets:
            loop.remove_reader(sock)
            sock.close()
        await pool.stop()


def close_thread_connections(executor: ThreadPoolExecutor, threads: int) -> None:
    """Close the database connection each delivery thread holds (one task per thread: the
    barrier keeps every task on its own thread)."""
    barrier = threading.Barrier(threads, timeout=10)

    def close() -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        connections.close_all()

    for future in [executor.submit(close) for _ in range(threads)]:
        future.result()
