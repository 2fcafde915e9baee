"""Running a parsed script against one message (RFC 5228 §2.10, §4)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .actions import (
    Action,
    Discard,
    DuplicateMark,
    Environment,
    FileInto,
    Keep,
    Limits,
    Outcome,
    Redirect,
    Reject,
    Vacation,
)
from .conditions import Conditions, split_flags
from .errors import SieveParseError, SieveRuntimeError
from .grammar import Command, parse_tree
from .message import Envelope, MessageView
from .spec import ADDRESS_RE, check_script
from .vacation import DAY, vacation_response
from .variables import Variables, apply_modifiers

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Script:
    commands: list[Command]
    extensions: set[str] = field(default_factory=set)
    source_size: int = 0


def parse(text: str, limits: Limits | None = None) -> Script:
    """Parse and check a script; raises SieveParseError with the line and column of the fault."""
    limits = limits or Limits()
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limits.max_script_size:
        raise SieveParseError(1, 1, f"script is larger than {limits.max_script_size} bytes")
    commands = parse_tree(text, limits.max_nesting)
    extensions = check_script(commands)
    return Script(commands=commands, extensions=extensions, source_size=size)


class _Stop(Exception):
    pass


class Run(Conditions):
    def __init__(self, script: Script, message: MessageView, envelope: Envelope, environment: Environment) -> None:
        self.script = script
        self.message = message
        self.envelope = envelope
        self.environment = environment
        self.limits = environment.limits
        self.required = script.extensions
        self.variables = Variables(self.limits.max_variable_size, self.limits.max_variables)
        self.flags: list[str] = []
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.redirects = 0
        self.duplicate_marks: list[DuplicateMark] = []
        self.deadline = time.monotonic() + self.limits.max_runtime
        self.uses_variables = "variables" in self.required

    # -- helpers -------------------------------------------------------------------------

    def expand(self, value: str) -> str:
        return self.variables.expand(value) if self.uses_variables else value

    def check_time(self, line: int) -> None:
        if time.monotonic() > self.deadline:
            raise SieveRuntimeError("script ran too long", line)

    def add(self, action: Action, command: Command) -> None:
        if len(self.actions) >= self.limits.max_actions:
            raise SieveRuntimeError(f"more than {self.limits.max_actions} actions", command.line)
        # RFC 5429 §2.1: a refused message must not also be delivered, forwarded or answered
        # by vacation, and only one reject/ereject is allowed.
        conflicting = Reject | Keep | FileInto | Redirect | Vacation
        if isinstance(action, Reject):
            conflict = next((item for item in self.actions if isinstance(item, conflicting)), None)
            if conflict is not None:
                raise SieveRuntimeError(f"reject conflicts with {_action_name(conflict)}", command.line)
        elif isinstance(action, conflicting) and any(isinstance(item, Reject) for item in self.actions):
            raise SieveRuntimeError(f"{_action_name(action)} conflicts with reject", command.line)
        if isinstance(action, Vacation) and any(isinstance(item, Vacation) for item in self.actions):
            raise SieveRuntimeError("vacation used twice", command.line)
        self.actions.append(action)

    def flag_list(self, command: Command) -> tuple[str, ...]:
        if ":flags" in command.tags:
            return tuple(split_flags(self.expand_list(command.tags[":flags"])))
        return tuple(self.flags)

    # -- execution -----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.block(self.script.commands)
        except _Stop:
            pass

    def block(self, commands: list[Command]) -> None:
        index = 0
        while index < len(commands):
            command = commands[index]
            self.check_time(command.line)
            if command.name == "if":
                chain = [command]
                index += 1
                while index < len(commands) and commands[index].name in ("elsif", "else"):
                    chain.append(commands[index])
                    index += 1
                    if chain[-1].name == "else":
                        break
                for branch in chain:
                    if branch.name == "else" or self.evaluate_test(branch.tests[0]):
                        self.block(branch.block or [])
                        break
                continue
            getattr(self, "command_" + command.name)(command)
            index += 1

    def command_require(self, command: Command) -> None:
        return None

    def command_stop(self, command: Command) -> None:
        raise _Stop

    def command_keep(self, command: Command) -> None:
        self.add(Keep(flags=self.flag_list(command)), command)
        self.implicit_keep = False

    def command_discard(self, command: Command) -> None:
        self.implicit_keep = False

    def command_fileinto(self, command: Command) -> None:
        mailbox = self.expand(str(command.positional[0]))
        if not mailbox:
            raise SieveRuntimeError("fileinto needs a mailbox name", command.line)
        special_use = command.tags.get(":specialuse")
        copy = ":copy" in command.tags
        action = FileInto(
            mailbox=mailbox,
            flags=self.flag_list(command),
            copy=copy,
            create=":create" in command.tags,
            special_use=self.expand(str(special_use)) if special_use is not None else None,
        )
        self.add(action, command)
        if not copy:
            self.implicit_keep = False

    def command_redirect(self, command: Command) -> None:
        address = self.expand(str(command.positional[0])).strip()
        if not ADDRESS_RE.match(address):
            raise SieveRuntimeError(f"invalid redirect address '{address}'", command.line)
        if not any(isinstance(item, Redirect) and item.address.lower() == address.lower() for item in self.actions):
            self.redirects += 1
            if self.redirects > self.limits.max_redirects:
                raise SieveRuntimeError(f"more than {self.limits.max_redirects} redirects", command.line)
        copy = ":copy" in command.tags
        self.add(Redirect(address=address, copy=copy), command)
        if not copy:
            self.implicit_keep = False

    def _reject(self, command: Command, extended: bool) -> None:
        self.add(Reject(reason=self.expand(str(command.positional[0])), extended=extended), command)
        self.implicit_keep = False

    def command_reject(self, command: Command) -> None:
        self._reject(command, extended=False)

    def command_ereject(self, command: Command) -> None:
        self._reject(command, extended=True)

    def _flag_command(self, command: Command, operation: str) -> None:
        if len(command.positional) == 2:
            name = str(command.positional[0])
            current = split_flags([self.variables.get(name)])
        else:
            name = None
            current = list(self.flags)
        given = split_flags(self.expand_list(command.positional[-1]))
        if operation == "set":
            result = given
        elif operation == "add":
            result = split_flags([*current, *given])
        else:
            removed = {flag.lower() for flag in given}
            result = [flag for flag in current if flag.lower() not in removed]
        if name is None:
            self.flags = result
        else:
            self.variables.set(name, " ".join(result))

    def command_setflag(self, command: Command) -> None:
        self._flag_command(command, "set")

    def command_addflag(self, command: Command) -> None:
        self._flag_command(command, "add")

    def command_removeflag(self, command: Command) -> None:
        self._flag_command(command, "remove")

    def command_set(self, command: Command) -> None:
        value = apply_modifiers(self.expand(str(command.positional[1])), command.tags)
        self.variables.set(str(command.positional[0]), value)

    def command_vacation(self, command: Command) -> None:
        tags = command.tags
        if ":seconds" in tags:
            seconds = int(tags[":seconds"])  # type: ignore[call-overload]
        else:
            seconds = max(1, int(tags.get(":days", 7))) * DAY  # type: ignore[call-overload]
        seconds = min(seconds, self.limits.max_vacation_days * DAY)
        subject = self.expand(str(tags[":subject"])) if ":subject" in tags else None
        from_address = self.expand(str(tags[":from"])) if ":from" in tags else None
        handle = self.expand(str(tags[":handle"])) if ":handle" in tags else None
        addresses = self.expand_list(tags.get(":addresses", []))
        action = vacation_response(
            message=self.message,
            envelope=self.envelope,
            environment=self.environment,
            reason=self.expand(str(command.positional[0])),
            subject=subject,
            from_address=from_address,
            addresses=addresses,
            mime=":mime" in tags,
            handle=handle,
            seconds=seconds,
        )
        if action is not None:
            self.add(action, command)

    # -- result ------------------------------------------------------------------------

    def outcome(self) -> Outcome:
        actions: list[Action] = []
        delivered: dict[str, int] = {}
        redirected: set[str] = set()
        pending = list(self.actions)
        if self.implicit_keep:
            pending.append(Keep(flags=tuple(self.flags)))
        for action in pending:
            if isinstance(action, Keep | FileInto):
                # RFC 5228 §4.1/§4.3: a message is filed into one mailbox only once.
                name = "INBOX" if isinstance(action, Keep) else action.mailbox
                key = "inbox" if name.lower() == "inbox" else name
                if key in delivered:
                    position = delivered[key]
                    previous = actions[position]
                    merged = tuple(split_flags([*previous.flags, *action.flags]))  # type: ignore[union-attr]
                    actions[position] = _with_flags(previous, merged)
                    continue
                delivered[key] = len(actions)
            elif isinstance(action, Redirect):
                if action.address.lower() in redirected:
                    continue
                redirected.add(action.address.lower())
            actions.append(action)
        if not any(isinstance(action, Keep | FileInto | Redirect | Reject) for action in actions):
            actions.append(Discard())
        return Outcome(
            actions=actions,
            implicit_keep=self.implicit_keep,
            errors=[],
            duplicate_marks=self.duplicate_marks,
        )


def _with_flags(action: Action, flags: tuple[str, ...]) -> Action:
    if isinstance(action, Keep):
        return Keep(flags=flags)
    assert isinstance(action, FileInto)
    return FileInto(action.mailbox, flags, action.copy, action.create, action.special_use)


def _action_name(action: Action) -> str:
    names = {Keep: "keep", FileInto: "fileinto", Redirect: "redirect", Vacation: "vacation", Reject: "reject"}
    return names.get(type(action), "action")


def evaluate(
    script: Script,
    *,
    message: MessageView,
    envelope: Envelope,
    environment: Environment | None = None,
) -> Outcome:
    """Run ``script``; on a run-time error the message is kept and the error reported."""
    environment = environment or Environment()
    run = Run(script, message, envelope, environment)
    try:
        run.run()
        return run.outcome()
    except SieveRuntimeError as exc:
        error = str(exc)
    except RecursionError:
        error = "script nested too deeply"
    except Exception:  # a bug in the engine must not lose the message (RFC 5228 §2.10.6)
        logger.exception("sieve: unexpected error")
        error = "internal error while running the script"
    return Outcome(actions=[Keep()], implicit_keep=True, errors=[error], duplicate_marks=[])
