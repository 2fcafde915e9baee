"""`manage.py serve_mail` as its own process: smtplib to both ports, a database that is
down (451, nothing lost), and SIGKILL of the process in the middle of a stream of
messages (every message answered 250 is stored exactly once)."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.delivery.helpers import raw_message
from tests.test_runtime import ROOT, clean_env, manage

PORT_LINE = re.compile(r"serve_mail: (LMTP|SMTP) listening on [\d.]+:(\d+)")


class MailProcess:
    """manage.py serve_mail on free loopback ports."""

    def __init__(self, env: dict[str, str], *options: str) -> None:
        self.env = env
        self.ports: dict[str, int] = {}
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve_mail", "--lmtp", "127.0.0.1:0", "--smtp", "127.0.0.1:0", *options],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.lines.append(line.rstrip())
                match = PORT_LINE.search(line)
                if match:
                    self.ports[match.group(1)] = int(match.group(2))
                    if len(self.ports) == 2:
                        ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("serve_mail did not start:\n" + "\n".join(self.lines[-40:]))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> dict[str, str]:
    """An embedded-default installation (SQLite in its own DATA_DIR) with one user."""
    data = tmp_path_factory.mktemp("mail-data")
    env = clean_env(DATA_DIR=str(data), FAST_PASSWORD_HASHER="true", LOG_LEVEL="WARNING")
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "create_user", "rcpt@example.com", "--password", "a long enough password")
    return env


def stored_message_ids(env: dict[str, str]) -> list[str]:
    code = "from groupware.mail.models import Email; print(repr([e.message_id for e in Email.objects.all()]))"
    output = manage(env, "shell", "-c", code).stdout.strip().splitlines()[-1]
    return [ids[0] for ids in eval(output)]


def test_smtplib_to_both_ports_of_the_process(embedded):
    server = MailProcess(embedded)
    try:
        with smtplib.LMTP("127.0.0.1", server.ports["LMTP"]) as client:
            client.sendmail("joe@example.net", ["rcpt@example.com"], raw_message(message_id="<p1@x>"))
        with smtplib.SMTP("127.0.0.1", server.ports["SMTP"]) as client:
            client.sendmail("joe@example.net", ["rcpt@example.com"], raw_message(message_id="<p2@x>"))
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("joe@example.net", ["nobody@example.com"], raw_message())
            assert refused.value.recipients["nobody@example.com"][0] == 550
    finally:
        server.stop()
    assert {"p1@x", "p2@x"} <= set(stored_message_ids(embedded))


def test_database_down_answers_451(embedded):
    # Port 1 on loopback refuses connections: the database is "down" for real.
    env = {**embedded, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing"}
    server = MailProcess(env)
    try:
        with smtplib.SMTP("127.0.0.1", server.ports["SMTP"]) as client:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                client.sendmail("joe@example.net", ["rcpt@example.com"], raw_message())
        code, text = refused.value.recipients["rcpt@example.com"]
        assert (code, text[:5]) == (451, b"4.3.0")
    finally:
        server.stop()
    assert server.process.returncode is not None


def send_with_retries(ports_of, message_ids: list[str], answered: list[str], stop_at: float) -> None:
    """Send each message over LMTP until it is answered 250, as a sending MTA does."""
    for message_id in message_ids:
        while time.monotonic() < stop_at:
            try:
                with smtplib.LMTP("127.0.0.1", ports_of()["LMTP"], timeout=10) as client:
                    client.sendmail("joe@example.net", ["rcpt@example.com"], raw_message(message_id=f"<{message_id}>"))
                answered.append(message_id)
                break
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)


def test_sigkill_during_delivery_loses_and_duplicates_nothing(embedded):
    before = stored_message_ids(embedded)
    current = {"server": MailProcess(embedded)}
    message_ids = [f"crash{i}@x" for i in range(60)]
    answered: list[str] = []
    sender = threading.Thread(
        target=send_with_retries,
        args=(lambda: current["server"].ports, message_ids, answered, time.monotonic() + 120),
    )
    sender.start()
    kills = 0
    try:
        while sender.is_alive() and kills < 3:
            time.sleep(1.0)
            current["server"].kill()
            kills += 1
            current["server"] = MailProcess(embedded)
        sender.join(120)
    finally:
        current["server"].stop()
    assert kills >= 1 and answered == message_ids
    stored = [message_id for message_id in stored_message_ids(embedded) if message_id not in before]
    assert sorted(stored) == sorted(message_ids)  # each answered message once, none twice


# -- Worker processes (--workers) -------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def workers_of(server: MailProcess, count: int) -> list[int]:
    """The delivery workers of the process (spawned workers come with a resource tracker process)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = [pid for pid in children_of(server.process.pid) if b"resource_tracker" not in _cmdline(pid)]
        if len(workers) >= count:
            return workers
        time.sleep(0.1)
    raise AssertionError(f"expected {count} delivery workers of {server.process.pid}")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def send_until_accepted(port: int, message_id: str, attempts: int = 20) -> list[int]:
    """LMTP-send one message until 250; the codes of the refused attempts."""
    refused = []
    for _ in range(attempts):
        try:
            with smtplib.LMTP("127.0.0.1", port, timeout=30) as client:
                client.sendmail("joe@example.net", ["rcpt@example.com"], raw_message(message_id=f"<{message_id}>"))
            return refused
        except smtplib.SMTPDataError as error:
            refused.append(error.smtp_code)
        except (OSError, smtplib.SMTPException):
            refused.append(0)
        time.sleep(0.2)
    raise AssertionError(f"{message_id} never accepted: {refused}")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker processes from /proc")
