"""vacation (RFC 5230) and :seconds (RFC 6131): the examples and the §4.5 safety rules."""

from __future__ import annotations

import email
from email import policy

from groupware.mail.sieve import Environment, Keep, Reject, Vacation, vacation_reply_bytes

from .helpers import actions, message, run

ME = "roadrunner@acme.example.com"
BASE_HEADERS = "From: Coyote <coyote@desert.example.org>\r\nTo: roadrunner@acme.example.com\r\n"


def reply(script: str, headers: str = BASE_HEADERS + "Subject: Lunch?\r\nMessage-ID: <m1@desert>\r\n", **kwargs):
    found = [action for action in run(script, message(headers), **kwargs).actions if isinstance(action, Vacation)]
    return found[0] if found else None


def test_rfc5230_basic_example():
    script = """require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at +1 304 555 0123";
}"""
    action = reply(script)
    assert action is not None
    assert action.reason == "I'm out -- call me at +1 304 555 0123"
    assert action.recipient == "coyote@desert.example.org"
    assert action.subject == "Auto: Lunch?"
    assert action.from_address == ME
    assert action.seconds == 7 * 86400
    assert action.in_reply_to == "<m1@desert>" and action.references == "<m1@desert>"
    # Vacation does not cancel the implicit keep.
    assert run(script).actions[-1] == Keep()
    cyrus = reply(script, BASE_HEADERS + "Subject: cyrus problem\r\n")
    assert cyrus is not None and cyrus.reason == "I'm out -- send mail to cyrus-bugs"


def test_days_and_addresses_example():
    script = """require "vacation";
vacation :days 23 :addresses ["tjs@example.edu",
                              "ts4z@landru.example.edu"]
   "I'm away until October 19.
   If it's an emergency, call 911, I guess." ;"""
    headers = "From: someone@example.org\r\nTo: tjs@example.edu\r\nSubject: hi\r\n"
    action = reply(script, headers, mail_from="someone@example.org")
    assert action is not None and action.seconds == 23 * 86400
    assert action.from_address == "tjs@example.edu"
    assert action.reason.startswith("I'm away until October 19.\n")
    # Not addressed to any of the user's addresses: no reply (§4.5).
    headers = "From: someone@example.org\r\nTo: other@example.edu\r\nSubject: hi\r\n"
    assert reply(script, headers, mail_from="someone@example.org") is None


def test_days_is_at_least_one_and_seconds():
    assert reply('require "vacation"; vacation :days 0 "x";').seconds == 86400
    assert reply('require "vacation-seconds"; vacation :seconds 1800 "x";').seconds == 1800
    assert reply('require "vacation-seconds"; vacation :seconds 0 "x";').seconds == 0


def test_subject_from_handle_and_mime():
    script = r"""require "vacation";
vacation :subject "Gone fishing" :from "hemingway@example.com" :handle "fishing" :mime text:
Content-Type: text/plain; charset=utf-8

Back soon.
.
;"""
    action = reply(script)
    assert action is not None
    assert (action.subject, action.from_address, action.handle, action.mime) == (
        "Gone fishing",
        "hemingway@example.com",
        "fishing",
        True,
    )
    raw = vacation_reply_bytes(action, ME)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["To"] == "coyote@desert.example.org" and parsed["In-Reply-To"] == "<m1@desert>"
    assert parsed.get_content().strip() == "Back soon."


def test_default_handle_covers_reason_subject_from_mime():
    first = reply('require "vacation"; vacation "I am out";')
    same = reply('require "vacation"; vacation "I am out";')
    other = reply('require "vacation"; vacation :subject "x" "I am out";')
    assert first.handle == same.handle != other.handle


