"""Command and test signatures, extension checks (RFC 5228 §2.10.5, §3.2) and argument binding."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .dates import DATE_PARTS
from .errors import SieveParseError
from .grammar import Argument, Command, Number, StringList, Tag, Test
from .match import RELATIONS, compile_regex
from .variables import decode_encoded_characters, is_variable_name

SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    "fileinto",
    "envelope",
    "encoded-character",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
    "copy",
    "mailbox",
    "special-use",
    "reject",
    "ereject",
    "imap4flags",
    "variables",
    "vacation",
    "vacation-seconds",
    "relational",
    "subaddress",
    "body",
    "date",
    "index",
    "duplicate",
    "regex",
)

COMPARATORS = {"i;octet": None, "i;ascii-casemap": None, "i;ascii-numeric": "comparator-i;ascii-numeric"}
ZONE_RE = re.compile(r"^[+-]\d{4}$")


@dataclass(frozen=True, slots=True)
class TagSpec:
    value: str | None = None  # None (flag), "string", "stringlist" or "number"
    extension: str | tuple[str, ...] | None = None
    group: str | None = None  # tags of one group are mutually exclusive


@dataclass(frozen=True, slots=True)
class Spec:
    extension: str | tuple[str, ...] | None = None
    positional: tuple[str, ...] = ()
    optional_leading: int = 0  # leading positional arguments that may be left out
    tags: dict[str, TagSpec] = field(default_factory=dict)
    tests: str = "none"  # "none", "one", "list"
    block: bool = False


COMPARATOR = {":comparator": TagSpec("string", None, "comparator")}
MATCH = {
    ":is": TagSpec(None, None, "match"),
    ":contains": TagSpec(None, None, "match"),
    ":matches": TagSpec(None, None, "match"),
    ":regex": TagSpec(None, "regex", "match"),
    ":count": TagSpec("string", "relational", "match"),
    ":value": TagSpec("string", "relational", "match"),
}
ADDRESS_PART = {
    ":all": TagSpec(None, None, "address-part"),
    ":localpart": TagSpec(None, None, "address-part"),
    ":domain": TagSpec(None, None, "address-part"),
    ":user": TagSpec(None, "subaddress", "address-part"),
    ":detail": TagSpec(None, "subaddress", "address-part"),
}
INDEX = {":index": TagSpec("number", "index", "index"), ":last": TagSpec(None, "index", "last")}
FLAGS = {":flags": TagSpec("stringlist", "imap4flags")}
MATCHING = COMPARATOR | MATCH

COMMANDS: dict[str, Spec] = {
    "require": Spec(positional=("stringlist",)),
    "if": Spec(tests="one", block=True),
    "elsif": Spec(tests="one", block=True),
    "else": Spec(block=True),
    "stop": Spec(),
    "keep": Spec(tags=FLAGS),
    "discard": Spec(),
    "redirect": Spec(positional=("string",), tags={":copy": TagSpec(None, "copy")}),
    "fileinto": Spec(
        extension="fileinto",
        positional=("string",),
        tags={
            ":copy": TagSpec(None, "copy"),
            ":create": TagSpec(None, "mailbox"),
            ":specialuse": TagSpec("string", "special-use"),
        }
        | FLAGS,
    ),
    "reject": Spec(extension="reject", positional=("string",)),
    "ereject": Spec(extension="ereject", positional=("string",)),
    "setflag": Spec(extension="imap4flags", positional=("string", "stringlist"), optional_leading=1),
    "addflag": Spec(extension="imap4flags", positional=("string", "stringlist"), optional_leading=1),
    "removeflag": Spec(extension="imap4flags", positional=("string", "stringlist"), optional_leading=1),
    "set": Spec(
        extension="variables",
        positional=("string", "string"),
        tags={
            ":lower": TagSpec(None, None, "case"),
            ":upper": TagSpec(None, None, "case"),
            ":lowerfirst": TagSpec(None, None, "first"),
            ":upperfirst": TagSpec(None, None, "first"),
            ":quotewildcard": TagSpec(None, None, "quote"),
            ":quoteregex": TagSpec(None, "regex", "quote"),
            ":length": TagSpec(None, None, "length"),
        },
    ),
    "vacation": Spec(
        extension=("vacation", "vacation-seconds"),
        positional=("string",),
        tags={
            ":days": TagSpec("number", None, "period"),
            ":seconds": TagSpec("number", "vacation-seconds", "period"),
            ":subject": TagSpec("string"),
            ":from": TagSpec("string"),
            ":addresses": TagSpec("stringlist"),
            ":mime": TagSpec(None),
            ":handle": TagSpec("string"),
        },
    ),
}

TESTS: dict[str, Spec] = {
    "address": Spec(positional=("stringlist", "stringlist"), tags=MATCHING | ADDRESS_PART | INDEX),
    "header": Spec(positional=("stringlist", "stringlist"), tags=MATCHING | INDEX),
    "envelope": Spec(extension="envelope", positional=("stringlist", "stringlist"), tags=MATCHING | ADDRESS_PART),
    "exists": Spec(positional=("stringlist",)),
    "size": Spec(
        positional=("number",), tags={":over": TagSpec(None, None, "size"), ":under": TagSpec(None, None, "size")}
    ),
    "allof": Spec(tests="list"),
    "anyof": Spec(tests="list"),
    "not": Spec(tests="one"),
    "true": Spec(),
    "false": Spec(),
    "mailboxexists": Spec(extension="mailbox", positional=("stringlist",)),
    "specialuse_exists": Spec(extension="special-use", positional=("string", "stringlist"), optional_leading=1),
    "hasflag": Spec(extension="imap4flags", positional=("stringlist", "stringlist"), optional_leading=1, tags=MATCHING),
    "string": Spec(extension="variables", positional=("stringlist", "stringlist"), tags=MATCHING),
    "body": Spec(
        extension="body",
        positional=("stringlist",),
        tags=MATCHING
        | {
            ":raw": TagSpec(None, None, "transform"),
            ":content": TagSpec("stringlist", None, "transform"),
            ":text": TagSpec(None, None, "transform"),
        },
    ),
    "date": Spec(
        extension="date",
        positional=("string", "string", "stringlist"),
        tags=MATCHING
        | INDEX
        | {":zone": TagSpec("string", None, "zone"), ":originalzone": TagSpec(None, None, "zone")},
    ),
    "currentdate": Spec(
        extension="date", positional=("string", "stringlist"), tags=MATCHING | {":zone": TagSpec("string")}
    ),
    "duplicate": Spec(
        extension="duplicate",
        tags={
            ":handle": TagSpec("string"),
            ":header": TagSpec("string", None, "id"),
            ":uniqueid": TagSpec("string", None, "id"),
            ":seconds": TagSpec("number"),
            ":last": TagSpec(None),
        },
    ),
}

ADDRESS_RE = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


def _enabled(extension: str | tuple[str, ...] | None, required: set[str]) -> bool:
    if extension is None:
        return True
    if isinstance(extension, str):
        return extension in required
    return any(item in required for item in extension)


def _describe(extension: str | tuple[str, ...]) -> str:
    return extension if isinstance(extension, str) else extension[0]


class Checker:
    def __init__(self) -> None:
        self.required: set[str] = set()

    def error(self, node: Command | Test | Argument, message: str) -> SieveParseError:
        return SieveParseError(node.line, node.column, message)

    def check_block(self, commands: list[Command], top: bool) -> None:
        previous: str | None = None
        requires_allowed = top
        for command in commands:
            if command.name == "require":
                if not requires_allowed:
                    raise self.error(command, "require must come before any other command")
            else:
                requires_allowed = False
            if command.name in ("elsif", "else") and previous not in ("if", "elsif"):
                raise self.error(command, f"{command.name} without a preceding if")
            self.check_command(command)
            previous = command.name

    def prepare(self, node: Command | Test, table: dict[str, Spec], kind: str) -> Spec:
        """Look the node up, check its extension is required, decode strings, bind arguments."""
        spec = table.get(node.name)
        if spec is None:
            raise self.error(node, f"unknown {kind} '{node.name}'")
        if not _enabled(spec.extension, self.required):
            assert spec.extension is not None
            raise self.error(node, f"{kind} '{node.name}' requires extension '{_describe(spec.extension)}'")
        if node.name != "require" and "encoded-character" in self.required:
            self.decode_strings(node.arguments)
        self.bind(node, spec, kind)
        return spec

    def check_command(self, command: Command) -> None:
        spec = self.prepare(command, COMMANDS, "command")
        if spec.block and command.block is None:
            raise self.error(command, f"{command.name} needs a block")
        if not spec.block and command.block is not None:
            raise self.error(command, f"{command.name} does not take a block")
        self.check_tests(command, spec)
        getattr(self, f"check_{command.name}", lambda node: None)(command)
        if command.block is not None:
            self.check_block(command.block, top=False)

    def check_tests(self, node: Command | Test, spec: Spec) -> None:
        count = len(node.tests)
        if spec.tests == "none" and count:
            raise self.error(node, f"{node.name} does not take a test")
        if spec.tests == "one" and count != 1:
            raise self.error(node, f"{node.name} needs exactly one test")
        if spec.tests == "list" and count == 0:
            raise self.error(node, f"{node.name} needs a list of tests")
        for test in node.tests:
            self.check_test(test)

    def check_test(self, test: Test) -> None:
        spec = self.prepare(test, TESTS, "test")
        self.check_tests(test, spec)
        self.check_matching(test)
        getattr(self, f"check_test_{test.name}", lambda node: None)(test)

    def decode_strings(self, arguments: list[Argument]) -> None:
        for argument in arguments:
            if isinstance(argument, StringList):
                try:
                    argument.values = [decode_encoded_characters(value) for value in argument.values]
                except ValueError as exc:
                    raise self.error(argument, str(exc)) from None

    def bind(self, node: Command | Test, spec: Spec, kind: str) -> None:
        """Split arguments into tags (validated against the spec) and positional values."""
        tags: dict[str, object] = {}
        groups: dict[str, str] = {}
        positional: list[Argument] = []
        arguments = node.arguments
        index = 0
        while index < len(arguments):
            argument = arguments[index]
            index += 1
            if not isinstance(argument, Tag):
                positional.append(argument)
                continue
            if positional:
                raise self.error(argument, f"tag {argument.name} must come before positional arguments")
            tag_spec = spec.tags.get(argument.name)
            if tag_spec is None:
                raise self.error(argument, f"unknown tag {argument.name} for {kind} '{node.name}'")
            if not _enabled(tag_spec.extension, self.required):
                assert tag_spec.extension is not None
                raise self.error(argument, f"tag {argument.name} requires extension '{_describe(tag_spec.extension)}'")
            if argument.name in tags:
                raise self.error(argument, f"duplicate tag {argument.name}")
            if tag_spec.group:
                if tag_spec.group in groups:
                    raise self.error(argument, f"{argument.name} cannot be combined with {groups[tag_spec.group]}")
                groups[tag_spec.group] = argument.name
            value: object = True
            if tag_spec.value is not None:
                if index >= len(arguments):
                    raise self.error(argument, f"tag {argument.name} needs a value")
                value = self.typed(arguments[index], tag_spec.value, f"value of {argument.name}")
                index += 1
            tags[argument.name] = value
        expected = spec.positional
        if len(positional) < len(expected) - spec.optional_leading or len(positional) > len(expected):
            raise self.error(node, f"wrong number of arguments for {kind} '{node.name}'")
        expected = expected[len(expected) - len(positional) :]
        node.positional = [
            self.typed(argument, wanted, f"argument {number} of '{node.name}'")
            for number, (argument, wanted) in enumerate(zip(positional, expected, strict=True), start=1)
        ]
        node.tags = tags

    def typed(self, argument: Argument, wanted: str, what: str) -> object:
        if wanted == "number":
            if not isinstance(argument, Number):
                raise self.error(argument, f"{what} must be a number")
            return argument.value
        if not isinstance(argument, StringList):
            raise self.error(argument, f"{what} must be a {'string' if wanted == 'string' else 'string list'}")
        if wanted == "string":
            if argument.is_list:
                raise self.error(argument, f"{what} must be a single string")
            return argument.values[0]
        return list(argument.values)

    # -- per-command checks --------------------------------------------------------------

    def check_require(self, command: Command) -> None:
        for name in command.positional[0]:  # type: ignore[union-attr]
            if name not in SUPPORTED_EXTENSIONS:
                raise self.error(command, f"unsupported extension '{name}'")
            self.required.add(name)

    def check_redirect(self, command: Command) -> None:
        address = str(command.positional[0])
        if "${" not in address and not ADDRESS_RE.match(address.strip()):
            raise self.error(command, f"invalid redirect address '{address}'")

    def check_set(self, command: Command) -> None:
        name = str(command.positional[0])
        if not is_variable_name(name):
            raise self.error(command, f"invalid variable name '{name}'")

    def check_setflag(self, command: Command) -> None:
        if len(command.positional) == 2 and not is_variable_name(str(command.positional[0])):
            raise self.error(command, f"invalid variable name '{command.positional[0]}'")

    check_addflag = check_setflag
    check_removeflag = check_setflag

    def check_vacation(self, command: Command) -> None:
        if ":from" in command.tags:
            sender = str(command.tags[":from"])
            if "${" not in sender and "@" not in sender:
                raise self.error(command, f"invalid :from address '{sender}'")

    # -- per-test checks -----------------------------------------------------------------

    def check_matching(self, test: Test) -> None:
        comparator = test.tags.get(":comparator")
        if comparator is not None:
            if comparator not in COMPARATORS:
                raise self.error(test, f"unknown comparator '{comparator}'")
            extension = COMPARATORS[str(comparator)]
            if extension is not None and extension not in self.required:
                raise self.error(test, f"comparator '{comparator}' requires extension '{extension}'")
            if comparator == "i;ascii-numeric" and (":contains" in test.tags or ":matches" in test.tags):
                raise self.error(test, "comparator i;ascii-numeric supports only :is, :value and :count")
            if comparator == "i;ascii-numeric" and ":regex" in test.tags:
                raise self.error(test, "comparator i;ascii-numeric cannot be used with :regex")
        for tag in (":count", ":value"):
            if tag in test.tags and str(test.tags[tag]).lower() not in RELATIONS:
                raise self.error(test, f"unknown relational operator '{test.tags[tag]}'")
        if ":regex" in test.tags and test.positional:
            keys = test.positional[-1]
            for key in keys if isinstance(keys, list) else [keys]:
                if "${" in str(key) and "variables" in self.required:
                    continue
                try:
                    compile_regex(str(key), casefold=False)
                except ValueError as exc:
                    raise self.error(test, f"invalid regular expression '{key}': {exc}") from None
        if test.name != "duplicate" and ":last" in test.tags and ":index" not in test.tags:
            raise self.error(test, ":last needs :index")
        if ":index" in test.tags and int(test.tags[":index"]) < 1:  # type: ignore[call-overload]
            raise self.error(test, ":index must be at least 1")

    def check_test_size(self, test: Test) -> None:
        if ":over" not in test.tags and ":under" not in test.tags:
            raise self.error(test, "size needs :over or :under")

    def _check_date_part(self, test: Test, part: str) -> None:
        if "${" not in part and part.lower() not in DATE_PARTS:
            raise self.error(test, f"unknown date part '{part}'")

    def check_test_date(self, test: Test) -> None:
        self._check_date_part(test, str(test.positional[1]))
        self._check_zone(test)

    def check_test_currentdate(self, test: Test) -> None:
        self._check_date_part(test, str(test.positional[0]))
        self._check_zone(test)

    def _check_zone(self, test: Test) -> None:
        zone = test.tags.get(":zone")
        if isinstance(zone, str) and "${" not in zone and not ZONE_RE.match(zone):
            raise self.error(test, f"invalid time zone '{zone}'")

    def check_test_hasflag(self, test: Test) -> None:
        if len(test.positional) == 2:
            for name in test.positional[0]:  # type: ignore[union-attr]
                if not is_variable_name(name):
                    raise self.error(test, f"invalid variable name '{name}'")


def check_script(commands: list[Command]) -> set[str]:
    checker = Checker()
    checker.check_block(commands, top=True)
    return checker.required
