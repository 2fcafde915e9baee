"""Interoperability with jmap-jam, a third-party JavaScript JMAP client (Node.js).

js/jam_probe.mjs runs a few exchanges through the library against the real server and
prints what the library returned; the tests here check it. The client is installed with
``npm ci --prefix tests/interop/js``; without Node.js or that install the tests are skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")
CORE = "urn:ietf:params:jmap:core"
NOTES = "urn:example:jmaptest"

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed"),
    pytest.mark.skipif(
        not (JS / "node_modules" / "jmap-jam").is_dir(),
        reason="jmap-jam is not installed: run `npm ci --prefix tests/interop/js`",
    ),
]


@pytest.fixture(scope="module")
def jam(jmap_server) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("JMAP_")}
    env.update(
        JMAP_SESSION_URL=jmap_server.session_url,
        JMAP_TOKEN=jmap_server.token,
        JMAP_ACCOUNT_ID=jmap_server.account_id,
        NODE_EXTRA_CA_CERTS=str(jmap_server.ca_file),  # trust the test CA (and only add it)
    )
    result = subprocess.run(
        [NODE, str(JS / "jam_probe.mjs")], cwd=JS, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{result.stderr}\n--- server log ---\n{jmap_server.log_tail()}"
    return json.loads(result.stdout)


def ok(jam: dict, name: str):
    assert "ok" in jam[name], jam[name]
    return jam[name]["ok"]


def thrown(jam: dict, name: str):
    assert "thrown" in jam[name], jam[name]
    return jam[name]["thrown"]


def test_session_discovery(jam, jmap_server):
    session = ok(jam, "session")
    assert session["username"] == jmap_server.email
    assert session["apiUrl"] == f"{jmap_server.base_url}/jmap/api/"
    assert {CORE, NOTES} <= set(session["capabilities"])
    assert session["core"]["maxCallsInRequest"] >= 16
    assert session["primaryAccounts"][NOTES] == jmap_server.account_id
    assert session["state"]


def test_core_echo(jam):
    echo = ok(jam, "echo")
    assert echo["data"] == {"hello": True, "high": 5, "text": "Grüße ☃ 😀"}
    assert echo["status"] == 200
    assert echo["sessionState"] == ok(jam, "session")["state"]


def test_method_errors(jam):
    assert thrown(jam, "unknownMethod") == {"type": "unknownMethod"}
    assert thrown(jam, "accountNotFound") == {"type": "accountNotFound"}


def test_created_ids_round_trip(jam):
    result = ok(jam, "createdIds")
    created = result["created"]["k1"]["id"]
    assert result["createdIds"] == {"earlier": "nearlier", "k1": created}


def test_result_references_built_by_the_library(jam):
    result = ok(jam, "references")
    ids = result["query"]["ids"]
    assert len(ids) == 1
    assert result["get"]["list"] == [{"id": ids[0], "title": "from jmap-jam"}]
    assert result["titles"] == {"titles": ["from jmap-jam"]}


def test_request_level_error_is_problem_details(jam):
    problem = thrown(jam, "problem")
    assert problem["type"] == "urn:ietf:params:jmap:error:unknownCapability"
    assert problem["status"] == 400
