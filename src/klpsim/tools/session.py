"""A checked session: run scenario lines one at a time on a booted kernel,
check the invariants after each, and keep the lines as a script.

The state machines and ``klpsim run --check`` use it; a sequence that
breaks an invariant can be written out as a standalone regression scenario
(:meth:`CheckedSession.write_scenario`).
"""

import io
from pathlib import Path

from klpsim.model.checker import Checker
from klpsim.model.invariants import Violation
from klpsim.model.system import boot
from klpsim.modules.resolver import ModuleResolver
from klpsim.scenario.helpers import ScriptExit
from klpsim.scenario.parser import parse_script
from klpsim.scenario.runner import Runner

__all__ = ["CheckedSession", "InvariantViolation"]


class InvariantViolation(AssertionError):
    """The first broken invariant, with the step that broke it."""

    def __init__(self, step: int, line: str, violations: list[Violation]):
        v = violations[0]
        super().__init__(f"step {step} ({line}): {v.invariant}: {v.detail}")
        self.step = step
        self.line = line
        self.violations = violations


class CheckedSession:
    def __init__(
        self,
        profile: str,
        definitions: dict[str, str] | None = None,
        module_dirs: list[Path] | None = None,
        script_dir: Path | None = None,
        system=None,
    ):
        self.system = system or boot(profile)
        self.klp = self.system.klp
        self.out, self.err = io.StringIO(), io.StringIO()
        self.resolver = ModuleResolver(self.system.profile, module_dirs or [], script_dir)
        self.resolver.texts.update(definitions or {})
        self.rt = Runner(
            self.system,
            self.resolver,
            "<session>",
            self.out,
            self.err,
            transcript=False,
            show_stdout=True,
        )
        self.checker = Checker(self.klp)
        self.lines: list[str] = []

    def step(self, line: str, check: bool = True) -> list[Violation]:
        """Run one script line (commands may fail, as in a shell); then check."""
        self.lines.append(line)
        self.checker.before()
        try:
            for cmd in parse_script(line, "<session>"):
                self.rt.line = len(self.lines)
                self.rt.execute(cmd)
        except ScriptExit:
            pass
        violations = self.checker.after()
        if violations and check:
            raise InvariantViolation(len(self.lines), line, violations)
        return violations

    def write_scenario(self, path: Path, header: str = "") -> None:
        """Write the lines run so far, and the definitions they use, as a scenario."""
        path.parent.mkdir(parents=True, exist_ok=True)
        mods = path.parent / "test_modules"
        used = [n for n in self.resolver.texts if any(n in line for line in self.lines)]
        if used:
            mods.mkdir(exist_ok=True)
            for name in used:
                (mods / f"{name}.toml").write_text(self.resolver.texts[name])
        text = "".join(f"# {h}\n" for h in header.splitlines()) + "\n".join(self.lines) + "\n"
        path.write_text(text)
