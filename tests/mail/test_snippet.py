"""RFC 8621 §5 SearchSnippet/get: matched words in <mark></mark>, HTML escaping, null
when nothing matches, notFound, requestTooLarge, and one query for any number of ids."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groupware.mail.search import snippet_highlight, snippet_preview, text_terms
from tests.mail.factories import mail_fixture, other_mail_fixture  # noqa: F401 (fixtures)
from tests.mail.test_email_query_helpers import QueryApi, corpus_fixture, store_email, when  # noqa: F401


def snippets(api: QueryApi, keys: list[str], condition: dict | None) -> dict[str, tuple]:
    result = api.ok("SearchSnippet/get", {"emailIds": [api.jmap_id(key) for key in keys], "filter": condition})
    assert result["accountId"] == api.account_id
    assert result["notFound"] is None
    by_key = {api.keys[item["emailId"]]: (item["subject"], item["preview"]) for item in result["list"]}
    assert set(by_key) == set(keys)
    return by_key


def test_text_marks_subject_and_preview(corpus):
    found = snippets(corpus, ["m1", "m2", "m3"], {"text": "quarterly"})
    assert found["m1"] == (
        "<mark>Quarterly</mark> report",
        "Please find the <mark>quarterly</mark> numbers attached. Revenue is up.",
    )
    assert found["m2"] == ("Re: <mark>Quarterly</mark> report", None)
    assert found["m3"] == (None, None)


def test_prefixes_phrases_and_several_words(corpus):
    assert snippets(corpus, ["m1"], {"text": "quart num"})["m1"] == (
        "<mark>Quart</mark>erly report",
        "Please find the <mark>quart</mark>erly <mark>num</mark>bers attached. Revenue is up.",
    )
    assert snippets(corpus, ["m3"], {"text": "lunch friday"})["m3"] == (
        "<mark>Lunch</mark> on <mark>Friday</mark>?",
        None,
    )
    assert snippets(corpus, ["m3"], {"text": '"new café"'})["m3"] == (
        None,
        "Shall we try the <mark>new café</mark> near the station?",
    )
    # A phrase in the wrong order matches nothing.
    assert snippets(corpus, ["m3"], {"text": '"café new"'})["m3"] == (None, None)


def test_html_is_escaped(corpus):
    subject, preview = snippets(corpus, ["m6"], {"text": "bold more"})["m6"]
    assert subject is None
    assert preview == 'Yes, "new café" sounds good. &lt;b&gt;<mark>bold</mark>&lt;/b&gt; &amp; <mark>more</mark>'
    subject, _ = snippets(corpus, ["m5"], {"text": "ölkännchen"})["m5"]
    assert subject == "Straße &amp; <mark>Ölkännchen</mark>"


def test_unicode_matches(corpus):
    subject, preview = snippets(corpus, ["m5"], {"text": "strasse 東京 grüße"})["m5"]
    assert subject == "<mark>Straße</mark> &amp; Ölkännchen"
    assert preview == "<mark>Grüße</mark> aus München! <mark>東京</mark>タワー is tall."


def test_which_conditions_give_snippets(corpus):
    # subject: the subject only; body: the preview only.
    assert snippets(corpus, ["m1"], {"subject": "report"})["m1"] == ("Quarterly <mark>report</mark>", None)
    assert snippets(corpus, ["m1"], {"body": "revenue"})["m1"] == (
        None,
        "Please find the quarterly numbers attached. <mark>Revenue</mark> is up.",
    )
    # Conditions on other fields, NOT and no filter give no snippet.
    assert snippets(corpus, ["m1"], {"from": "alice"})["m1"] == (None, None)
    assert snippets(corpus, ["m1"], {"operator": "NOT", "conditions": [{"text": "report"}]})["m1"] == (None, None)
    assert snippets(corpus, ["m1"], None)["m1"] == (None, None)
    # Under AND and OR they count.
    nested = {
        "operator": "OR",
        "conditions": [{"hasKeyword": "$seen"}, {"operator": "AND", "conditions": [{"text": "up"}]}],
    }
    expected = "Please find the quarterly numbers attached. Revenue is <mark>up</mark>."
    assert snippets(corpus, ["m1"], nested)["m1"] == (None, expected)


def test_long_body_preview_is_at_most_255_octets(mail):
    body = "Ünïcödé filler words & more. " * 40 + "The needle <is> here. " + "tail & more " * 60
    email = store_email(mail.account, subject="hay", body=body, received_at=when(1))
    api = QueryApi(mail.client, {"hay": email})
    _, preview = snippets(api, ["hay"], {"body": "needle"})["hay"]
    assert len(preview.encode()) <= 255
    assert preview.startswith("\u2026") and preview.endswith("\u2026")
    assert "<mark>needle</mark> &lt;is&gt; here." in preview
    assert preview.startswith("\u2026more. ")  # from the start of a word shortly before the match


@pytest.mark.parametrize("length", [0, 5, 100, 240, 254, 255, 300])
def test_preview_budget_never_breaks_entities_or_marks(length):
    text = "&<>" * 10 + " needle " + "x&y " * length
    preview = snippet_preview(text, text_terms("needle"))
    assert preview is not None
    assert len(preview.encode()) <= 255
    assert preview.count("<mark>") == preview.count("</mark>") == 1
    unescaped = preview.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
    assert "&" not in unescaped and "<" not in unescaped.replace("<mark>", "").replace("</mark>", "")


def test_highlight_helpers():
    assert snippet_highlight("nothing here", text_terms("absent")) is None
    assert snippet_highlight("a <b>", text_terms("b")) == "a &lt;<mark>b</mark>&gt;"
    assert snippet_highlight("Foosball & foo", text_terms("foo")) == "<mark>Foo</mark>sball &amp; <mark>foo</mark>"
    assert snippet_preview("", text_terms("x")) is None
    assert snippet_preview("match", []) is None


def test_not_found(corpus, other_mail):
    other = store_email(other_mail.account, subject="theirs", received_at=when(1))
    from groupware.mail.services.counts import email_id

    ids = [corpus.jmap_id("m1"), "e999999", "m1", email_id(other.pk), corpus.jmap_id("m1")]
    result = corpus.ok("SearchSnippet/get", {"emailIds": ids, "filter": {"text": "report"}})
    assert [item["emailId"] for item in result["list"]] == [corpus.jmap_id("m1")]
    assert result["notFound"] == ["e999999", "m1", email_id(other.pk)]


def test_request_too_large(corpus, settings):
    settings.JMAP = {**settings.JMAP, "maxObjectsInGet": 2}
    ids = [corpus.jmap_id(key) for key in ("m1", "m2", "m3")]
    assert corpus.error("SearchSnippet/get", {"emailIds": ids})["type"] == "requestTooLarge"
    assert corpus.ok("SearchSnippet/get", {"emailIds": ids[:2]})["notFound"] is None


@pytest.mark.parametrize(
    ("arguments", "kind"),
    [
        ({"filter": {"colour": "red"}, "emailIds": []}, "unsupportedFilter"),
        ({"filter": {"text": " ".join(f"w{n}" for n in range(65))}, "emailIds": []}, "unsupportedFilter"),
        ({"filter": {"text": 5}, "emailIds": []}, "invalidArguments"),
        ({"filter": None}, "invalidArguments"),
        ({"emailIds": "m1"}, "invalidArguments"),
        ({"emailIds": [], "properties": ["subject"]}, "invalidArguments"),
    ],
)
def test_errors(corpus, arguments, kind):
    assert corpus.error("SearchSnippet/get", arguments)["type"] == kind


def test_one_query_for_any_number_of_emails(corpus):
    def measure(keys: list[str]) -> int:
        arguments = {"emailIds": [corpus.jmap_id(key) for key in keys], "filter": {"text": "the"}}
        corpus.ok("SearchSnippet/get", arguments)  # the client's first request also authenticates it
        with CaptureQueriesContext(connection) as captured:
            corpus.ok("SearchSnippet/get", arguments)
        return len(captured.captured_queries)

    assert measure(["m1"]) == measure(list(corpus.emails))
