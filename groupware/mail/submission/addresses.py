"""Which addresses a user may send from, and what counts as a valid SMTP address."""

from __future__ import annotations

import re
from dataclasses import dataclass

from accounts.models import Alias, User

# RFC 5321 §4.1.2 Mailbox, ASCII only (no SMTPUTF8): a dot-atom or quoted local part and
# a domain (or an address literal). No CR, LF, NUL, spaces or angle brackets anywhere:
# those are how header and command injection start.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = rf'(?:{_ATEXT}+(?:\.{_ATEXT}+)*|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*")'
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[A-Za-z0-9:.]+\])"
_MAILBOX = re.compile(rf"^{_LOCAL}@{_DOMAIN}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control(value: str) -> bool:
    """CR, LF, NUL or another control character: never allowed in a header or envelope value."""
    return _CONTROL.search(value) is not None


def address_valid(address: object) -> bool:
    """Whether a string is an SMTP mailbox we can send to or from."""
    return isinstance(address, str) and len(address) <= 254 and _MAILBOX.match(address) is not None


def address_domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def address_key(address: str) -> str:
    """Compare form: local parts are matched case-insensitively in practice (RFC 5321 §2.4
    leaves it to the receiver; this server does so), domains always are (RFC 4343)."""
    return address.lower()


@dataclass(frozen=True)
class SenderAddresses:
    """The addresses a user owns: exact addresses and whole domains."""

    exact: frozenset[str]
    domains: frozenset[str]

    def allows(self, address: str) -> bool:
        key = address_key(address)
        return key in self.exact or address_domain(key) in self.domains

    def allows_identity_email(self, email: str) -> bool:
        """An Identity's email: an owned address, or ``*@domain`` for an owned domain."""
        if email.startswith("*@"):
            return address_domain(email) in self.domains
        return self.allows(email)


def sender_addresses(user: User) -> SenderAddresses:
    """The login, the user's aliases; catch-all aliases (``@domain``) and the domains the
    admin gave them (SenderPolicy.owned_domains) make them the owner of a whole domain."""
    from groupware.mail.submission.models import SenderPolicy

    exact = {address_key(user.email)}
    domains: set[str] = set()
    for address in Alias.objects.filter(user=user).values_list("address", flat=True):
        if address.startswith("@"):
            domains.add(address_domain(address))
        else:
            exact.add(address_key(address))
    owned = SenderPolicy.objects.filter(user=user).values_list("owned_domains__name", flat=True)
    domains.update(name.lower() for name in owned if name)
    return SenderAddresses(frozenset(exact), frozenset(domains))


def identity_allows(identity_email: str, address: str) -> bool:
    """Whether an Identity's email covers a From address (``*@domain`` covers the domain)."""
    if identity_email.startswith("*@"):
        return address_domain(address) == address_domain(identity_email)
    return address_key(identity_email) == address_key(address)
