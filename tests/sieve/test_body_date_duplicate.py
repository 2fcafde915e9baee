"""body (RFC 5173), date and index (RFC 5260), duplicate (RFC 7352)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from groupware.mail.sieve import Discard, DuplicateMark, Environment, FileInto, Keep, Redirect, Reject, Vacation

from .helpers import actions, message, run

MULTIPART = (
    b"From: agent@example.com\r\n"
    b"To: roadrunner@acme.example.com\r\n"
    b"Subject: plans\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"prologue\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"The missile launch coordinates are secret. Gr=FC=DFe\r\n"
    b"--b1\r\n"
    b"Content-Type: audio/mpeg\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"SUQzBAAAAAAA\r\n"
    b"--b1--\r\n"
)

BODY_EXAMPLE = """
require ["body", "fileinto"];

# Save any message with any text MIME part that contains the
# words "missile" or "coordinates" in the "secrets" folder.

if body :content "text" :contains ["missile", "coordinates"] {
        fileinto "secrets";
}

# Save any message with an audio attachment in the "music" folder.

if body :content "audio" :contains "" {
        fileinto "music";
}
"""


def test_body_content_example():
    assert actions(BODY_EXAMPLE, MULTIPART) == [FileInto("secrets"), FileInto("music")]
    assert actions(BODY_EXAMPLE) == [Keep()]


def test_body_text_raw_and_decoding():
    assert actions('require "body"; if body :text :contains "Grüße" { discard; }', MULTIPART) == [Discard()]
    assert actions('require "body"; if body :contains "COORDINATES" { discard; }', MULTIPART) == [Discard()]
    # :raw sees the undecoded body including MIME structure.
    assert actions('require "body"; if body :raw :contains "Gr=FC=DFe" { discard; }', MULTIPART) == [Discard()]
    assert actions('require "body"; if body :raw :contains "--b1" { discard; }', MULTIPART) == [Discard()]
    assert actions('require "body"; if body :text :contains "--b1" { discard; }', MULTIPART) == [Keep()]
    assert actions('require "body"; if body :content "text/html" :contains "" { discard; }', MULTIPART) == [Keep()]
    assert actions('require "body"; if body :content "text/plain" :matches "*secret*" { discard; }', MULTIPART) == [
        Discard()
    ]
    assert actions('require "body"; if body :contains "anvil" { discard; }') == [Discard()]


DATED = message(
    "From: boss@example.com\r\n"
    "To: me@example.com\r\n"
    "Date: Fri, 10 Aug 2007 12:34:56 -0700\r\n"
    "Received: from a by b; Sat, 11 Aug 2007 02:00:00 +0000\r\n"
    "Received: from c by d; Fri, 10 Aug 2007 19:35:00 +0000\r\n"
)


def test_date_example_business_hours():
    # RFC 5260 §4.1 example with :originalzone.
    script = """require ["date", "relational", "fileinto"];
if allof(header :is "from" "boss@example.com",
         date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "17")
{ fileinto "urgent"; }"""
    assert actions(script, DATED) == [FileInto("urgent")]
    # Without :originalzone the date is converted to the local zone (UTC here): 19h.
    assert actions(script.replace(":originalzone ", ""), DATED) == [Keep()]


def test_date_weekend_example_uses_received():
    script = """require ["date", "relational", "fileinto"];