def test_handle_example_and_per_sender_tracking():
    # RFC 5230 §4.2 example: both branches share one handle, so one reply per sender and period.
    script = """require "vacation";
if header :contains "subject" "lunch" {
    vacation :handle "ran-away" "I'm out and can't meet for lunch";
} else {
    vacation :handle "ran-away" "I'm out";
}"""
    answered: dict[tuple[str, str], int] = {}

    def should_reply(sender: str, handle: str, seconds: int) -> bool:
        if (sender, handle) in answered:
            return False
        answered[(sender, handle)] = seconds
        return True

    environment = Environment(user_addresses=(ME,), vacation_should_reply=should_reply)
    first = reply(script, BASE_HEADERS + "Subject: lunch today?\r\n", environment=environment)
    assert first is not None and first.reason == "I'm out and can't meet for lunch"
    assert reply(script, BASE_HEADERS + "Subject: other\r\n", environment=environment) is None
    assert answered == {("coyote@desert.example.org", "ran-away"): 7 * 86400}
    other_sender = BASE_HEADERS.replace("coyote@desert", "wile@desert")
    assert reply(script, other_sender, mail_from="wile@desert.example.org", environment=environment) is not None


def test_no_reply_to_lists_bulk_and_auto_replies():
    script = 'require "vacation"; vacation "out";'
    for extra in (
        "List-Id: <coyotes.desert.example.org>\r\n",
        "List-Unsubscribe: <mailto:leave@example.org>\r\n",
        "Precedence: bulk\r\n",
        "Precedence: junk\r\n",
        "Precedence: list\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "Auto-Submitted: auto-generated; foo=bar\r\n",
        "X-Auto-Response-Suppress: OOF, DR\r\n",
    ):
        assert reply(script, BASE_HEADERS + extra) is None, extra
    assert reply(script, BASE_HEADERS + "Auto-Submitted: no\r\n") is not None
    assert reply(script, BASE_HEADERS + "Precedence: first-class\r\n") is not None


def test_no_reply_to_system_senders_null_sender_or_self():
    script = 'require "vacation"; vacation "out";'
    for sender in ("MAILER-DAEMON@example.org", "owner-list@example.org", "list-request@example.org", "", "<>", ME):
        assert reply(script, mail_from=sender) is None, sender
    bracketed = reply(script, mail_from="<coyote@desert.example.org>")
    assert bracketed is not None and bracketed.recipient == "coyote@desert.example.org"
    # Cc and Resent-To count as addressed to the user, Bcc-only delivery (not in headers) does not.
    assert reply(script, "From: a@example.org\r\nTo: x@example.org\r\nCc: Road <roadrunner@acme.example.com>\r\n")
    assert reply(script, "From: a@example.org\r\nResent-To: roadrunner@acme.example.com\r\n")
    assert reply(script, "From: a@example.org\r\nTo: x@example.org\r\n") is None


def test_vacation_conflicts_with_reject_and_twice():
    outcome = run('require ["vacation", "reject"]; vacation "out"; reject "no";')
    assert outcome.actions == [Keep()] and "conflicts" in outcome.errors[0]
    outcome = run('require "vacation"; vacation "out"; vacation "again";')
    assert outcome.actions == [Keep()] and "twice" in outcome.errors[0]
    # A reject with a vacation that was suppressed (e.g. bulk mail) is fine.
    raw = message(BASE_HEADERS + "Precedence: bulk\r\n")
    assert actions('require ["vacation", "reject"]; vacation "out"; reject "no";', raw) == [Reject("no")]


def test_default_subject_without_original_subject_and_encoded_subject():
    assert reply('require "vacation"; vacation "x";', BASE_HEADERS).subject == "Automated reply"
    headers = BASE_HEADERS + "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    assert reply('require "vacation"; vacation "x";', headers).subject == "Auto: Grüße"


def test_plain_reply_message():
    action = reply('require "vacation"; vacation :subject "Away" "I am away until Monday.";')
    parsed = email.message_from_bytes(vacation_reply_bytes(action, ME), policy=policy.default)
    assert parsed["From"] == ME and parsed["Subject"] == "Away"
    assert parsed["References"] == "<m1@desert>" and parsed["Message-ID"]
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content().strip() == "I am away until Monday."
