"""Run a parsed scenario against a booted simulated kernel.

The runner is the shell: it runs each command as the current task, sends
its output where the redirection says, advances simulated time a little
per command (a command takes time on a real machine too) and turns the
helper verbs' deaths into an exit status.
"""

import inspect
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from klpsim.kernel.clock import NSEC_PER_MSEC
from klpsim.kernel.errno import strerror
from klpsim.kernel.fs import NotModelled
from klpsim.kernel.machine import KernelOops
from klpsim.kernel.module import ModuleSpec
from klpsim.livepatch.system import System
from klpsim.modules.definition import DefinitionError, load_definition, parse_definition
from klpsim.modules.selftests import builtin_modules
from klpsim.scenario.bpfverbs import BPF_VERBS
from klpsim.scenario.helpers import HELPERS, ScriptExit
from klpsim.scenario.parser import Command, ScriptError
from klpsim.scenario.shell import SHELL_COMMANDS
from klpsim.scenario.simverbs import SIM_VERBS

__all__ = ["Runner", "ModuleResolver"]

EPOCH = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
COMMAND_COST_NS = NSEC_PER_MSEC


class ModuleResolver:
    """Find a module by name: --modules dirs, test_modules/ beside the script, built-ins."""

    def __init__(self, profile, module_dirs: list[Path], script_dir: Path | None):
        self.profile = profile
        self.dirs = list(module_dirs)
        if script_dir is not None:
            self.dirs.append(script_dir / "test_modules")
        self._builtin: dict[str, ModuleSpec] | None = None
        self._cache: dict[str, ModuleSpec | None] = {}
        self.texts: dict[str, str] = {}  # in-memory definitions: {name: TOML text}

    @staticmethod
    def module_name(path: str) -> str:
        name = path.rsplit("/", 1)[-1]
        if name.endswith(".ko"):
            name = name[:-3]
        return name.replace("-", "_")

    def resolve(self, path: str):
        """The ModuleSpec for an insmod argument, or None if there is none."""
        name = self.module_name(path)
        if name in self._cache:
            return self._cache[name]
        spec = None
        if name in self.texts:
            spec = parse_definition(self.texts[name], Path(f"{name}.toml"), self.profile)
        for d in self.dirs if spec is None else ():
            candidate = d / f"{name}.toml"
            if candidate.is_file():
                spec = load_definition(candidate, self.profile)
                break
        if spec is None:
            if self._builtin is None:
                self._builtin = builtin_modules(self.profile)
            spec = self._builtin.get(name)
        self._cache[name] = spec
        return spec


