"""The admin in a real browser: Chromium (Debian's package) driven by Playwright against the
production serving path (granian WSGI with the collected static files), on a fresh
database. An administrator logs in, adds a user with a storage quota, and finds the user
with their usage and quota in the list and the quota in the quota list.

Skipped, saying why, where Chromium (``apt-get install chromium``) or Playwright
(``pip install -r tests/browser-requirements.txt``) is missing: neither is in
requirements.txt. ``ADMIN_SCREENSHOT=/path.png`` keeps a screenshot of the user list.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.server import PROJECT, Database, free_port, manage, server_environment

CHROMIUM = Path("/usr/bin/chromium")
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "browser-admin-password-7f3a"

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install -r tests/browser-requirements.txt)"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def admin_site(tmp_path_factory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("browser")
    data_dir = directory / "data"
    data_dir.mkdir()
    database = Database(data_dir)
    process = None
    try:
        env = server_environment(data_dir, database.url)
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        manage(env, "create_user", ADMIN_EMAIL, "--password", ADMIN_PASSWORD, "--superuser")
        port = free_port()
        log_file = directory / "server.log"
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                 "--workers", "1", "--static-path-route", "/static", "--static-path-mount", str(data_dir / "static"),
                 "groupware.wsgi:application"],
                cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/admin/login/", process, log_file)
        yield base
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=15)
        database.drop()


def _wait_for(url: str, process: subprocess.Popen, log_file: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log_file.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer:\n{log_file.read_text()[-3000:]}")


def test_add_a_user_with_a_quota_in_chromium(admin_site, tmp_path):
    screenshot = Path(os.environ.get("ADMIN_SCREENSHOT") or tmp_path / "admin.png")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            page.goto(f"{admin_site}/admin/")
            page.fill("#id_username", ADMIN_EMAIL)
            page.fill("#id_password", ADMIN_PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{admin_site}/admin/")
            assert "Quotas" in page.content()

            page.goto(f"{admin_site}/admin/accounts/user/add/")
            page.fill("#id_email", "new.user@example.com")
            page.fill("#id_name", "New User")
            page.fill("#id_password1", "a long browser password")
            page.fill("#id_password2", "a long browser password")
            page.fill("#id_storage_quota_mib", "100")
            page.click("input[name=_save]")
            page.wait_for_url("**/admin/accounts/user/*/change/")
            assert "was added successfully" in page.content()

            page.goto(f"{admin_site}/admin/accounts/user/?q=new.user")
            row = page.locator("#result_list tbody tr").first
            assert "new.user@example.com" in row.inner_text()
            assert "0\xa0bytes of 100.0\xa0MB (0.0\xa0%)" in row.inner_text()
            # The stylesheet was served (the production static path), so the page is styled.
            assert page.evaluate("getComputedStyle(document.querySelector('#header')).display") != "inline"
            page.goto(f"{admin_site}/admin/accounts/user/")
            page.screenshot(path=str(screenshot), full_page=True)

            page.goto(f"{admin_site}/admin/accounts/quota/")
            quota_row = page.locator("#result_list tbody tr").first.inner_text()
            assert "new.user@example.com storage" in quota_row and "account" in quota_row
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
