"""RFC 8620 over a real HTTP/1.1 + TLS connection (daphne), where framing can lie.

The in-process tests cannot send a chunked body or a Content-Length that disagrees with
the body; a real socket can.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl

import pytest

CORE = "urn:ietf:params:jmap:core"
URN = "urn:ietf:params:jmap:error:"


def connection(server) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    host, port = server.host.split(":")
    return http.client.HTTPSConnection(host, int(port), context=context, timeout=60)


def auth(server) -> str:
    return "Basic " + base64.b64encode(f"{server.email}:{server.password}".encode()).decode()


def post(server, body, headers: dict[str, str], *, chunked: bool = False) -> tuple[int, dict, bytes]:
    conn = connection(server)
    try:
        conn.request(
            "POST", "/jmap/api/", body=body, headers={"Authorization": auth(server), **headers}, encode_chunked=chunked
        )
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def echo_of_size(size: int) -> bytes:
    base = json.dumps({"using": [CORE], "methodCalls": [["Core/echo", {"pad": ""}, "c"]]}).encode()
    return base.replace(b'"pad": ""', b'"pad": "' + b"x" * (size - len(base)) + b'"')


def test_session_over_tls_names_https_urls(jmap_server):
    conn = connection(jmap_server)
    conn.request("GET", "/.well-known/jmap", headers={"Authorization": auth(jmap_server)})
    response = conn.getresponse()
    session = json.loads(response.read())
    conn.close()
    assert response.status == 200
    for key in ("apiUrl", "downloadUrl", "uploadUrl", "eventSourceUrl"):
        assert session[key].startswith(f"https://{jmap_server.host}/"), key


def test_api_without_credentials(jmap_server):
    conn = connection(jmap_server)
    conn.request("POST", "/jmap/api/", body=b"{}", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 401


def test_chunked_request_within_the_limit(jmap_server):
    body = echo_of_size(100_000)
    chunks = (body[index : index + 8192] for index in range(0, len(body), 8192))
    status, _, content = post(jmap_server, chunks, {"Content-Type": "application/json"}, chunked=True)
    assert status == 200, content[:300]
    assert json.loads(content)["methodResponses"][0][1]["pad"] == "x" * body.count(b"x")


def test_chunked_request_over_the_limit(jmap_server):
    # No Content-Length at all: the size limit must still hold (RFC 8620 §3.6.1).
    body = echo_of_size(10_500_000)
    chunks = (body[index : index + 65536] for index in range(0, len(body), 65536))
    status, headers, content = post(jmap_server, chunks, {"Content-Type": "application/json"}, chunked=True)
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(content)
    assert problem["type"] == URN + "limit" and problem["limit"] == "maxSizeRequest"


def test_declared_length_over_the_limit(jmap_server):
    status, _, content = post(
        jmap_server, echo_of_size(10_000_001), {"Content-Type": "application/json", "Content-Length": "10000001"}
    )
    assert status == 400
    assert json.loads(content)["limit"] == "maxSizeRequest"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b'{"using": ["urn:ietf:params:jmap:core"], "using": [], "methodCalls": []}', "notJSON"),
        (b'{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"a": "\xff"}, "c"]]}', "notJSON"),
        (b"[" * 10_000, "notJSON"),
        (b'{"using": ["urn:ietf:params:jmap:core"], "methodCalls": {}}', "notRequest"),
        (b'{"using": ["urn:x"], "methodCalls": []}', "unknownCapability"),
    ],
)
def test_request_level_errors_on_the_wire(jmap_server, body, kind):
    status, headers, content = post(jmap_server, body, {"Content-Type": "application/json"})
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(content)["type"] == URN + kind


def test_truncated_body_does_not_hang_or_fail_the_server(jmap_server):
    # The client promises more than it sends, then goes away; the server carries on.
    context = ssl.create_default_context(cafile=str(jmap_server.ca_file))
    host, port = jmap_server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(
                b"POST /jmap/api/ HTTP/1.1\r\nHost: " + jmap_server.host.encode() + b"\r\n"
                b"Authorization: " + auth(jmap_server).encode() + b"\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"using":'
            )
    status, _, content = post(jmap_server, echo_of_size(200), {"Content-Type": "application/json"})
    assert status == 200, content