class Runner:
    """Runs commands; owns the script's stdout/stderr and exit status."""

    def __init__(
        self,
        system: System,
        resolver: ModuleResolver,
        path: str = "<script>",
        out: TextIO | None = None,
        err: TextIO | None = None,
        transcript: bool = True,
        color: bool = False,
        show_stdout: bool | None = None,
    ):
        self.system = system
        self.kernel = system.kernel
        self.fs = system.kernel.fs
        self.resolver = resolver
        self.path = path
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.transcript = transcript
        # --dmesg prints only the log; a transcript also echoes commands.
        self.show_stdout = transcript if show_stdout is None else show_stdout
        self.color = color
        self.last_dmesg: int | None = None
        self.check_failed = False
        self.line = 0
        self.verbs: dict[str, Callable] = dict(SIM_VERBS, **BPF_VERBS)
        self.sleepers: dict[int, int] = {}
        self._mid_line = False
        self.before_command = None  # hooks for klpsim run --check
        self.after_command = None  # pid -> stack depth before sleep_task
        if transcript:
            self.kernel.log.listeners.append(self._show_record)

    # -- output ------------------------------------------------------------------

    def _paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _show_record(self, rec) -> None:
        if self._mid_line:  # e.g. start_test's "TEST: NAME ... "
            self.out.write("\n")
            self._mid_line = False
        stamp = f"[{rec.ts_ns // 10**9:5d}.{rec.ts_ns // 1000 % 10**6:06d}] "
        for line in rec.text.split("\n"):
            self.out.write(self._paint("33" if rec.level <= 4 else "36", stamp + line) + "\n")
            stamp = " " * len(stamp)

    def stdout(self, text: str) -> None:
        if self.show_stdout and text:
            self.out.write(text)
            self._mid_line = not text.endswith("\n")

    def stderr(self, text: str) -> None:
        self.err.write(text)

    # -- kernel-facing helpers ------------------------------------------------------

    def log(self, text: str) -> int:
        """``echo TEXT > /dev/kmsg``; returns the record's index."""
        self.kernel.log.printk(4, text, origin="user")
        return len(self.kernel.log.records) - 1

    def rfc3339_ns(self) -> str:
        t = EPOCH + timedelta(microseconds=self.kernel.clock.now // 1000)
        return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{self.kernel.clock.now % 10**9:09d}+00:00"

    def dmesg_since_canary(self) -> list[str]:
        log = self.kernel.log
        start = 0 if self.last_dmesg is None else self.last_dmesg + 1
        records = log.records[start:]
        saved, log.records = log.records, records
        try:
            return log.dmesg(notime=False)
        finally:
            log.records = saved

    def advance(self, ns: int) -> None:
        self.kernel.clock.advance(ns)

    def resolve_module(self, path: str):
        try:
            spec = self.resolver.resolve(path)
        except DefinitionError as e:
            raise ScriptError(self.path, self.line, str(e)) from None
        if spec is None:
            raise ScriptError(
                self.path, self.line, f"unknown module '{self.resolver.module_name(path)}'"
            )
        return spec

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
            raise ScriptError(self.path, self.line, str(e)) from None
        if ret >= 0:
            return 0
        self.stderr(f"bash: echo: write error: {strerror(ret)}\n")
        return 1

    def shell(self, words: list[str]) -> tuple[int, str, str]:
        """Run one plain shell command, capturing its output."""
        fn = SHELL_COMMANDS.get(words[0])
        if fn is None:
            raise ScriptError(self.path, self.line, f"unknown command '{words[0]}'")
        try:
            return fn(self, words[1:])
        except KernelOops:
            # The kernel killed the command's process; the script goes on.
            pid = self.kernel.sched.current.pid
            return 137, "", f"bash: line {self.line}: {pid:>5} Killed  {' '.join(words)}\n"

    # -- running ---------------------------------------------------------------------

    def run(self, commands: list[Command]) -> int:
        """Run the script; its exit status (0, 1 for a failure, 4 for a skip)."""
        self.validate(commands)
        try:
            for cmd in commands:
                self.execute(cmd)
        except ScriptExit as e:
            return e.status
        return 1 if self.check_failed else 0

    def validate(self, commands: list[Command]) -> None:
        """Refuse unknown verbs and wrong argument counts before running anything."""
        for cmd in commands:
            self.line = cmd.line
            verb = cmd.words[0]
            helper = HELPERS.get(verb) or self.verbs.get(verb)
            if helper is not None:
                self._check_arity(verb, helper, cmd.words[1:])
            elif verb not in SHELL_COMMANDS:
                raise ScriptError(self.path, cmd.line, f"unknown command '{verb}'")

    def execute(self, cmd: Command) -> int:
        self.line = cmd.line
        if self.before_command is not None:
            self.before_command(cmd)
        verb = cmd.words[0]
        if self.transcript:
            self.out.write(self._paint("1", f"$ {cmd.text}") + "\n")
        helper = HELPERS.get(verb) or self.verbs.get(verb)
        if helper is not None:
            if cmd.redirect is not None:
                raise ScriptError(self.path, cmd.line, f"'{verb}' cannot be redirected")
            self._check_arity(verb, helper, cmd.words[1:])
            status = helper(self, *cmd.words[1:]) or 0
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
        if self.after_command is not None:
            self.after_command(cmd)
        return status

    def _check_arity(self, verb: str, fn: Callable, args: tuple) -> None:
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]
        required = [p for p in params if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD]
        varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
        if len(args) < len(required) or (not varargs and len(args) > len(params)):
            names = " ".join(p.name.upper() for p in params if p.kind != p.VAR_POSITIONAL)
            raise ScriptError(
                self.path, self.line, f"usage: {verb} {names}{' ...' if varargs else ''}".rstrip()
            )
