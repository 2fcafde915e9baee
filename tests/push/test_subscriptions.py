"""PushSubscription/get and /set (RFC 8620 §7.2), the URL guard, limits and VAPID keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from accounts.models import User
from groupware.push.models import PushSubscription, VapidKey
from groupware.push.services import push_url_problem, vapid_key_current
from tests.push.pushservice import ClientKeys

CORE = "urn:ietf:params:jmap:core"
VAPID = "urn:ietf:params:jmap:webpush-vapid"
WEBSOCKET = "urn:ietf:params:jmap:websocket"
PUBLIC_URL = "https://93.184.215.14/push/x"  # a public address: no DNS needed


def push_set(jmap, **arguments):
    return jmap.call("PushSubscription/set", arguments, using=[CORE])


def create(jmap, **values):
    body = {"deviceClientId": "device-1", "url": PUBLIC_URL, **values}
    response = push_set(jmap, create={"s": body})
    assert response[0] == "PushSubscription/set", response
    return response[1]


def test_session_advertises_websocket_and_vapid(jmap):
    session = jmap.session()
    websocket = session["capabilities"][WEBSOCKET]
    assert websocket == {"url": "ws://testserver/jmap/push/websocket/", "supportsPush": True}
    key = session["capabilities"][VAPID]["applicationServerKey"]
    assert key == vapid_key_current().public_key
    assert session["eventSourceUrl"].startswith("http://testserver/jmap/push/eventsource/?")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://93.184.215.14/", "https"),
        ("https://127.0.0.1/", "internal"),
        ("https://10.1.2.3/", "internal"),
        ("https://192.168.0.1:8443/", "internal"),
        ("https://169.254.169.254/latest/meta-data", "internal"),  # cloud metadata
        ("https://100.64.0.1/", "internal"),  # shared address space
        ("https://[::1]/", "internal"),
        ("https://[fe80::1]/", "internal"),
        ("https://[fd00::1]/", "internal"),
        ("https://[::ffff:10.0.0.1]/", "internal"),
        ("https://0.0.0.0/", "internal"),
        ("https://user:pw@93.184.215.14/", "credentials"),
        ("https:///nohost", "host"),
        ("https://localhost/", "internal"),
        ("https://93.184.215.14:99999/", "parse"),
    ],
)
def test_push_url_guard(url, problem, settings):
    settings.WEB_PUSH_ALLOW_LOOPBACK = False
    found = push_url_problem(url)
    assert found is not None and problem in found, (url, found)


def test_push_url_guard_accepts_public_and_test_loopback(settings):
    settings.WEB_PUSH_ALLOW_LOOPBACK = False
    assert push_url_problem("https://93.184.215.14/push") is None
    assert push_url_problem("https://[2606:4700::1]/push") is None
    settings.WEB_PUSH_ALLOW_LOOPBACK = True
    assert push_url_problem("http://127.0.0.1:18100/push") is None
    assert push_url_problem("https://10.0.0.1/push") is not None  # loopback only, not private


def test_create_get_update_destroy(jmap, user):
    keys = ClientKeys().as_jmap()
    result = create(jmap, keys=keys, types=["Email"])
    created = result["created"]["s"]
    subscription_id = created["id"]
    # No expiry asked: the server sets its maximum (7 days) and says so.
    expires = datetime.strptime(created["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert "keys" not in created and "url" not in created

    listed = jmap.call("PushSubscription/get", {"ids": None}, using=[CORE])[1]
    assert listed["list"] == [
        {
            "id": subscription_id,
            "deviceClientId": "device-1",
            "verificationCode": None,
            "expires": created["expires"],
            "types": ["Email"],
        }
    ]
    assert "state" not in listed and "accountId" not in listed
    one = jmap.call("PushSubscription/get", {"ids": [subscription_id, "Pzz"], "properties": ["types"]}, using=[CORE])[1]
    assert one == {"list": [{"id": subscription_id, "types": ["Email"]}], "notFound": ["Pzz"]}
    for private in ("url", "keys"):
        error = jmap.call("PushSubscription/get", {"properties": [private]}, using=[CORE])
        assert error[0] == "error" and error[1]["type"] == "forbidden"

    # expires beyond the maximum is cut back, and the response says to what.
    far = (datetime.now(UTC) + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    updated = push_set(jmap, update={subscription_id: {"expires": far, "types": None}})[1]
    assert updated["updated"][subscription_id]["expires"] != far
    near = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert push_set(jmap, update={subscription_id: {"expires": near}})[1]["updated"] == {subscription_id: None}
    immutable = push_set(jmap, update={subscription_id: {"url": "https://93.184.215.15/"}})[1]
    assert immutable["notUpdated"][subscription_id]["type"] == "invalidProperties"
    assert immutable["notUpdated"][subscription_id]["properties"] == ["url"]

    destroyed = push_set(jmap, destroy=[subscription_id, subscription_id + "0"])[1]
    assert destroyed["destroyed"] == [subscription_id]
    assert destroyed["notDestroyed"] == {subscription_id + "0": {"type": "notFound"}}
    assert not PushSubscription.objects.exists()  # url and keys erased with the row


@pytest.mark.parametrize(
    ("values", "properties"),
    [
        ({"url": "https://10.0.0.1/push"}, ["url"]),
        ({"url": "http://93.184.215.14/push"}, ["url"]),
        ({"deviceClientId": ""}, ["deviceClientId"]),
        ({"verificationCode": "abc"}, ["verificationCode"]),
        ({"keys": {"p256dh": "nope", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}}, ["keys"]),
        ({"keys": {"p256dh": "x"}}, ["keys"]),
        ({"expires": "tomorrow"}, ["expires"]),
        ({"types": "Email"}, ["types"]),
        ({"id": "P1"}, ["id"]),
    ],
)
def test_invalid_creates(jmap, values, properties, settings):
    settings.WEB_PUSH_ALLOW_LOOPBACK = False
    result = create(jmap, **values)
    assert result["created"] is None
    error = result["notCreated"]["s"]
    assert error["type"] == "invalidProperties"
    assert error["properties"] == properties


def test_other_users_subscriptions_are_not_found(jmap, other_jmap):
    subscription_id = create(jmap)["created"]["s"]["id"]
    got = other_jmap.call("PushSubscription/get", {"ids": [subscription_id]}, using=[CORE])[1]
    assert got == {"list": [], "notFound": [subscription_id]}
    result = push_set(other_jmap, update={subscription_id: {"types": None}}, destroy=[subscription_id])[1]
    assert result["notUpdated"][subscription_id]["type"] == "notFound"
    assert result["notDestroyed"][subscription_id]["type"] == "notFound"
    assert PushSubscription.objects.count() == 1


def test_per_user_cap_and_creation_rate(jmap, settings):
    settings.PUSH_SUBSCRIPTIONS_PER_USER = 3
    settings.PUSH_SUBSCRIPTIONS_PER_HOUR = 2
    first, second = create(jmap)["created"]["s"]["id"], create(jmap)["created"]["s"]["id"]
    assert create(jmap)["notCreated"]["s"]["type"] == "rateLimit"
    PushSubscription.objects.update(created=datetime.now(UTC) - timedelta(hours=2))
    create(jmap)
    assert create(jmap)["notCreated"]["s"]["type"] == "overQuota"
    push_set(jmap, destroy=[first, second])
    assert create(jmap)["created"] is not None


def test_get_query_count(jmap, django_assert_num_queries):
    for _ in range(5):
        create(jmap)
    jmap.session()  # authentication cached
    # Authentication (user) and the subscriptions, whatever their number.
    with django_assert_num_queries(2):
        listed = jmap.call("PushSubscription/get", {"ids": None}, using=[CORE])[1]
    assert len(listed["list"]) == 5


def test_vapid_rotation(jmap, user):
    old = vapid_key_current()
    create(jmap)
    state_before = jmap.session()["state"]
    call_command("vapid_rotate", stdout=open("/dev/null", "w"))
    new = vapid_key_current()
    assert new.generation == old.generation + 1
    assert new.public_key != old.public_key
    # RFC 9749 §5: the subscriptions made for the old key are gone, the session state moved.
    assert not PushSubscription.objects.exists()
    session = jmap.session()
    assert session["state"] != state_before
    assert session["capabilities"][VAPID]["applicationServerKey"] == new.public_key
    assert VapidKey.objects.count() == 2


# -- RFC 8620 §7.2: "tied to the credentials used to authenticate the API request that
# created it. Should these credentials expire or be revoked, the push subscription MUST
# be destroyed by the JMAP server."


def _client_with(user, authorization: str):
    from tests.conftest import JmapClient

    client = JmapClient(user)
    client.auth = authorization
    return client


def _subscription_ids(jmap) -> list[str]:
    return [item["id"] for item in jmap.call("PushSubscription/get", {"ids": None}, using=[CORE])[1]["list"]]


def test_subscription_ends_with_its_app_password(jmap, user, django_capture_on_commit_callbacks):
    from accounts.services import app_password_create, app_password_revoke
    from tests.conftest import basic

    app_password, secret = app_password_create(user=user, name="phone")
    phone = _client_with(user, basic(user.email, secret))
    from_phone = create(phone)["created"]["s"]["id"]
    from_password = create(jmap)["created"]["s"]["id"]
    assert sorted(_subscription_ids(jmap)) == sorted([from_phone, from_password])
    with django_capture_on_commit_callbacks(execute=True):
        app_password_revoke(app_password=app_password)
    # Destroyed at once; the one made with the account password stays.
    assert _subscription_ids(jmap) == [from_password]


def test_subscription_ends_with_its_token_revoked_or_expired(jmap, user, django_capture_on_commit_callbacks):
    from accounts.models import ApiToken
    from accounts.services import api_token_create, api_token_revoke
    from groupware.push.webpush import deliver

    token, secret = api_token_create(user=user, name="app")
    app = _client_with(user, f"Bearer {secret}")
    create(app)
    assert PushSubscription.objects.filter(user=user, credential_kind="token", credential_pk=token.pk).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        api_token_revoke(api_token=token)
    assert not PushSubscription.objects.filter(user=user).exists()

    # An expiry passes without any event: the next push finds it and destroys it unsent.
    later = datetime.now(UTC) + timedelta(hours=1)
    token, secret = api_token_create(user=user, name="app 2", expires=later)
    create(_client_with(user, f"Bearer {secret}"))
    subscription = PushSubscription.objects.get(user=user)
    PushSubscription.objects.filter(pk=subscription.pk).update(verified=True)
    ApiToken.objects.filter(pk=token.pk).update(expires=datetime.now(UTC) - timedelta(seconds=1))
    outcome = deliver(subscription.pk, {"@type": "StateChange", "changed": {}})
    assert outcome.gone and not outcome.delivered
    assert not PushSubscription.objects.filter(pk=subscription.pk).exists()


def test_subscription_ends_with_a_password_change(jmap, user, django_capture_on_commit_callbacks):
    from accounts.services import app_password_create, user_set_password
    from tests.conftest import basic

    _, secret = app_password_create(user=user, name="laptop")
    laptop = _client_with(user, basic(user.email, secret))
    kept = create(laptop)["created"]["s"]["id"]
    create(jmap)
    with django_capture_on_commit_callbacks(execute=True):
        user_set_password(user=user, password="a brand new password for alice")
    # The one made with the old password is gone; the app password's stays.
    assert _subscription_ids(laptop) == [kept]


def test_admin_password_page_ends_the_old_passwords_subscriptions(
    jmap, user, admin_client, django_capture_on_commit_callbacks
):
    # The admin's password page goes through user_set_password like every other caller.
    from accounts.services import app_password_create
    from tests.conftest import basic

    _, secret = app_password_create(user=user, name="laptop")
    laptop = _client_with(user, basic(user.email, secret))
    kept = create(laptop)["created"]["s"]["id"]
    create(jmap)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/accounts/user/{user.pk}/password/",
            {"password1": "another long password", "password2": "another long password", "usable_password": "true"},
        )
    assert response.status_code == 302
    assert _subscription_ids(laptop) == [kept]


def test_admin_change_form_disabling_a_user_ends_their_subscriptions(
    jmap, user, admin_client, django_capture_on_commit_callbacks
):
    create(jmap)
    assert PushSubscription.objects.filter(user=user).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/accounts/user/{user.pk}/change/",
            {"email": user.email, "name": user.name, "date_joined_0": "2020-01-01"},  # is_active unticked
        )
    assert response.status_code == 302
    assert not User.objects.get(pk=user.pk).is_active
    assert not PushSubscription.objects.filter(user=user).exists()


def test_dispatching_a_state_change_does_not_load_the_push_senders_clients(tmp_path):
    """Every process that commits a write imports the Web Push dispatch (and serve_mail loads
    what a delivery uses before it forks its workers); the HTTP and crypto clients only a
    sender needs are imported when a push is sent, not with it."""
    import subprocess
    import sys

    from tests.test_runtime import ROOT, clean_env

    program = (
        "import sys, django; django.setup()\n"
        "from groupware.mail.delivery.workers import warm_up; warm_up()\n"
        "from groupware.push.webpush import dispatch_state_change\n"
        "print(sorted(m for m in ('pywebpush', 'aiohttp', 'requests', 'py_vapid') if m in sys.modules))\n"
    )
    env = clean_env(DATA_DIR=str(tmp_path), SECRET_KEY="k" * 50)
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
