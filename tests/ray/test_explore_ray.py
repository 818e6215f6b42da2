"""klpsim explore --ray local gives exactly what --jobs 1 gives.

Run by .ci/ray-tier, which installs the ``ray`` extra first; the model tier
(plain ``pytest``) does not collect this folder. Without Ray this fails:
it never skips.
"""

import dataclasses

import ray  # noqa: F401  (no Ray: this tier fails here, loudly)
from klpsim.tools.explore import Bounds, LocalBackend, explore
from klpsim.tools.explore_backends import RayBackend

TINY = Bounds("replace-set", patches=2, funcs=2, sets=2, states=0, tasks=2, depth=3, module_funcs=0)
REPLACEABLE = Bounds(
    "replaceable", patches=3, funcs=2, sets=1, states=0, tasks=0, depth=5, module_funcs=0,
    ops=("load", "tick", "attr"),
)  # fmt: skip


def _outcome(r):
    levels = [(lv.new, lv.orbit, lv.broken, lv.transitions, lv.replays) for lv in r.levels]
    found = {k: (f.path, f.detail, f.count) for k, f in r.found.items()}
    return levels, found, r.exhausted


def test_ray_local_gives_the_same_counts_and_verdicts():
    for b in (TINY, dataclasses.replace(TINY, every=True), REPLACEABLE):
        one = explore(b, LocalBackend(b))
        on_ray = explore(b, RayBackend(b, 2, "local"))
        assert _outcome(on_ray) == _outcome(one)
    assert "per-task-consistency" in on_ray.found


def test_ray_with_three_workers():
    b = dataclasses.replace(TINY, depth=4)
    assert _outcome(explore(b, RayBackend(b, 3, "local"))) == _outcome(explore(b))
