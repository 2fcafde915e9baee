"""Delivery in worker processes: one serve_mail uses every core.

Delivering is CPU-bound Python (parsing, Sieve, the search index), so the threads of one
process share one core. With ``ConnectionWorkers`` the serve_mail process only accepts
connections and hands each one (its file descriptor, over a Unix socket) to one of
``processes`` worker processes, in turn. A worker speaks LMTP/SMTP on the
connections it was given and delivers in its own threads, with Django set up and its own
database connections: a message crosses no process boundary (handing every message to a
pool of processes cost the listener more CPU than reading it).

A worker that dies (killed, out of memory) takes its connections with it: their senders see
the connection drop before any 250 for what was not stored, and retry (the retransmission
dedup of ``deliver_message`` keeps a delivery that committed just before the crash from
being stored twice). It is replaced at once, and new connections go to the live workers.
Workers die with serve_mail (a parent-death signal on Linux).

On Linux a worker is a fork of serve_mail, which has set Django up
and built what a first delivery would otherwise build (``warm_up``): a worker serves at once,
where a freshly spawned interpreter spent about a second setting Django up (each time
serve_mail or a worker restarts), and the workers share those pages with serve_mail. The
child keeps none of serve_mail's descriptors it must not hold (the listening sockets, the
other workers' control sockets, serve_mail's end of its own) nor its database connections.
Elsewhere workers are spawned.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

logger = logging.getLogger(__name__)

# What a handed-over connection speaks: one octet sent with its descriptor.
PROTOCOL_CODES = {"LMTP": b"L", "SMTP": b"S"}


def warm_up() -> None:
    """Build, in serve_mail before it forks its workers, what every delivery uses and a first
    one would otherwise build: the delivery modules, the Web Push dispatch the state change
    after a commit imports, and the search tokenizer's patterns (a scan of every Unicode
    code point)."""
    import groupware.mail.delivery.services  # the store, Sieve, MIME
    import groupware.push.webpush  # noqa: F401
    from groupware.mail import search

    search.warm_up()


# A forked worker's references to serve_mail's database connections: never closed there.
_inherited_connections: list[Any] = []


def _forget_parent_state(inherited: list[socket.socket]) -> None:
    """In a forked worker: drop what belongs to serve_mail. Its descriptors that the worker
    must not hold are closed (a listening socket held here would outlive serve_mail; a control
    socket end held here would keep its worker from seeing serve_mail close it); its event
    loop, running in the thread that forked, is left untouched (its epoll set and wake-up
    pipe are serve_mail's: closing the loop here would unregister them there; asyncio
    already tells a forked process that no loop runs in it), and signals no longer wake it;
    its database connections are kept referenced but unused (closing one would end
    serve_mail's session on the shared socket), and Django opens new ones."""
    for sock in inherited:
        sock.close()
    signal.set_wakeup_fd(-1)
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            _inherited_connections.append(connection.connection)
            connection.connection = None


def _worker_start() -> None:
    """In each worker: die with serve_mail (Linux), then set up Django (a no-op in a fork)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:  # not Linux: the control socket closing ends the worker instead
        logger.debug("no parent-death signal for this worker", exc_info=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # serve_mail decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "groupware.settings")
    import django

    django.setup()


def _serve_connections(control: socket.socket, threads: int, inherited: list[socket.socket] | None = None) -> None:
    """A worker process's life: serve the connections that arrive on ``control`` until it
    closes (serve_mail stopping), then finish the deliveries under way. ``inherited``: in
    a fork, serve_mail's sockets to close (see ``_forget_parent_state``)."""
    if inherited is not None:
        _forget_parent_state(inherited)
    _worker_start()
    asyncio.run(_worker_loop(control, threads))


async def _worker_loop(control: socket.socket, threads: int) -> None:
    from django.db import connections

    from groupware.mail.delivery.server import close_thread_connections, protocol_factory, quiet_protocol_log

    quiet_protocol_log()
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="delivery")
    live: weakref.WeakSet[Any] = weakref.WeakSet()
    factories = {}
    for protocol, code in PROTOCOL_CODES.items():
        make = protocol_factory(protocol, executor, loop)

        def factory(make: Callable[[], Any] = make) -> Any:
            server = make()
            live.add(server)
            return server

        factories[code[0]] = factory
    closed = asyncio.Event()
    adopting: set[asyncio.Task[None]] = set()
    control.setblocking(False)

    def receive() -> None:
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(control, 1, 1)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                for fd in fds:
                    os.close(fd)
                loop.remove_reader(control)
                closed.set()
                return
            for fd in fds:
                connection = socket.socket(fileno=fd)
                factory = factories.get(data[0])
                if factory is None:
                    connection.close()
                    continue
                task = loop.create_task(_adopt(loop, factory, connection))
                adopting.add(task)
                task.add_done_callback(adopting.discard)

    loop.add_reader(control, receive)
    await closed.wait()
    # Stopping: the sessions end (their senders retry what was not answered 250); a
    # delivery under way still runs to its end in its thread before the process exits.
    for server in list(live):
        transport = getattr(server, "transport", None)
        if transport is not None:
            transport.close()
    await asyncio.sleep(0)
    started = len(getattr(executor, "_threads", ())) or 0  # each thread that ran holds a connection
    if started:
        await loop.run_in_executor(None, close_thread_connections, executor, started)
    await loop.run_in_executor(None, executor.shutdown, True)
    connections.close_all()
    control.close()


