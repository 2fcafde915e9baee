"""Prepares the delivery benchmark's database: users with the 20-rule Sieve script active.

Run by bench/delivery.py as ``python -m bench.delivery_setup USERS`` with the server's
environment (DATABASE_URL, DATA_DIR); prints ``BENCH_JSON {...}``.
"""

from __future__ import annotations

import json
import os
import sys

import django

SCRIPT = r"""require ["fileinto", "imap4flags", "envelope", "body", "variables", "relational",
         "comparator-i;ascii-numeric", "mailbox", "regex"];
# 20 rules, the kinds a real filter set has: header and address tests, sizes, a body test.
if header :contains "subject" ["invoice", "receipt"] { fileinto "Finance"; stop; }
if exists "list-id" { fileinto "Lists"; stop; }
if address :domain :is "from" "lists.example.net" { fileinto "Lists"; stop; }
if header :contains "x-spam-flag" "YES" { fileinto "Junk-filter"; stop; }
if size :over 2M { fileinto "Large"; stop; }
if address :is "from" ["boss@example.com", "ceo@example.com"] { addflag "\\Flagged"; }
if header :matches "subject" "*urgent*" { addflag "$urgent"; }
if header :regex "subject" "^\\[ticket #[0-9]+\\]" { fileinto "Tickets"; stop; }
if envelope :domain :is "from" "partner.example.org" { addflag "$partner"; }
if header :contains "x-mailer" "newsletter" { fileinto "Newsletters"; stop; }
if address :localpart :is "to" "noreply" { fileinto "Junk-filter"; stop; }
if header :value "gt" :comparator "i;ascii-numeric" "x-priority" "3" { addflag "$low"; }
if anyof (header :contains "subject" "meeting", header :contains "subject" "calendar") { addflag "$meeting"; }
if allof (exists "in-reply-to", header :contains "subject" "re:") { addflag "$reply"; }
if header :matches "from" "*@social.example" { fileinto "Social"; stop; }
if body :text :contains "unsubscribe" { addflag "$bulk"; }
if header :contains "subject" "build failed" { fileinto "CI"; stop; }
if not exists "date" { addflag "$nodate"; }
if header :matches "subject" "*" { set "subject" "${1}"; }
if string :count "ge" :comparator "i;ascii-numeric" "${subject}" "0" { addflag "$seen-by-filter"; }
"""
MAILBOXES = ("Finance", "Lists", "Junk-filter", "Large", "Tickets", "Newsletters", "Social", "CI")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "groupware.settings")
    django.setup()
    from accounts.services import primary_account, user_create
    from groupware.core.blobs import blob_id, blob_store
    from groupware.mail.services.mailboxes import mailbox_create
    from groupware.mail.services.sieve_scripts import sieve_script_activate, sieve_script_create

    users = int(sys.argv[1])
    addresses = []
    for index in range(users):
        address = f"bench{index}@example.com"
        user = user_create(email=address, password=os.environ.get("BENCH_PASSWORD") or None)
        account = primary_account(user)
        for name in MAILBOXES:
            mailbox_create(account=account, name=name)
        stored = blob_store(account=account, stream_or_bytes=SCRIPT.encode(), type="application/sieve")
        script = sieve_script_create(account=account, name="rules", blob=blob_id(stored.blob_id))
        sieve_script_activate(account=account, script=script)
        addresses.append(address)
    print("BENCH_JSON " + json.dumps({"addresses": addresses}), flush=True)


if __name__ == "__main__":
    main()
