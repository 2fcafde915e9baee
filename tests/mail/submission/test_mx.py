"""Direct delivery to MX hosts (RFC 5321 §5.1, RFC 7505) without a smarthost, against a DNS
server and an SMTP server on loopback (no outside network)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from groupware.mail.submission.relay import relay_due
from tests.mail.submission.smtp import SmtpServer

ZONE = {
    "remote.test.": ["10 nowhere.invalid.", "20 localhost."],  # the first MX fails, the second works
    "nullmx.test.": ["0 ."],
}


def _answer(query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query)
    question = query.question[0]
    name = question.name.to_text()
    if name.startswith("nxdomain"):
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif question.rdtype == dns.rdatatype.MX and name in ZONE:
        response.answer.append(dns.rrset.from_text(name, 300, "IN", "MX", *ZONE[name]))
    return response


@pytest.fixture
def dns_server(settings) -> Iterator[None]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            sock.sendto(_answer(dns.message.from_wire(data)).to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    settings.SUBMISSION_DNS_SERVER = ("127.0.0.1", sock.getsockname()[1])
    settings.SUBMISSION_SMARTHOST = None
    settings.SUBMISSION_SMTP_TIMEOUT = 5
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sock.close()


def test_delivery_to_the_mx_host(send, dns_server, settings):
    with SmtpServer() as server:
        settings.SUBMISSION_MX_PORT = server.port
        created = send.submit(send.draft())["created"]["s"]
        assert relay_due() == {"sent": 1}
        assert [m.rcpt_tos for m in server.messages] == [["carol@remote.test"]]
    assert send.submission(created["id"])["deliveryStatus"]["carol@remote.test"]["delivered"] == "unknown"


def test_nxdomain_and_null_mx_fail_for_good(send, dns_server):
    to = [{"name": None, "email": "a@nxdomain.test"}, {"name": None, "email": "b@nullmx.test"}]
    created = send.submit(send.draft(to=to))["created"]["s"]
    assert relay_due() == {"failed": 2}
    status = send.submission(created["id"])["deliveryStatus"]
    assert status["a@nxdomain.test"]["smtpReply"] == "550 5.1.2 The domain nxdomain.test does not exist"
    assert status["b@nullmx.test"]["smtpReply"] == "556 5.1.10 The domain nullmx.test accepts no mail (null MX)"
    assert len(send.submission(created["id"])["dsnBlobIds"]) == 1
