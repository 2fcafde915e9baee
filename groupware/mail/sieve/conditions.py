"""Evaluation of Sieve tests (RFC 5228 §5 and the extensions' tests)."""

from __future__ import annotations

import hashlib
from datetime import datetime

from .actions import DuplicateMark, Environment, Limits
from .dates import date_part, parse_date_header, parse_zone
from .errors import SieveRuntimeError
from .grammar import Test
from .match import Matcher
from .message import Envelope, MessageView, parse_addresses, split_address
from .variables import Variables


def split_flags(values: list[str]) -> list[str]:
    """RFC 5232 §3: flag lists are space-separated; duplicates (case-insensitive) dropped."""
    seen: set[str] = set()
    result: list[str] = []
    for value in values:
        for flag in value.split():
            if flag.lower() not in seen:
                seen.add(flag.lower())
                result.append(flag)
    return result


def address_part(address: str, part: str) -> str | None:
    local, domain = split_address(address)
    if part == ":all":
        return address
    if part == ":domain":
        return domain
    if domain is None and part in (":localpart", ":user", ":detail"):
        return None
    if part == ":localpart":
        return local
    user, plus, detail = local.partition("+")  # RFC 5233 §4: "+" separates the detail
    if part == ":user":
        return user
    return detail if plus else None  # no separator: :detail matches nothing


