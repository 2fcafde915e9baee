"""``manage.py create_user``."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.test import Client

from accounts.models import Account, ApiToken, AppPassword, User
from tests.conftest import PASSWORD, basic


def run(*args: str) -> str:
    out = StringIO()
    call_command("create_user", *args, stdout=out)
    return out.getvalue()


def test_create_user(db):
    output = run("Dave@Example.com", "--password", PASSWORD, "--name", "Dave")
    user = User.objects.get()
    assert user.email == "Dave@example.com" and user.name == "Dave"
    assert not user.is_staff and not user.is_superuser
    account = Account.objects.get(owner=user)
    assert f"Account id: {account.jmap_id}" in output
    assert Client().get("/.well-known/jmap", HTTP_AUTHORIZATION=basic("dave@example.com")).status_code == 200


def test_create_staff_and_superuser(db):
    run("staff@example.com", "--password", PASSWORD, "--staff")
    run("root@example.com", "--password", PASSWORD, "--superuser")
    staff = User.objects.get(email="staff@example.com")
    root = User.objects.get(email="root@example.com")
    assert staff.is_staff and not staff.is_superuser
    assert root.is_staff and root.is_superuser


def test_create_with_credentials(db):
    output = run("eve@example.com", "--password", PASSWORD, "--app-password", "phone", "--token", "cli")
    app_password = re.search(r"App password \(phone\): (\S+)", output).group(1)
    token = re.search(r"API token \(cli\): (\S+)", output).group(1)
    assert AppPassword.objects.get().name == "phone"
    assert ApiToken.objects.get().name == "cli"
    client = Client()
    assert client.get("/.well-known/jmap", HTTP_AUTHORIZATION=basic("eve@example.com", app_password)).status_code == 200
    assert client.get("/.well-known/jmap", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


@pytest.mark.parametrize("email", ["alice@example.com", "ALICE@EXAMPLE.COM"])
def test_duplicate_email(user, email):
    with pytest.raises(CommandError, match="already exists"):
        run(email, "--password", PASSWORD, "--token", "cli")
    assert User.objects.count() == 1
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("email", ["not-an-email", "a@", ""])
def test_invalid_email(db, email):
    with pytest.raises(CommandError, match="email"):
        run(email, "--password", PASSWORD)
    assert not User.objects.exists()


def test_weak_password_refused_unless_asked(db):
    with pytest.raises(CommandError, match="Password rejected"):
        run("weak@example.com", "--password", "abc")
    assert not User.objects.exists()
    run("weak@example.com", "--password", "abc", "--skip-password-validation")
    assert User.objects.get().check_password("abc")


def test_password_is_required(db):
    with pytest.raises(CommandError):
        run("x@example.com")


@pytest.mark.django_db(transaction=True)
def test_exit_status_is_non_zero_on_error(capsys):
    # Through the real command line: CommandError becomes exit status 1 and a message.
    with pytest.raises(SystemExit) as exit_info:
        execute_from_command_line(["manage.py", "create_user", "bad-address", "--password", PASSWORD])
    assert exit_info.value.code == 1
    assert "Enter a valid email address" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        execute_from_command_line(["manage.py", "create_user", "x@example.com"])  # no --password
    assert exit_info.value.code != 0