def test_worker_processes_deliver_and_a_killed_worker_is_replaced(embedded):
    server = MailProcess(embedded, "--workers", "2")
    try:
        with smtplib.LMTP("127.0.0.1", server.ports["LMTP"]) as client:
            client.sendmail("joe@example.net", ["rcpt@example.com"], raw_message(message_id="<w1@x>"))
        with smtplib.SMTP("127.0.0.1", server.ports["SMTP"]) as client:
            client.sendmail("joe@example.net", ["rcpt@example.com"], raw_message(message_id="<w2@x>"))
        first = workers_of(server, 2)
        os.kill(first[0], signal.SIGKILL)
        # The dead worker is replaced: at worst a dropped connection or a 451 (the sender
        # retries), never a lost message.
        refused = send_until_accepted(server.ports["LMTP"], "w3@x")
        assert set(refused) <= {0, 451}
        assert first[0] not in workers_of(server, 1)
        assert server.process.poll() is None
    finally:
        server.stop()
    assert {"w1@x", "w2@x", "w3@x"} <= set(stored_message_ids(embedded))


def _connections_of(pid: int) -> int:
    """How many established TCP connections the process holds (not its listening sockets)."""
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01":  # ESTABLISHED
                inodes.add(fields[9])
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads sockets from /proc")
def test_connections_are_served_by_the_workers_in_turn(embedded):
    """Each accepted connection is handed to the next worker (serve_mail keeps none): two
    sessions open at once are one per worker. A worker killed takes only its own session;
    the other goes on, and serve_mail stops cleanly (exit 0) with its workers."""
    server = MailProcess(embedded, "--workers", "2", "--threads", "1")
    try:
        workers = workers_of(server, 2)
        first = smtplib.LMTP("127.0.0.1", server.ports["LMTP"], timeout=30)
        second = smtplib.LMTP("127.0.0.1", server.ports["LMTP"], timeout=30)
        first.noop()
        second.noop()
        assert sorted(_connections_of(pid) for pid in workers) == [1, 1]
        assert _connections_of(server.process.pid) == 0
        holder = next(pid for pid in workers if _connections_of(pid))
        os.kill(holder, signal.SIGKILL)
        outcomes = []
        for client, message_id in ((first, "t1@x"), (second, "t2@x")):
            try:
                client.sendmail("joe@example.net", ["rcpt@example.com"], raw_message(message_id=f"<{message_id}>"))
                outcomes.append("stored")
            except (OSError, smtplib.SMTPException):
                outcomes.append("dropped")
        assert sorted(outcomes) == ["dropped", "stored"]
        second_try = send_until_accepted(server.ports["LMTP"], "t3@x")
        assert set(second_try) <= {0}
        server.process.terminate()
        assert server.process.wait(30) == 0
    finally:
        server.stop()
    stored = set(stored_message_ids(embedded))
    assert "t3@x" in stored and len({"t1@x", "t2@x"} & stored) == 1


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker processes from /proc")
def test_workers_end_with_a_killed_listener(embedded):
    server = MailProcess(embedded, "--workers", "2")
    send_until_accepted(server.ports["LMTP"], "w4@x")
    workers = workers_of(server, 2)
    server.kill()
    deadline = time.monotonic() + 20
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if _cmdline(pid)]  # gone, or a zombie: no command line
    assert alive == []
    assert "w4@x" in stored_message_ids(embedded)


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def _listening_inodes(ports: set[int]) -> set[str]:
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) in ports:  # LISTEN
                inodes.add(fields[9])
    return inodes


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads processes and sockets from /proc")
def test_workers_are_forks_of_serve_mail_without_its_listening_sockets(embedded):
    """On Linux the workers (and a replacement) are forks of the warmed-up serve_mail, not
    fresh interpreters, and hold neither its listening sockets nor its database session."""
    server = MailProcess(embedded, "--workers", "2")
    try:
        send_until_accepted(server.ports["LMTP"], "f1@x")
        workers = workers_of(server, 2)
        os.kill(workers[0], signal.SIGKILL)
        send_until_accepted(server.ports["LMTP"], "f2@x")
        deadline = time.monotonic() + 30
        while workers[0] in children_of(server.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        current = workers_of(server, 2)
        assert workers[0] not in current
        listening = _listening_inodes(set(server.ports.values()))
        assert len(listening) == 2 and listening <= _socket_inodes(server.process.pid)
        for pid in current:
            assert _cmdline(pid) == _cmdline(server.process.pid)  # forked: no spawn command line
            assert not listening & _socket_inodes(pid)
        server.process.terminate()
        assert server.process.wait(30) == 0
    finally:
        server.stop()
    assert {"f1@x", "f2@x"} <= set(stored_message_ids(embedded))


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked workers need fork()")
def test_a_forked_worker_opens_its_own_database_connection_and_leaves_the_parents_alone():
    from groupware.mail.delivery.workers import _forget_parent_state

    def session() -> str:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_backend_pid()")
                return str(cursor.fetchone()[0])
            cursor.execute("SELECT 1")
            return str(id(connection.connection))

    parent = session()
    kept = connection.connection
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker's side: report its own session, then leave without cleaning up
        try:
            _forget_parent_state([])
            os.write(write, session().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    assert os.waitpid(pid, 0)[1] == 0
    assert child and child != parent
    assert connection.connection is kept and session() == parent  # still ours, still open


# -- The database going away between RCPT and DATA (PostgreSQL: a proxy we can cut) -------


class TcpProxy:
    """Forwards a loopback port to PostgreSQL until ``cut()``: then every connection drops
    and new ones are refused, as when the database server goes away."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.open = False
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.sockets.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.mark.django_db(transaction=True)
def test_database_lost_after_rcpt_answers_451_then_the_retry_is_stored_once(user):
    if connection.vendor != "postgresql":
        pytest.skip("cuts a TCP connection to PostgreSQL (run with DATABASE_URL=postgres://...)")
    settings = connection.settings_dict
    proxy = TcpProxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432)))
    url = f"postgres://{settings['USER']}@127.0.0.1:{proxy.port}/{settings['NAME']}"
    env = clean_env(
        DATA_DIR=os.environ.get("DATA_DIR", str(Path(ROOT) / "data")),
        DATABASE_URL=url,
        DATABASE_CONN_MAX_AGE="600",
        LOG_LEVEL="WARNING",
    )
    server = MailProcess(env)
    raw = raw_message(message_id="<cut@x>")
    try:
        with smtplib.LMTP("127.0.0.1", server.ports["LMTP"]) as client:
            client.ehlo_or_helo_if_needed()
            client.mail("joe@example.net")
            assert client.rcpt("alice@example.com")[0] == 250
            proxy.cut()
            code, text = client.data(raw)
        assert (code, text[:5]) == (451, b"4.3.0")
        from groupware.mail.models import Email

        assert not Email.objects.exists()
        proxy.restore()
        with smtplib.LMTP("127.0.0.1", server.ports["LMTP"]) as client:
            assert client.sendmail("joe@example.net", ["alice@example.com"], raw) == {}
            assert client.sendmail("joe@example.net", ["alice@example.com"], raw) == {}  # a retransmission
        assert [email.message_id for email in Email.objects.all()] == [["cut@x"]]
    finally:
        server.stop()
        proxy.close()
