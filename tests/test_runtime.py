"""The real server as `python3 tasks.py run` serves it, and the production settings check.

A daphne subprocess serves ``groupware.asgi:application`` on a free loopback port with the
embedded default (SQLite in a temporary DATA_DIR, no Redis), a user is created with
``manage.py create_user``, and a JMAP client talks to it over real HTTP.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
CORE = "urn:ietf:params:jmap:core"
EMAIL = "runtime@example.com"
PASSWORD = "a long runtime test password"
# Only what a shell needs; everything the server reads comes from the test (the embedded default).
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def clean_env(**settings: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env.update(DJANGO_SETTINGS_MODULE="groupware.settings", PYTHONPATH=str(ROOT), **settings)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


class Daphne:
    """daphne on port 0; the port it got is read from its 'Listening on' log line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.port: int | None = None
        self.listening = threading.Event()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "0", "groupware.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            match = re.search(r"Listening on TCP address 127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
                self.listening.set()

    def wait_listening(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while not self.listening.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("daphne did not start:\n" + "\n".join(self.lines[-40:]))
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if "create_user" not in get_commands():
        pytest.skip("manage.py create_user does not exist yet (accounts/management/commands/create_user.py)")
    env = clean_env(DATA_DIR=str(tmp_path_factory.mktemp("runtime-data")))
    manage(env, "migrate", "--noinput")
    manage(env, "create_user", EMAIL, "--password", PASSWORD)
    daphne = Daphne(env)
    try:
        yield daphne.wait_listening()
    finally:
        daphne.stop()


def test_session_and_core_echo_over_real_http(server):
    with httpx.Client(base_url=server, auth=(EMAIL, PASSWORD), timeout=30) as client:
        response = client.get("/.well-known/jmap")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        session = response.json()
        assert session["username"] == EMAIL
        assert CORE in session["capabilities"]
        assert session["apiUrl"] == f"{server}/jmap/api/"
        assert len(session["accounts"]) == 1

        calls = [["Core/echo", {"hello": [1, "two", None]}, "c1"]]
        response = client.post(session["apiUrl"], json={"using": [CORE], "methodCalls": calls})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["methodResponses"] == calls
        assert body["sessionState"] == session["state"]


def test_requests_without_credentials_are_refused(server):
    response = httpx.get(f"{server}/.well-known/jmap", timeout=30)
    assert response.status_code == 401
    assert "Basic" in response.headers["www-authenticate"]


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = clean_env(
        DATA_DIR=str(tmp_path),
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="false",
        PUBLIC_URL="https://mail.example.com",
        ALLOWED_HOSTS="mail.example.com",
        BEHIND_PROXY="true",
        SECURE_SSL_REDIRECT="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_PRELOAD="true",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
