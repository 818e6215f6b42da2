"""The message catalogue: every kernel log line klpsim prints.

Each entry is (log level, format, dynamic-debug site). The format uses
Python %-conversions in the places the kernel's printk format has them;
the text around them is the kernel's, byte for byte. Messages of
kernel/livepatch get the ``livepatch: `` prefix from pr_fmt(); a debug
message prints only if dynamic debug enables its (file, function) site.

Profiles may replace a format (see Profile.messages) where a kernel
version words a message differently.
"""

from typing import NamedTuple

__all__ = ["Message", "CATALOGUE", "KLP_PREFIX"]

KLP_PREFIX = "livepatch: "


class Message(NamedTuple):
    level: int
    """KERN_ERR (3) .. KERN_DEBUG (7)."""
    fmt: str
    """Format with %s/%d/%lu-like conversions."""
    site: tuple[str, str] | None = None
    """(file, function) of a pr_debug() call site."""


_CORE = "kernel/livepatch/core.c"
_TRANS = "kernel/livepatch/transition.c"
ERR, WARN, NOTICE, INFO, DEBUG = 3, 4, 5, 6, 7

CATALOGUE: dict[str, Message] = {
    # core.c
    "enabling": Message(NOTICE, "enabling patch '%s'"),
    "pre_patch_failed": Message(WARN, "pre-patch callback failed for object '%s'"),
    "patch_object_failed": Message(WARN, "failed to patch object '%s'"),
    "enable_failed": Message(WARN, "failed to enable patch '%s'"),
    "not_livepatch": Message(ERR, "module %s is not marked as a livepatch module"),
    "no_reliable_stack": Message(
        WARN, "This architecture doesn't have support for the livepatch consistency model."
    ),
    "may_never_complete": Message(WARN, "The livepatch transition may never complete."),
    "incompatible": Message(
        ERR, "Livepatch patch (%s) is not compatible with the already installed livepatches."
    ),
    "applying": Message(NOTICE, "applying patch '%s' to loading module '%s'"),
    "coming_init_failed": Message(WARN, "failed to initialize patch '%s' for module '%s' (%d)"),
    "coming_apply_failed": Message(WARN, "failed to apply patch '%s' to module '%s' (%d)"),
    "refusing_module": Message(
        WARN, "patch '%s' failed for module '%s', refusing to load module '%s'"
    ),
    "reverting": Message(NOTICE, "reverting patch '%s' on unloading module '%s'"),
    "vmlinux_module": Message(ERR, "vmlinux.ko: invalid module name"),
    "symbol_not_found": Message(ERR, "symbol '%s' not found in symbol table"),
    "symbol_ambiguous": Message(ERR, "unresolvable ambiguity for symbol '%s' in object '%s'"),
    "sympos_not_found": Message(
        ERR, "symbol position %lu for symbol '%s' in object '%s' not found"
    ),
    # patch.c
    "no_ftrace_location": Message(ERR, "failed to find location for function '%s'"),
    "set_filter_failed": Message(ERR, "failed to set ftrace filter for function '%s' (%d)"),
    "register_failed": Message(ERR, "failed to register ftrace handler for function '%s' (%d)"),
    # transition.c
    "initializing": Message(
        DEBUG, "'%s': initializing %s transition", (_TRANS, "klp_init_transition")
    ),
    "starting": Message(NOTICE, "'%s': starting %s transition"),
    "completing": Message(
        DEBUG, "'%s': completing %s transition", (_TRANS, "klp_complete_transition")
    ),
    "complete": Message(NOTICE, "'%s': %s complete"),
    "canceling": Message(
        DEBUG,
        "'%s': canceling patching transition, going to unpatch",
        (_TRANS, "klp_cancel_transition"),
    ),
    "reversing": Message(
        DEBUG, "'%s': reversing transition from %s", (_TRANS, "klp_reverse_transition")
    ),
    "signaling": Message(NOTICE, "signaling remaining tasks"),
    "forcing": Message(WARN, "forcing remaining tasks to the patched state"),
    "task_running": Message(DEBUG, "%s: %s:%d is running", (_TRANS, "klp_try_switch_task")),
    "task_unreliable": Message(
        DEBUG, "%s: %s:%d has an unreliable stack", (_TRANS, "klp_try_switch_task")
    ),
    "task_sleeping": Message(
        DEBUG, "%s: %s:%d is sleeping on function %s", (_TRANS, "klp_try_switch_task")
    ),
    # shadow.c
    "shadow_ctor_failed": Message(ERR, "Failed to construct shadow variable <%s, %lx> (%d)"),
}
