"""The one way in: boot a profile, resolve modules, run a script.

The command line, the tools, the benchmarks and the tests all use
:class:`Session`; none of them builds a kernel, a resolver or a runner by
hand. A session runs a whole script (:meth:`Session.run`) or one line at a
time with the invariants checked after each (:meth:`Session.step`, what
``klpsim run --check`` and the state machines use), and can write the
lines it ran, with the module definitions they use, as a standalone
scenario (:meth:`Session.write_scenario`).
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from klpsim.kernel.machine import Kernel
from klpsim.kernel.symbols import SymbolSource
from klpsim.livepatch.core import Klp
from klpsim.livepatch.profiles import DEFAULT_PROFILE, Profile, all_profiles
from klpsim.model.system import System, UnknownConfig, boot
from klpsim.modules.resolver import ModuleResolver
from klpsim.scenario.output import Output
from klpsim.scenario.parser import Command, parse_script
from klpsim.scenario.runner import Runner, ScriptExit
from klpsim.scenario.verbs import default_registry

if TYPE_CHECKING:
    from klpsim.artifacts.snapshot import Snapshot
    from klpsim.hostboot import HostBoot
    from klpsim.model.checker import Checker
    from klpsim.model.invariants import Violation
    from klpsim.model.notes import Notes

__all__ = ["Session", "SessionError", "CheckFailed", "InvariantViolation"]


class SessionError(Exception):
    """A session that cannot start: an unknown profile or config option, a
    module directory that is not one. One line."""


class CheckFailed(Exception):
    """``--check``: the first broken invariant, as one line naming the
    script line, the invariant and the functions involved."""

    def __init__(self, path: str, cmd: Command, violation: Violation):
        funcs = f" [functions: {', '.join(violation.functions)}]" if violation.functions else ""
        super().__init__(
            f"{path}:{cmd.line}: '{cmd.text}': {violation.invariant}: {violation.detail}{funcs}"
        )
        self.violation = violation


class InvariantViolation(AssertionError):
    """The first broken invariant of :meth:`Session.step`, with the step."""

    def __init__(self, step: int, line: str, violations: list[Violation]):
        v = violations[0]
        super().__init__(f"step {step} ({line}): {v.invariant}: {v.detail}")
        self.step = step
        self.line = line
        self.violations = violations


class Session:
    """A booted kernel of one profile, its modules, and a shell to drive it.

    *definitions* are in-memory module definitions ({name: TOML text});
    *module_dirs* are ``--modules`` directories; *script_dir* is where the
    script lives (its ``test_modules/`` folder is searched after them).
    *symbols* is a real symbol table (``--kallsyms``) the kernel takes its
    names from (model/system.py's boot()). Output goes to *out* and *err*
    (captured in memory if not given): a transcript, or with
    ``transcript=False`` only what commands print (*show_stdout*) and their
    errors. A transcript has the model's notes (model/notes.py) unless
    *notes* is false.
    """

    def __init__(
        self,
        profile: str | Profile = DEFAULT_PROFILE,
        *,
        config: dict[str, bool] | None = None,
        module_dirs: list[Path] | tuple[Path, ...] = (),
        script_dir: Path | None = None,
        definitions: dict[str, str] | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
        transcript: bool = False,
        color: bool = False,
        show_stdout: bool = True,
        path: str = "<session>",
        nr_cpus: int = 2,
        extra_funcs: int = 0,
        notes: bool = True,
        symbols: SymbolSource | None = None,
        skip_modules: frozenset[str] = frozenset(),
    ):
        if isinstance(profile, str) and profile not in all_profiles():
            raise SessionError(f"unknown kernel profile '{profile}' (see 'klpsim kernels')")
        for d in module_dirs:
            if not os.path.isdir(d):  # False, not OSError, for a name too long
                raise SessionError(f"--modules {d}: not a directory")
        try:
            self.system: System = boot(
                profile,
                nr_cpus=nr_cpus,
                extra_funcs=extra_funcs,
                config_overrides=config,
                symbols=symbols,
                skip_modules=skip_modules,
            )
        except UnknownConfig as e:
            raise SessionError(f"--config: {e}") from None
        self.path = path
        self.out: TextIO = out if out is not None else io.StringIO()
        self.err: TextIO = err if err is not None else io.StringIO()
        self.output = Output(self.out, self.err, transcript, color, show_stdout)
        self.resolver = ModuleResolver(
            self.system.profile, list(module_dirs), script_dir, definitions
        )
        self.runner = Runner(self.system, self.resolver, default_registry(), self.output, path)
        self.notes: Notes | None = None
        if transcript and notes:
            from klpsim.model.notes import Notes  # only a transcript shows notes

            self.notes = Notes(self.system, self.output.note)
            self.runner.after_command.append(self.notes.check_health)
        self.checker: Checker | None = None
        self.lines: list[str] = []
        """The lines :meth:`step` ran."""
        self.violations: list[tuple[Command, Violation]] = []
        """What :meth:`run` with ``check`` found, in order."""
        self.host: HostBoot | None = None
        """What booting into a host snapshot did (:meth:`from_snapshot`)."""

    @classmethod
    def from_snapshot(cls, snap: Snapshot, profile: str | None = None, **kwargs: object) -> Session:
        """A session booted into host snapshot *snap* (hostboot.py): its
        profile chosen from the snapshot unless *profile* is given, its
        kallsyms the symbol table, its livepatches, tasks and kprobes in
        place. HostBootError (one line) if the model cannot get there."""
        from klpsim.artifacts.snapshot import Unknown
        from klpsim.hostboot import HostBootError, choose_profile, restore

        if profile is None:
            profile, why = choose_profile(snap)
        else:
            why = "given with --kernel"
        if isinstance(snap.kallsyms, Unknown):
            raise HostBootError(
                f"{snap.source}: no kallsyms ({snap.kallsyms.reason}): the model needs "
                "the host's symbol table"
            )
        skip = frozenset(() if isinstance(snap.livepatches, Unknown) else
                         (p.name for p in snap.livepatches))  # fmt: skip
        session = cls(profile, symbols=snap.kallsyms, skip_modules=skip, **kwargs)  # type: ignore[arg-type]
        session.host = restore(session, snap, why)
        return session

    @property
    def kernel(self) -> Kernel:
        return self.system.kernel

    @property
    def klp(self) -> Klp:
        return self.system.klp

    # -- running a script -------------------------------------------------------------

    def parse(self, text: str) -> list[Command]:
        """Parse *text* and check every command (verbs, arguments, modules);
        ScriptError names the file and line."""
        commands = parse_script(text, self.path)
        self.runner.validate(commands)
        return commands

    def run(
        self,
        text: str,
        check: bool = False,
        stop_at_violation: bool = True,
        until_line: int | None = None,
    ) -> int:
        """Run a whole script: nothing runs if any line is bad (ScriptError).
        Its exit status: 0, 1 (a helper died or check_result differed) or 4 (skip).

        *check*: check the invariants after every command; the first broken
        one raises CheckFailed, or with *stop_at_violation* false is kept in
        :attr:`violations` and the script goes on. *until_line*: run only
        the commands that start on or before that line (``klpsim status --at``).
        """
        commands = self.parse(text)
        if until_line is not None:
            commands = [c for c in commands if c.line <= until_line]
        if check:
            self._checker()
        elif self.checker is not None:
            self.checker.invalidate()
        try:
            for cmd in commands:
                self._execute(cmd, check, stop_at_violation)
        except ScriptExit as e:
            return e.status
        return 0

    def _checker(self) -> Checker:
        if self.checker is None:
            from klpsim.model.checker import Checker  # only for checked runs

            self.checker = Checker(self.klp)
        return self.checker

    def _execute(self, cmd: Command, check: bool, stop: bool) -> None:
        checker = self.checker if check else None
        if checker is not None:
            checker.before()
        self.runner.execute(cmd)
        if checker is not None:
            found = checker.after()
            self.violations += [(cmd, v) for v in found]
            if found and stop:
                raise CheckFailed(self.path, cmd, found[0])

    # -- one line at a time -----------------------------------------------------------

    def step(self, line: str, check: bool = True) -> list[Violation]:
        """Run one script line (commands may fail, as in a shell), then check
        the invariants; with *check*, a violation raises InvariantViolation."""
        self.lines.append(line)
        checker = self._checker()
        checker.before()
        step = len(self.lines)
        commands = [dataclasses.replace(c, line=step) for c in parse_script(line, self.path)]
        self.runner.validate(commands)
        try:
            for cmd in commands:
                self.runner.execute(cmd)
        except ScriptExit:
            pass
        violations = checker.after()
        if violations and check:
            raise InvariantViolation(len(self.lines), line, violations)
        return violations

    def run_line(
        self,
        line: str,
        commands: list[Command],
        check: bool,
        states: bool = True,
        reuse_views: bool = False,
    ) -> list[Violation]:
        """:meth:`step` for a line parsed before, as the explorer runs the
        same few lines over and over: with *check* the invariants are checked
        around it and returned, never raised (without *states*, only the
        temporal one: the caller asks :attr:`checker` for the rest when it
        needs them); without *check*, nothing is checked. *reuse_views*: the
        caller changed nothing since the last checked line (Checker.before())."""
        self.lines.append(line)
        checker = self._checker() if check else None
        if checker is not None:
            checker.before(reuse_views)
        elif self.checker is not None:
            self.checker.invalidate()
        try:
            for cmd in commands:
                self.runner.execute(cmd)
        except ScriptExit:
            pass
        if checker is None:
            return []
        return checker.after() if states else checker.step_violations()

    def write_scenario(self, path: Path, header: str = "") -> None:
        """Write the lines :meth:`step` ran, and the in-memory definitions
        they use, as a standalone scenario (definitions in ``test_modules/``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        texts = self.resolver.texts
        used = [n for n in texts if any(n in line for line in self.lines)]
        if used:
            mods = path.parent / "test_modules"
            mods.mkdir(exist_ok=True)
            for name in used:
                (mods / f"{name}.toml").write_text(texts[name])
        comment = "".join(f"# {h}\n" for h in header.splitlines())
        path.write_text(comment + "\n".join(self.lines) + "\n")

    def record_notes(self) -> list[tuple[int, str]]:
        """Keep the model's notes, with the simulated time of each, in the
        list returned (filled as the script runs), whatever the output mode:
        ``--html`` shows them beside the kernel log."""
        from klpsim.model.notes import Notes

        kept: list[tuple[int, str]] = []
        clock = self.kernel.clock
        recorder = Notes(self.system, lambda text: kept.append((clock.now, text)))
        self.runner.after_command.append(recorder.check_health)
        return kept

    # -- reading the result -----------------------------------------------------------

    def dmesg(self, notime: bool = True) -> list[str]:
        """What ``dmesg --notime`` (or ``dmesg``) would print now."""
        return self.kernel.log.dmesg(notime=notime)
