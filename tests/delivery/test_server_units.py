"""The listeners' small decisions: one SMTP reply for many results, listen addresses."""

from __future__ import annotations

import pytest

from groupware.mail.delivery.server import null_sender, parse_listen, smtp_reply
from groupware.mail.delivery.services import DeliveryResult


def result(code: int, status: str = "2.0.0") -> DeliveryResult:
    return DeliveryResult(recipient="r@example.com", code=code, status=status, text="t")


def test_smtp_reply_prefers_a_retry_over_partial_success():
    assert smtp_reply([result(250), result(451, "4.3.0")]).startswith("451 4.3.0")
    assert smtp_reply([result(250), result(550, "5.7.1")]) == "250 2.0.0 delivered"
    assert smtp_reply([result(552, "5.3.4"), result(552, "5.3.4")]).startswith("552 5.3.4")


def test_null_sender_and_listen_addresses():
    assert null_sender("<>") == "" and null_sender(None) == "" and null_sender("a@b.c") == "a@b.c"
    assert parse_listen("127.0.0.1:8024") == ("127.0.0.1", 8024)
    assert parse_listen("[::1]:2525") == ("::1", 2525)
    assert parse_listen("off") is None and parse_listen("") is None
    with pytest.raises(ValueError):
        parse_listen("127.0.0.1:port")


@pytest.mark.parametrize(
    "arg",
    [
        "<a@b.com>",
        "<a@b.com> SIZE=100",
        "<a@b.com>  BODY=8BITMIME SIZE=5",
        " <a@b.com>",
        "<a@b.com>\tSIZE=1",
        "<a.b+c_d=e@x-y.example.org>",
        "<alice+tag@example.com> SMTPUTF8",
        "<a@b.com>SIZE=1",
        "<>",
        '<"q x"@b.com>',
        "a@b.com",
        "<a@b.com> (comment) SIZE=1",
        "<@route:a@b.com>",
        "<a@[192.0.2.1]>",
        "<a..b@c.com>",
        "<.a@c.com>",
        "<a@b.com",
        "<émile@exemple.fr>",
        "",
    ],
)
def test_paths_are_read_as_aiosmtpd_reads_them(arg):
    """The listeners read a plain <local@domain> path themselves (fast) and hand anything
    else to aiosmtpd: the answer is the same either way."""
    from aiosmtpd.smtp import SMTP

    from groupware.mail.delivery.server import LmtpServer, SmtpServer

    for ours in (LmtpServer, SmtpServer):
        for limit in (0, 3):
            server, reference = ours.__new__(ours), SMTP.__new__(SMTP)
            server.local_part_limit = reference.local_part_limit = limit
            assert server._getaddr(arg) == reference._getaddr(arg)


# -- DATA read in blocks ---------------------------------------------------------------------

DATA_CASES = [
    b".\r\n",  # empty data
    b"one line\r\n.\r\n",
    b"x\r\n.\r\n",
    b"\r\n.\r\n",
    b"..stuffed\r\n.\r\n",
    b"a\r\n..\r\n...b\r\n.c\r\n.\r\n",
    b"end of a sentence.\r\nnext.\r\n.\r\n",
    b"bare\nline feeds\n.\nstill data\r\n.\r\n",
    b"bare\rcarriage\r.\r\n.\r\n",
    b"no final break.\r\n.\r\n",
    b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\n" + b"z\r\n" * 300 + b".\r\n",
]


def spec_data(stream: bytes) -> bytes:
    """RFC 5321 §4.1.1.4 and §4.5.2 read line by line: the lines before the one holding a
    single ".", each without its leading "." if it has one."""
    lines = []
    for line in stream.split(b"\r\n"):
        if line == b".":
            break
        lines.append(line[1:] if line.startswith(b".") else line)
    return b"".join(line + b"\r\n" for line in lines)


async def read_data(stream: bytes, sizes: list[int], *, size_limit: int = 0, line_limit: int = 256 * 1024):
    """What the listener's DATA reader makes of ``stream`` arriving in blocks of ``sizes``
    (cycled), and what is left in the connection's buffer after it."""
    import asyncio

    from groupware.mail.delivery.server import LmtpServer

    reader = asyncio.StreamReader(limit=line_limit)
    server = LmtpServer.__new__(LmtpServer)  # only what the reader uses
    server._reader, server.data_size_limit, server.line_length_limit = reader, size_limit, line_limit

    async def feed() -> None:
        position, turn = 0, 0
        while position < len(stream):
            size = sizes[turn % len(sizes)]
            reader.feed_data(stream[position : position + size])
            position, turn = position + size, turn + 1
            await asyncio.sleep(0)

    feeding = asyncio.ensure_future(feed())
    result = await server._data_octets()
    await feeding
    left = await reader.read(len(stream) + 1) if reader._buffer else b""
    return result, left


@pytest.mark.parametrize("stream", DATA_CASES)
@pytest.mark.parametrize("sizes", [[1 << 20], [1], [2], [3], [4], [5], [7, 1, 2], [64, 1]])
def test_data_read_in_blocks_is_the_data_line_by_line(stream, sizes):
    """However the octets arrive (byte by byte, the end of data split anywhere), the
    content is the lines before the lone "." with the dot-stuffing undone, and what the
    client sent after the end (pipelined commands) stays for the next command."""
    import asyncio

    pipelined = b"NOOP\r\nQUIT\r\n"
    (content, refusal), left = asyncio.run(read_data(stream + pipelined, sizes))
    assert refusal is None
    assert content == spec_data(stream)
    assert left == pipelined


def test_data_limits_answer_after_the_end_of_the_data():
    """Past the size limit: 552; a line over the line limit: 500; whichever came first;
    either way the whole data is read (the session goes on after it)."""
    import asyncio

    line = b"x" * 98 + b"\r\n"  # 100 octets with its break
    long_line = b"y" * 300 + b"\r\n"
    cases = [
        (line * 9 + b".\r\n", None),  # 900 octets: under both limits
        (line * 11 + b".\r\n", "552"),
        (line * 2 + long_line + b".\r\n", "500"),
        (line * 2 + long_line + line * 20 + b".\r\n", "500"),  # too long first, then too much
        (line * 11 + long_line + b".\r\n", "552"),  # too much first
    ]
    for stream, expected in cases:
        for sizes in ([1 << 20], [1], [33]):
            (content, refusal), left = asyncio.run(
                read_data(stream + b"RSET\r\n", sizes, size_limit=1000, line_limit=200)
            )
            assert left == b"RSET\r\n"
            if expected is None:
                assert refusal is None and content == spec_data(stream)
            else:
                assert refusal is not None and refusal.startswith(expected) and content == b"", (stream[:20], sizes)


def test_data_ends_when_the_connection_closes():
    import asyncio

    from groupware.mail.delivery.server import LmtpServer

    async def closed_early():
        reader = asyncio.StreamReader()
        reader.feed_data(b"partial data\r\n")
        reader.feed_eof()
        server = LmtpServer.__new__(LmtpServer)
        server._reader, server.data_size_limit, server.line_length_limit = reader, 0, 1000
        return await server._data_octets()

    assert asyncio.run(closed_early()) is None
