"""Attachments are downloadable by their part blob id (RFC 8620 §6.2, RFC 8621 §4.1.4 blobId)."""

from __future__ import annotations

import base64

from tests.mail.factories import ingest, mail_fixture, other_mail_fixture  # noqa: F401 (fixtures)

PDF = b"%PDF-1.4 not really a pdf \x00\x01\x02" * 20


def _message_with_attachment() -> bytes:
    encoded = base64.encodebytes(PDF).decode()
    text = (
        "From: joe@example.com\nTo: alice@example.com\nSubject: Report\nMessage-ID: <att@example.com>\n"
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=XX\n\n"
        "--XX\nContent-Type: text/plain; charset=utf-8\n\nSee attached.\n"
        "--XX\nContent-Type: application/pdf; name=report.pdf\nContent-Disposition: attachment; filename=report.pdf\n"
        f"Content-Transfer-Encoding: base64\n\n{encoded}--XX--\n"
    )
    return text.replace("\n", "\r\n").encode()


def test_attachment_part_downloads_decoded(mail, other_mail):
    ingest(mail.account, _message_with_attachment())
    got = mail.ok("Email/get", {"ids": None, "properties": ["attachments"]})
    attachment = got["list"][0]["attachments"][0]
    assert attachment["name"] == "report.pdf" and attachment["size"] == len(PDF)
    url = f"/jmap/download/{mail.account_id}/{attachment['blobId']}/report.pdf?accept=application/pdf"
    response = mail.client.http.get(url, HTTP_AUTHORIZATION=mail.client.auth)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf"
    # The same part id in another account does not exist.
    foreign = f"/jmap/download/{other_mail.account_id}/{attachment['blobId']}/report.pdf"
    assert other_mail.client.http.get(foreign, HTTP_AUTHORIZATION=other_mail.client.auth).status_code == 404
    missing = url.replace(attachment["blobId"], attachment["blobId"] + "9")
    assert mail.client.http.get(missing, HTTP_AUTHORIZATION=mail.client.auth).status_code == 404
