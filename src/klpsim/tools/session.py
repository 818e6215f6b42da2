"""A checked session: run scenario lines one at a time on a booted kernel,
check the invariants after each, and keep the lines as a script.

The state machines and ``klpsim run --check`` use it; a sequence that
breaks an invariant can be written out as a standalone regression scenario
(:meth:`CheckedSession.write_scenario`).
"""

import io
from pathlib import Path

from klpsim.livepatch.invariants import ViewTracker, Violation, check_all
from klpsim.livepatch.system import boot
from klpsim.scenario.helpers import ScriptExit
from klpsim.scenario.parser import parse_script
from klpsim.scenario.runner import ModuleResolver, Runner

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
        self.views = ViewTracker(self.klp)
        self.lines: list[str] = []
        self.callbacks: dict[tuple[str, str], int] = {}
        self._log_seen = 0

    def step(self, line: str, check: bool = True) -> list[Violation]:
        """Run one script line (commands may fail, as in a shell); then check."""
        self.lines.append(line)
        seq = self.klp.transition_seq
        self.views.snapshot()
        self.views.violations.clear()
        try:
            for cmd in parse_script(line, "<session>"):
                self.rt.line = len(self.lines)
                self.rt.execute(cmd)
        except ScriptExit:
            pass
        violations = list(self.views.violations)
        if self.klp.transition_seq == seq:
            violations += self.views.compare("between steps")
        if check:
            violations += check_all(self.klp) + self._callback_pairs()
        if violations and check:
            raise InvariantViolation(len(self.lines), line, violations)
        return violations

    def _callback_pairs(self) -> list[Violation]:
        """post_unpatch runs only for an object whose pre_patch ran (and succeeded)."""
        out = []
        records = self.system.kernel.log.records
        for rec in records[self._log_seen :]:
            mod, _, rest = rec.text.partition(": ")
            cb, _, obj = rest.partition(": ")
            if cb not in ("pre_patch_callback", "post_unpatch_callback"):
                continue
            key = (mod, obj.split(" -> ")[0])
            if cb == "pre_patch_callback":
                self.callbacks[key] = self.callbacks.get(key, 0) + 1
            elif self.callbacks.get(key, 0) <= 0:
                out.append(
                    Violation(
                        "callbacks-pair", f"post_unpatch of {key[1]} in {mod} without a pre_patch"
                    )
                )
            else:
                self.callbacks[key] -= 1
        self._log_seen = len(records)
        return out

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