if anyof(date :is "received" "weekday" "0",
         date :is "received" "weekday" "6")
{ fileinto "weekend"; }"""
    assert actions(script, DATED) == [FileInto("weekend")]  # first Received: Saturday


def test_date_parts():
    expected = {
        "year": "2007",
        "month": "08",
        "day": "10",
        "date": "2007-08-10",
        "julian": "54322",
        "hour": "12",
        "minute": "34",
        "second": "56",
        "time": "12:34:56",
        "iso8601": "2007-08-10T12:34:56-07:00",
        "std11": "Fri, 10 Aug 2007 12:34:56 -0700",
        "zone": "-0700",
        "weekday": "5",
    }
    for part, value in expected.items():
        script = f'require ["date", "reject"]; if date :is :originalzone "date" "{part}" "{value}" {{ reject "y"; }}'
        assert actions(script, DATED) == [Reject("y")], part
    script = 'require ["date", "reject"]; if date :is :zone "+0200" "date" "time" "21:34:56" { reject "y"; }'
    assert actions(script, DATED) == [Reject("y")]
    script = 'require ["date", "reject"]; if date :matches "x-nothing" "year" "*" { reject "y"; }'
    assert actions(script, DATED) == [Keep()]


def test_currentdate_examples():
    now = datetime(2007, 7, 2, 15, 0, tzinfo=UTC)
    environment = Environment(user_addresses=("roadrunner@acme.example.com",), now=now)
    script = """require ["date", "variables", "fileinto"];
if currentdate :matches "month" "*" { set "month" "${1}"; }
if currentdate :matches "year"  "*" { set "year" "${1}"; }
fileinto "${month}-${year}";"""
    assert actions(script, environment=environment) == [FileInto("07-2007")]
    script = """require ["date", "relational", "vacation"];
if allof(currentdate :value "ge" "date" "2007-06-30",
         currentdate :value "le" "date" "2007-07-07")
{ vacation :days 7  "I'm away during the first week in July."; }"""
    [vacation, keep] = actions(script, environment=environment)
    assert isinstance(vacation, Vacation) and keep == Keep()
    late = Environment(now=now + timedelta(days=10))
    assert actions(script, environment=late) == [Keep()]
    zoned = Environment(now=now, local_zone=timezone(timedelta(hours=10)))
    script = 'require ["date", "reject"]; if currentdate :is "hour" "01" { reject "local"; }'
    assert actions(script, environment=zoned) == [Reject("local")]
    script = 'require ["date", "reject"]; if currentdate :is :zone "-0500" "hour" "10" { reject "zone"; }'
    assert actions(script, environment=zoned) == [Reject("zone")]


def test_index_examples():
    # RFC 5260 §7 example: the second Received field, seen in -0500.
    script = """require ["date", "relational", "index"];
if date :value "gt" :index 2 :zone "-0500" "received"
        "iso8601" "2007-08-10T14:00:00-05:00"
{ redirect "aftercutoff@example.org"; }"""
    assert actions(script, DATED) == [Redirect("aftercutoff@example.org")]
    script = 'require ["index", "reject"]; if header :index 1 :last :contains "received" "from c" { reject "y"; }'
    assert actions(script, DATED) == [Reject("y")]
    script = 'require ["index", "reject"]; if header :index 1 :contains "received" "from c" { reject "y"; }'
    assert actions(script, DATED) == [Keep()]
    script = 'require ["index", "reject"]; if header :index 3 :contains "received" "" { reject "y"; }'
    assert actions(script, DATED) == [Keep()]
    raw = message("To: a@example.com\r\nTo: b@example.com\r\n")
    script = 'require ["index", "reject"]; if address :index 2 :is "to" "b@example.com" { reject "y"; }'
    assert actions(script, raw) == [Reject("y")]


class Tracker:
    """In-memory stand-in for the caller's persistent duplicate store (real logic, no mock)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.checks: list[tuple[str, int, bool]] = []

    def duplicate_seen(self, key: str, seconds: int, last: bool) -> bool:
        self.checks.append((key, seconds, last))
        return key in self.seen

    def record(self, marks: list[DuplicateMark]) -> None:
        for mark in marks:
            self.seen[mark.key] = mark.seconds


