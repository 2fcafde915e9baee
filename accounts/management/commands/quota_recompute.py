"""Rebuild the accounts' quota usage counters from their data (accounts.quotas)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.models import Account
from accounts.quotas import quota_recompute


class Command(BaseCommand):
    help = "Recount the quota usage (octets and number of messages) of every account, or of the accounts given."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("emails", nargs="*", help="owners' email addresses (default: every account)")

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = Account.objects.select_related("owner").order_by("pk")
        if options["emails"]:
            accounts = accounts.filter(owner__email__in=options["emails"])
        for account in accounts:
            before = (account.used_octets, account.used_count)
            after = quota_recompute(account=account)
            note = "" if before == after else f" (was {before[0]} octets, {before[1]} messages)"
            self.stdout.write(f"{account.owner.email} {account.name}: {after[0]} octets, {after[1]} messages{note}")
