"""Run a parsed scenario against a booted simulated kernel.

The runner is the shell: it checks every command against the verb table
before the first one runs (verbs, arguments, redirections, and every
module a command loads), then runs each command as the current task,
sends its output where the redirection says, advances simulated time a
little per command (a command takes time on a real machine too) and turns
the helper verbs' deaths into an exit status. What the verbs are is the
verb table's business (scenario/verbs.py); where output goes is
scenario/output.py's; which module a name means is the resolver's.
"""

from collections.abc import Callable
from typing import TypeVar

from klpsim.kernel.clock import NSEC_PER_MSEC
from klpsim.kernel.errno import strerror
from klpsim.kernel.fs import NotModelled
from klpsim.kernel.machine import KernelOops
from klpsim.kernel.module import ModuleSpec
from klpsim.kernel.printk import escape
from klpsim.model.system import System
from klpsim.modules.resolver import ModuleError, ModuleResolver
from klpsim.scenario.output import Output
from klpsim.scenario.parser import Command, ScriptError
from klpsim.scenario.verbs import ArgError, Registry, Result, Verb

__all__ = ["Runner", "ScriptExit"]

EPOCH = (2026, 11, 27, 12, 0, 0)
"""The simulated machine's wall clock at boot (UTC)."""
COMMAND_COST_NS = NSEC_PER_MSEC

T = TypeVar("T")


class ScriptExit(Exception):
    """The script stops (die, skip, exit) with *status*."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class Runner:
    """Runs commands; owns the script's place (file and line) and verb state."""

    def __init__(
        self,
        system: System,
        resolver: ModuleResolver,
        registry: Registry,
        output: Output,
        path: str = "<script>",
    ):
        self.system = system
        self.kernel = system.kernel
        self.fs = system.kernel.fs
        self.resolver = resolver
        self.registry = registry
        self.output = output
        self.path = path
        self.line = 0
        self._state: dict[type, object] = {}
        self.history: list[tuple[int, int, str]] = []
        """(simulated time, line, text) of each command run, for pictures."""
        self.after_command: list[Callable[[], None]] = []
        """Called after each command has run (the notes' health check)."""
        output.follow(self.kernel.log)

    def state(self, cls: type[T]) -> T:
        """The state a verb family keeps for this run (one *cls* per runner)."""
        st = self._state.get(cls)
        if st is None:
            st = self._state[cls] = cls()
        assert isinstance(st, cls)
        return st

    def error(self, message: str) -> ScriptError:
        """A script error at the current line."""
        return ScriptError(self.path, self.line, escape(message))

    # -- what verbs use -------------------------------------------------------------

    def stdout(self, text: str) -> None:
        self.output.stdout(text)

    def stderr(self, text: str) -> None:
        self.output.stderr(text)

    def log(self, text: str) -> int:
        """``echo TEXT > /dev/kmsg``; returns the record's index."""
        self.kernel.log.printk(4, text, origin="user")
        return len(self.kernel.log.records) - 1

    def rfc3339_ns(self) -> str:
        from datetime import UTC, datetime, timedelta  # only start_test needs it

        now = self.kernel.clock.now
        t = datetime(*EPOCH, tzinfo=UTC) + timedelta(microseconds=now // 1000)
        return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{now % 10**9:09d}+00:00"

    def advance(self, ns: int) -> None:
        self.kernel.clock.advance(ns)

    def resolve_module(self, path: str) -> ModuleSpec:
        """The module an insmod argument names (checked before the script ran)."""
        try:
            return self.resolver.resolve(path)
        except ModuleError as e:
            raise self.error(str(e)) from None

    def write(self, path: str, data: str, append: bool = False) -> int:
        """A shell redirection (``>``, or ``>>`` with *append*) into *path*;
        errors as bash reports them: a failed open names the file, a failed
        write is ``echo: write error``."""
        if path == "/dev/kmsg":
            if data:
                self.kernel.log.printk(4, data, origin="user")
            return 0
        try:
            ret = self.fs.open_write(path, append)
            if ret < 0:
                self.stderr(f"bash: {path}: {strerror(ret)}\n")
                return 1
            ret = self.fs.store(path, data)
        except NotModelled as e:
            raise self.error(str(e)) from None
        except KernelOops:
            # The write ran in the script's own shell (echo is a builtin,
            # and so are the helpers): the kernel killed the script. Its
            # caller's shell reports it.
            self.stderr("Killed\n")
            raise ScriptExit(137) from None
        if ret >= 0:
            return 0
        self.stderr(f"bash: echo: write error: {strerror(ret)}\n")
        return 1

    def shell(self, words: list[str]) -> Result:
        """Run one plain shell command, capturing its output."""
        verb = self.registry.get(words[0])
        if verb is None or not verb.command:
            raise self.error(f"'{words[0]}' is not a shell command")
        try:
            result: Result = verb.run(self, words[1:])
        except KernelOops:
            return self._killed(words)
        return result

    def _killed(self, words: list[str]) -> Result:
        """The kernel oopsed and killed the command's process: bash's report;
        the script goes on."""
        pid = self.kernel.sched.current.pid
        return 137, "", f"bash: line {self.line}: {pid:>5} Killed  {' '.join(words)}\n"

    # -- checking ---------------------------------------------------------------------

    def validate(self, commands: list[Command]) -> None:
        """Check every command before anything runs: known verbs, arguments,
        redirections, and the modules they load (resolved and parsed)."""
        for cmd in commands:
            self.line = cmd.line
            try:
                self._validate(list(cmd.words), cmd.redirect)
            except ArgError as e:
                raise self.error(str(e)) from None

    def _validate(
        self, words: list[str], redirect: tuple[str, str] | None, inside: str = ""
    ) -> None:
        verb = self.registry.get(words[0])
        if verb is None:
            raise ArgError(f"{inside}unknown command '{words[0]}'")
        if inside and not verb.command:
            raise ArgError(f"{inside}'{verb.name}' is not a shell command it can run")
        if redirect is not None and not verb.command:
            raise ArgError(f"'{verb.name}' cannot be redirected")
        bound = verb.bind(words[1:])
        for name in verb.modules(bound):
            self.resolve_module(name)
        if redirect is not None:
            self.registry.check_redirect(verb, words[1:], redirect[1])
        if verb.runs_command:
            self._validate(words[1:], None, f"{verb.name}: ")

    # -- running ----------------------------------------------------------------------

    def run(self, commands: list[Command]) -> int:
        """Check, then run the script; its exit status (0, 1 for a failure, 4 for a skip)."""
        self.validate(commands)
        try:
            for cmd in commands:
                self.execute(cmd)
        except ScriptExit as e:
            return e.status
        return 0

    def execute(self, cmd: Command) -> int:
        """Run one command (validated before); its exit status."""
        self.line = cmd.line
        self.history.append((self.kernel.clock.now, cmd.line, cmd.text))
        self.output.command(cmd.text)
        verb: Verb | None = self.registry.get(cmd.words[0])
        assert verb is not None, "validate() first"
        if not verb.command:
            try:
                status = verb.run(self, *cmd.words[1:]) or 0
            except KernelOops:
                status, _, err = self._killed(list(cmd.words))
                self.stderr(err)
        else:
            status, out, err = self.shell(list(cmd.words))
            if cmd.redirect is not None:
                wstatus = self.write(cmd.redirect[1], out, append=cmd.redirect[0] == ">>")
                status = status or wstatus
            else:
                self.stdout(out)
            if err:
                self.stderr(err)
        self.advance(COMMAND_COST_NS)
        for hook in self.after_command:
            hook()
        return int(status)