def test_duplicate_basic_example():
    # RFC 7352 §3.1 example: discard a second copy of the same Message-ID.
    tracker = Tracker()
    environment = Environment(duplicate_seen=tracker.duplicate_seen)
    script = 'require "duplicate"; if duplicate { discard; }'
    first = run(script, environment=environment)
    assert first.actions == [Keep()] and len(first.duplicate_marks) == 1
    # Nothing is recorded by the engine itself; the caller records after delivery.
    assert run(script, environment=environment).actions == [Keep()]
    tracker.record(first.duplicate_marks)
    assert run(script, environment=environment).actions == [Discard()]
    other = message("From: a@example.org\r\nTo: roadrunner@acme.example.com\r\nMessage-ID: <other@example.org>\r\n")
    assert run(script, other, environment=environment).actions == [Keep()]


def test_duplicate_handles_headers_uniqueid_seconds_last():
    tracker = Tracker()
    environment = Environment(duplicate_seen=tracker.duplicate_seen)
    script = """require ["duplicate", "variables", "imap4flags"];
if duplicate :header "X-Event-ID" :handle "notifier" { discard; }
if header :matches "subject" "ALERT: *" {
  if duplicate :seconds 60 :last :uniqueid "${1}" { setflag "\\\\seen"; }
}"""
    raw = message(
        "From: a@example.org\r\nTo: roadrunner@acme.example.com\r\nX-Event-ID: 42\r\nSubject: ALERT: disk full\r\n"
    )
    first = run(script, raw, environment=environment)
    assert first.actions == [Keep()]
    assert [(mark.seconds, mark.last) for mark in first.duplicate_marks] == [(7 * 86400, False), (60, True)]
    tracker.record(first.duplicate_marks)
    assert run(script, raw, environment=environment).actions == [Discard()]
    raw2 = raw.replace(b"X-Event-ID: 42", b"X-Event-ID: 43")
    assert run(script, raw2, environment=environment).actions == [Keep(flags=("\\seen",))]
    # Same id under another handle is a different entry.
    keys = {key for key, _seconds, _last in tracker.checks}
    script2 = 'require "duplicate"; if duplicate :header "X-Event-ID" :handle "other" { discard; }'
    assert run(script2, raw, environment=environment).actions == [Keep()]
    assert tracker.checks[-1][0] not in keys


def test_duplicate_without_message_id_is_false_and_unrecorded():
    raw = message("From: a@example.org\r\nTo: roadrunner@acme.example.com\r\n")
    outcome = run('require "duplicate"; if duplicate { discard; }', raw)
    assert outcome.actions == [Keep()] and outcome.duplicate_marks == []


NESTED = (
    b"From: a@example.com\r\n"
    b"To: roadrunner@acme.example.com\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"This is the prologue.\r\n"
    b"--outer\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<html><style>p{color:red}</style><p>Hello <b>big</b>&amp;bold world</p></html>\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: forwarded secret\r\n"
    b"From: inner@example.org\r\n"
    b"\r\n"
    b"inner body text\r\n"
    b"--outer--\r\n"
    b"The epilogue.\r\n"
)


def test_body_multipart_prologue_and_embedded_message():
    # RFC 5173 §5.2: "multipart" matches prologue/epilogue, "message/rfc822" the embedded header.
    def hit(script: str) -> bool:
        return actions(f'require "body"; if {script} {{ discard; }}', NESTED) == [Discard()]

    assert hit('body :content "multipart" :contains "prologue"')
    assert hit('body :content "multipart" :contains "epilogue"')
    assert not hit('body :content "multipart" :contains "Hello"')
    assert hit('body :content "message/rfc822" :contains "forwarded secret"')
    assert not hit('body :content "message/rfc822" :contains "inner body text"')
    # The embedded message's own text part is still a text part.
    assert hit('body :text :contains "inner body text"')


def test_body_text_drops_html_markup_but_content_keeps_it():
    def hit(script: str) -> bool:
        return actions(f'require "body"; if {script} {{ discard; }}', NESTED) == [Discard()]

    assert hit('body :text :contains "Hello big&bold world"')
    assert not hit('body :text :contains "<b>"')
    assert not hit('body :text :contains "color:red"')
    assert hit('body :content "text/html" :contains "<b>big</b>"')