async def _adopt(loop: asyncio.AbstractEventLoop, factory: Callable[[], Any], connection: socket.socket) -> None:
    try:
        await loop.connect_accepted_socket(factory, connection)
    except OSError:
        connection.close()  # the peer left before the worker took it up


@dataclass
class _Worker:
    process: BaseProcess
    control: socket.socket


class ConnectionWorkers:
    """``processes`` worker processes serving the connections handed to them, replaced when
    one dies; connections go to them in turn."""

    def __init__(self, processes: int, threads: int, loop: asyncio.AbstractEventLoop) -> None:
        self.processes = processes
        self.threads = threads
        self.loop = loop
        self._workers: list[_Worker | None] = [None] * processes
        self._next = 0
        self._stopping = False
        # Linux only: elsewhere fork may be offered but not safe (macOS system libraries).
        self.forks = sys.platform.startswith("linux")
        self._context = multiprocessing.get_context("fork" if self.forks else "spawn")
        self._kept_from_workers: list[socket.socket] = []

    def keep_from_workers(self, sock: socket.socket) -> None:
        """A socket of serve_mail's (a listener) that a forked worker closes."""
        self._kept_from_workers.append(sock)

    def start(self) -> None:
        if self.forks:
            warm_up()
        for index in range(self.processes):
            self._start_worker(index)

    def _start_worker(self, index: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args: tuple[Any, ...] = (theirs, self.threads)
        if self.forks:
            controls = [worker.control for worker in self._workers if worker is not None]
            args += ([ours, *controls, *self._kept_from_workers],)
        process = self._context.Process(target=_serve_connections, args=args, name=f"delivery-{index}")
        process.start()
        theirs.close()
        ours.setblocking(False)
        self._workers[index] = _Worker(process, ours)
        self.loop.add_reader(process.sentinel, self._died, index, process)

    def _died(self, index: int, process: BaseProcess) -> None:
        self.loop.remove_reader(process.sentinel)
        process.join(0)
        worker = self._workers[index]
        if worker is None or worker.process is not process:
            return
        worker.control.close()
        self._workers[index] = None
        if not self._stopping:
            logger.warning("delivery worker %s ended (exit code %s); starting another", index, process.exitcode)
            self._start_worker(index)

    def hand_over(self, connection: socket.socket, protocol: str) -> bool:
        """Give an accepted connection to the next live worker (closed here either way);
        False if no worker took it (the sender sees it close and retries)."""
        code = PROTOCOL_CODES[protocol]
        try:
            for _ in range(self.processes):
                index = self._next
                self._next = (self._next + 1) % self.processes
                worker = self._workers[index]
                if worker is None:
                    continue
                try:
                    socket.send_fds(worker.control, [code], [connection.fileno()])
                    return True
                except OSError:  # dead (its replacement comes with its sentinel) or stuck
                    continue
            logger.warning("no delivery worker took a %s connection", protocol)
            return False
        finally:
            connection.close()

    async def stop(self, timeout: float = 60) -> None:
        """Close the control sockets (each worker finishes what it is delivering and
        exits); a worker still running after ``timeout`` seconds is killed."""
        self._stopping = True
        workers = [worker for worker in self._workers if worker is not None]
        for worker in workers:
            self.loop.remove_reader(worker.process.sentinel)
            worker.control.close()
        self._workers = [None] * self.processes

        def join() -> None:
            for worker in workers:
                worker.process.join(timeout)
                if worker.process.is_alive():
                    logger.warning("delivery worker %s did not stop; killing it", worker.process.pid)
                    worker.process.kill()
                    worker.process.join(5)

        await self.loop.run_in_executor(None, join)
