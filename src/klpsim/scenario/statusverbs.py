"""Status views as script verbs (simulator-only): what a user asks of a
livepatched machine, answered from the model (model/status.py).

``klp_status``
    The patches in klp_patches order: state (kpatch's words), set, replace,
    enabled, transition, forced; and whether a transition is in progress
    (SUSE's ``klp status``).
``func_stack FUNC``
    FUNC's func_stack, top first, and the code a patched and an unpatched
    task run now.
``klp_blocking``
    The tasks the transition still waits for, why, and their stacks
    (SUSE's ``klp -vv blocking``).
"""

from collections.abc import Callable
from typing import Any

from klpsim.model.status import (
    blocking_view,
    format_blocking,
    format_func_stack,
    format_status,
    func_stack_view,
    status_view,
)
from klpsim.scenario.simverbs import FUNC, function
from klpsim.scenario.verbs import REGISTRY, Arg

__all__: list[str] = []

FAMILY = "status"


def status_verb(
    name: str, *args: Arg, **kw: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a status verb (simulator-only)."""
    return REGISTRY.verb(name, FAMILY, *args, **kw)


@status_verb("klp_status")
def klp_status(rt) -> None:
    rt.stdout(format_status(status_view(rt.system)))


@status_verb("func_stack", FUNC)
def func_stack(rt, name: str) -> None:
    rt.stdout(format_func_stack(func_stack_view(rt.system, function(rt, name))))


@status_verb("klp_blocking")
def klp_blocking(rt) -> None:
    rt.stdout(format_blocking(blocking_view(rt.system)))
