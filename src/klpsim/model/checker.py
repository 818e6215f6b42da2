"""Invariant checking around each command of a running scenario.

``klpsim run --check`` and the state machines use :class:`Checker`: it
snapshots what every task runs before a command and, after it, checks the
invariants of model/invariants.py plus the temporal one (a task's code
changes only when that task switches).
"""

from klpsim.livepatch.core import Klp
from klpsim.model.invariants import ViewTracker, Violation, check_all

__all__ = ["Checker"]


class Checker:
    def __init__(self, klp: Klp):
        self.klp = klp
        self.views = ViewTracker(klp)
        self._seq = 0
        self._log_seen = len(klp.kernel.log.records)
        self.callbacks: dict[tuple[str, str], int] = {}
        self._views_fresh = False
        """The views after the last checked command are the views now:
        nothing ran since (see :meth:`before`)."""

    def before(self, reuse: bool = False) -> None:
        """Snapshot what every task runs. With *reuse*, a caller that ran
        nothing since the last checked command (:meth:`invalidate` otherwise)
        gets that command's views, which are the views now."""
        self._seq = self.klp.transition_seq
        if not (reuse and self._views_fresh):
            self.views.snapshot()
        self._views_fresh = False
        self.views.violations.clear()

    def invalidate(self) -> None:
        """Something ran without the checker: the next :meth:`before` snapshots."""
        self._views_fresh = False

    def after(self) -> list[Violation]:
        return self.step_violations() + self.state_violations()

    def step_violations(self) -> list[Violation]:
        """The temporal invariant over the command since :meth:`before`."""
        violations = list(self.views.violations)
        # Starts and completions were checked as they happened; between them
        # only a task's own switch may change what it runs.
        if self.klp.transition_seq == self._seq:
            violations += self.views.compare("between commands")
            self._views_fresh = True  # compare() kept the views it took
        return violations

    def state_violations(self) -> list[Violation]:
        """The invariants of the state now (and the callback pairs logged
        since the last call)."""
        return check_all(self.klp) + self._callback_pairs()

    def _callback_pairs(self) -> list[Violation]:
        """post_unpatch runs only for an object whose pre_patch ran and succeeded.

        Read from the test modules' callback lines (``MOD: <callback>: <object>``).
        """
        out = []
        records = self.klp.kernel.log.records
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
