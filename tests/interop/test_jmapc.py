"""Interoperability with jmapc, a third-party Python JMAP client, against the real server.

jmapc finds the server as https://HOST/.well-known/jmap, posts to the session's apiUrl and
decodes responses into its own types, so these tests check that what we send parses for
a client written by someone else.
"""

from __future__ import annotations

import functools

import pytest

jmapc = pytest.importorskip("jmapc", reason="jmapc is not installed (pip install -r requirements.txt)")
requests = pytest.importorskip("requests")

from jmapc import Client, ClientError, errors  # noqa: E402
from jmapc.methods import CoreEcho, CoreEchoResponse, CustomMethod, CustomResponse, Invocation  # noqa: E402

CORE = "urn:ietf:params:jmap:core"
NOTES = "urn:example:jmaptest"


class NoteClient(Client):
    """jmapc's Client for an account without mail.

    jmapc takes the account for every call from primaryAccounts, looking only at core,
    mail and submission. This server (with only the test Note type) has no mail
    capability and, as RFC 8620 §2 asks, names no primary account for core, so the
    primary account for the Note capability is used instead.
    """

    @functools.cached_property
    def account_id(self) -> str:
        # jmapc's Session keeps only the primary accounts it knows: read the raw object.
        response = self.requests_session.get(f"https://{self._host}/.well-known/jmap", timeout=30)
        response.raise_for_status()
        return response.json()["primaryAccounts"][NOTES]


def trusting(client: Client, server) -> Client:
    """Trust the test CA, whatever CA bundle the environment names (REQUESTS_CA_BUNDLE
    would otherwise win over the session's own setting)."""
    client.requests_session.trust_env = False
    client.requests_session.verify = str(server.ca_file)
    return client


def custom(name: str, data: dict, using: set[str] | None = None) -> CustomMethod:
    method = CustomMethod(data=data)
    method.jmap_method = name
    method.using = {CORE, *(using or {NOTES})}
    return method


@pytest.fixture
def client(jmap_server) -> NoteClient:
    return trusting(
        NoteClient.create_with_password(jmap_server.host, jmap_server.email, jmap_server.password), jmap_server
    )


def test_session_discovery(client, jmap_server):
    session = client.jmap_session
    assert session.username == jmap_server.email
    assert session.api_url == f"{jmap_server.base_url}/jmap/api/"
    for template in (session.download_url, session.upload_url, session.event_source_url):
        assert template.startswith(jmap_server.base_url + "/")
    core = session.capabilities.core
    assert core.max_calls_in_request >= 16 and core.max_objects_in_get >= 500
    assert core.max_size_request >= 10_000_000 and core.max_concurrent_requests >= 4
    assert "i;unicode-casemap" in core.collation_algorithms
    assert {CORE, NOTES} <= session.capabilities.urns
    assert session.state
    # RFC 8620 §2: no primary account for core; jmapc's stock account lookup needs mail.
    assert session.primary_accounts.core is None


def test_stock_client_discovers_the_session(jmap_server):
    client = trusting(
        Client.create_with_password(jmap_server.host, jmap_server.email, jmap_server.password), jmap_server
    )
    assert client.jmap_session.username == jmap_server.email


def test_core_echo(client):
    response = client.request(CoreEcho(data={"hello": True, "high": 5}))
    assert isinstance(response, CoreEchoResponse)
    assert response.data == {"hello": True, "high": 5}


def test_core_echo_with_unicode_and_nesting(client):
    data = {"text": "Grüße ☃ 😀", "nested": {"list": [1, 2.5, None, False, {"deep": []}]}}
    assert client.request(CoreEcho(data=data)).data == data


def test_raw_calls_with_result_references(client, jmap_server):
    account = jmap_server.account_id
    result = client.request(
        [
            Invocation(
                id="set",
                method=custom(
                    "Note/set",
                    {
                        "accountId": account,
                        "create": {"k1": {"title": "from jmapc", "rank": 3}},
                    },
                ),
            ),
            Invocation(
                id="query",
                method=custom(
                    "Note/query",
                    {
                        "accountId": account,
                        "filter": {"text": "from jmapc"},
                    },
                ),
            ),
            Invocation(
                id="get",
                method=custom(
                    "Note/get",
                    {
                        "accountId": account,
                        "#ids": {"resultOf": "query", "name": "Note/query", "path": "/ids"},
                        "properties": ["title", "rank"],
                    },
                ),
            ),
        ],
        raise_errors=True,
    )
    assert [invocation.id for invocation in result] == ["set", "query", "get"]
    assert all(isinstance(invocation.response, CustomResponse) for invocation in result)
    created = result[0].response.data["created"]["k1"]["id"]
    assert result[1].response.data["ids"] == [created]
    assert result[2].response.data["list"] == [{"id": created, "title": "from jmapc", "rank": 3}]
    assert result[2].response.account_id == account


def test_method_errors_come_back_typed(client, jmap_server):
    result = client.request(
        [
            Invocation(id="a", method=custom("Foo/bar", {})),
            Invocation(id="b", method=custom("Note/get", {"accountId": "a999999", "ids": []})),
            Invocation(id="c", method=custom("Note/get", {"accountId": jmap_server.account_id, "ids": 5})),
            Invocation(
                id="d",
                method=custom(
                    "Note/get",
                    {
                        "accountId": jmap_server.account_id,
                        "#ids": {"resultOf": "x", "name": "y", "path": "/z"},
                    },
                ),
            ),
            Invocation(id="e", method=custom("Failing/crash", {"accountId": jmap_server.account_id})),
            Invocation(id="f", method=CoreEcho(data={"still": "running"})),
        ]
    )
    kinds = [type(invocation.response) for invocation in result]
    assert kinds == [
        errors.UnknownMethod,
        errors.AccountNotFound,
        errors.InvalidArguments,
        errors.InvalidResultReference,
        errors.ServerFail,
        CoreEchoResponse,
    ]
    assert result[-1].response.data == {"still": "running"}


def test_raise_errors_raises(client):
    with pytest.raises(ClientError) as raised:
        client.request(custom("Foo/bar", {}), raise_errors=True)
    assert isinstance(raised.value.result[0].response, errors.UnknownMethod)


def test_session_is_not_refetched_while_its_state_holds(client):
    state = client.jmap_session.state
    client.request(CoreEcho(data={}))
    # jmapc drops its cached session when a response's sessionState differs.
    assert "jmap_session" in client.__dict__
    assert client.jmap_session.state == state


def test_bearer_token(jmap_server):
    client = trusting(NoteClient.create_with_api_token(jmap_server.host, jmap_server.token), jmap_server)
    assert client.jmap_session.username == jmap_server.email
    assert client.request(CoreEcho(data={"via": "token"})).data == {"via": "token"}


def test_wrong_password_is_an_http_401(jmap_server):
    client = trusting(NoteClient.create_with_password(jmap_server.host, jmap_server.email, "wrong"), jmap_server)
    with pytest.raises(requests.HTTPError) as raised:
        _ = client.jmap_session
    assert raised.value.response.status_code == 401
    assert "Basic" in raised.value.response.headers["WWW-Authenticate"]


def test_request_level_error_is_problem_details(client):
    with pytest.raises(requests.HTTPError) as raised:
        client.request(custom("Core/echo", {}, using={"https://example.com/apis/foobar"}))
    response = raised.value.response
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "urn:ietf:params:jmap:error:unknownCapability"