class Conditions:
    message: MessageView
    envelope: Envelope
    environment: Environment
    limits: Limits
    variables: Variables
    required: set[str]
    flags: list[str]
    duplicate_marks: list[DuplicateMark]
    deadline: float

    def expand(self, value: str) -> str:
        raise NotImplementedError

    def expand_list(self, values: object) -> list[str]:
        return [self.expand(value) for value in values]  # type: ignore[attr-defined]

    def check_time(self, line: int) -> None:
        raise NotImplementedError

    def evaluate_test(self, test: Test) -> bool:
        self.check_time(test.line)
        handler = getattr(self, "test_" + test.name)
        return bool(handler(test))

    def matched(self, test: Test, values: list[str], keys: list[str]) -> bool:
        matcher = Matcher.from_tags(test.tags, self.limits.regex_timeout, self.deadline)
        try:
            result, captures = matcher.test(values, keys)
        except SieveRuntimeError as exc:
            raise SieveRuntimeError(exc.message, test.line) from None
        if result and captures is not None and "variables" in self.required:
            self.variables.set_match(captures)  # RFC 5229 §3.2: only a successful match sets them
        return result

    def select_index(self, test: Test, values: list[str]) -> list[str]:
        """RFC 5260 §6: :index N [:last] picks one occurrence of the field."""
        if ":index" not in test.tags:
            return values
        index = int(test.tags[":index"])  # type: ignore[call-overload]
        if index > len(values):
            return []
        return [values[-index] if ":last" in test.tags else values[index - 1]]

    # -- RFC 5228 --------------------------------------------------------------------------

    def test_true(self, test: Test) -> bool:
        return True

    def test_false(self, test: Test) -> bool:
        return False

    def test_not(self, test: Test) -> bool:
        return not self.evaluate_test(test.tests[0])

    def test_allof(self, test: Test) -> bool:
        return all(self.evaluate_test(item) for item in test.tests)

    def test_anyof(self, test: Test) -> bool:
        return any(self.evaluate_test(item) for item in test.tests)

    def test_exists(self, test: Test) -> bool:
        return all(self.message.has_header(name) for name in self.expand_list(test.positional[0]))

    def test_size(self, test: Test) -> bool:
        limit = int(test.positional[0])  # type: ignore[call-overload]
        return self.message.size > limit if ":over" in test.tags else self.message.size < limit

    def test_header(self, test: Test) -> bool:
        values: list[str] = []
        for name in self.expand_list(test.positional[0]):
            values.extend(self.select_index(test, self.message.header_values(name)))
        return self.matched(test, values, self.expand_list(test.positional[1]))

    def _address_values(self, test: Test, addresses: list[str]) -> list[str]:
        part = next((tag for tag in (":localpart", ":domain", ":user", ":detail") if tag in test.tags), ":all")
        values = []
        for address in addresses:
            value = address_part(address, part)
            if value is not None:
                values.append(value)
        return values

    def test_address(self, test: Test) -> bool:
        addresses: list[str] = []
        for name in self.expand_list(test.positional[0]):
            for value in self.select_index(test, self.message.raw_header_values(name)):
                addresses.extend(parse_addresses(value))
        return self.matched(test, self._address_values(test, addresses), self.expand_list(test.positional[1]))

    def test_envelope(self, test: Test) -> bool:
        values: list[str] = []
        for part in self.expand_list(test.positional[0]):
            part = part.lower()
            if part == "from":
                sender = self.envelope.mail_from.strip().strip("<>")
                if not sender:
                    values.append("")  # §5.4: the null reverse-path matches "" whatever the part
                    continue
                values.extend(self._address_values(test, [sender]))
            elif part == "to":
                values.extend(self._address_values(test, [self.envelope.rcpt_to.strip().strip("<>")]))
            elif part == "auth" and self.envelope.auth:
                values.extend(self._address_values(test, [self.envelope.auth]))
        return self.matched(test, values, self.expand_list(test.positional[1]))

    # -- extensions --------------------------------------------------------------------------

    def test_string(self, test: Test) -> bool:
        values = self.expand_list(test.positional[0])
        if ":count" in test.tags:
            values = [value for value in values if value]  # RFC 5229 §5: empty strings aren't counted
        return self.matched(test, values, self.expand_list(test.positional[1]))

    def test_hasflag(self, test: Test) -> bool:
        if len(test.positional) == 2:
            flags = split_flags([self.variables.get(name) for name in test.positional[0]])  # type: ignore[attr-defined]
            keys = test.positional[1]
        else:
            flags = list(self.flags)
            keys = test.positional[0]
        return self.matched(test, flags, self.expand_list(keys))

    def test_mailboxexists(self, test: Test) -> bool:
        return all(self.environment.mailbox_exists(name) for name in self.expand_list(test.positional[0]))

    def test_specialuse_exists(self, test: Test) -> bool:
        mailbox = self.expand(str(test.positional[0])) if len(test.positional) == 2 else None
        return bool(self.environment.special_use_exists(mailbox, self.expand_list(test.positional[-1])))

    def test_body(self, test: Test) -> bool:
        keys = self.expand_list(test.positional[0])
        if ":raw" in test.tags:
            return self.matched(test, [self.message.raw_body], keys)
        if ":content" in test.tags:
            wanted = [value.lower().strip() for value in self.expand_list(test.tags[":content"])]
        else:
            wanted = ["text"]  # :text, the default transform: the text parts
        values = []
        # Containers (a multipart's prologue and epilogue, an embedded message's header)
        # only when a type asked for can name one.
        containers = any(item == "" or item.split("/", 1)[0] in ("multipart", "message") for item in wanted)
        for part in self.message.parts if containers else self.message.leaf_parts:
            main = part.content_type.split("/", 1)[0]
            # The type first: only the parts asked for are decoded.
            if (
                not any(
                    item == "" or item == part.content_type or ("/" not in item and item == main) for item in wanted
                )
                or part.text is None
            ):
                continue
            # RFC 5173 §5.3: :text may drop the markup of text/html.
            values.append(part.text if ":content" in test.tags else part.plain)
        return self.matched(test, values, keys)

    def _zoned(self, test: Test, moment: datetime) -> datetime:
        if ":originalzone" in test.tags:
            return moment
        if ":zone" in test.tags:
            zone = parse_zone(self.expand(str(test.tags[":zone"])))
            if zone is None:
                return moment  # RFC 5260 §4.1: an unknown zone leaves the date alone
            return moment.astimezone(zone)
        return moment.astimezone(self.environment.local_zone)

    def test_date(self, test: Test) -> bool:
        header = self.expand(str(test.positional[0]))
        part = self.expand(str(test.positional[1]))
        values = []
        for raw in self.select_index(test, self.message.header_values(header)):
            # RFC 5260 §4: in Received and similar fields the date follows the last ";".
            moment = parse_date_header(raw.rsplit(";", 1)[-1]) if ";" in raw else parse_date_header(raw)
            if moment is None:
                continue
            value = date_part(self._zoned(test, moment), part)
            if value is not None:
                values.append(value)
        return self.matched(test, values, self.expand_list(test.positional[2]))

    def test_currentdate(self, test: Test) -> bool:
        part = self.expand(str(test.positional[0]))
        value = date_part(self._zoned(test, self.environment.now), part)
        return self.matched(test, [value] if value is not None else [], self.expand_list(test.positional[1]))

    def test_duplicate(self, test: Test) -> bool:
        """RFC 7352: true when this id (per handle) was seen within the period."""
        if ":uniqueid" in test.tags:
            unique = self.expand(str(test.tags[":uniqueid"]))
        else:
            header = self.expand(str(test.tags.get(":header", "message-id")))
            values = self.message.header_values(header)
            if not values:
                return False  # §3.1: no id, nothing to compare or record
            unique = values[0].strip()
            if header.lower() == "message-id":
                unique = unique.strip().strip("<>").strip()
        handle = self.expand(str(test.tags.get(":handle", "")))
        seconds = int(test.tags.get(":seconds", self.limits.default_duplicate_seconds))  # type: ignore[call-overload]
        seconds = min(seconds, self.limits.max_duplicate_seconds)
        last = ":last" in test.tags
        digest = hashlib.sha256(f"{handle}\0{unique}".encode("utf-8", errors="surrogatepass")).hexdigest()
        seen = bool(self.environment.duplicate_seen(digest, seconds, last))
        self.duplicate_marks.append(DuplicateMark(key=digest, seconds=seconds, last=last))
        return seen
