"""The livepatch structures of include/linux/livepatch.h.

A livepatch module fills in the external fields (the ones a C patch
module initialises statically) and passes the patch to klp_enable_patch().
The internal fields belong to kernel/livepatch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from klpsim.kernel.clock import DelayedWork
    from klpsim.kernel.fs import Inode
    from klpsim.kernel.module import Module
    from klpsim.kernel.symbols import Symbol

__all__ = [
    "KlpFunc",
    "KlpCallbacks",
    "KlpObject",
    "KlpState",
    "KlpPatch",
    "KLP_TRANSITION_IDLE",
    "KLP_TRANSITION_UNPATCHED",
    "KLP_TRANSITION_PATCHED",
]

KLP_TRANSITION_IDLE = -1
KLP_TRANSITION_UNPATCHED = 0
KLP_TRANSITION_PATCHED = 1


class KlpFunc:
    """``struct klp_func``: one patched function."""

    __slots__ = (
        "old_name",
        "new_func",
        "old_sympos",
        "old_func",
        "kobj",
        "nop",
        "patched",
        "transition",
        "obj",
    )

    def __init__(self, old_name: str | None, new_func: Symbol | None = None, old_sympos: int = 0):
        self.old_name = old_name
        self.new_func = new_func
        self.old_sympos = old_sympos
        # internal
        self.old_func: Symbol | None = None
        self.kobj: Inode | None = None
        self.nop = False
        self.patched = False
        self.transition = False
        self.obj: KlpObject | None = None

    def __repr__(self) -> str:
        return f"<klp_func {self.old_name},{self.old_sympos}{' nop' if self.nop else ''}>"


class KlpCallbacks:
    """``struct klp_callbacks``."""

    __slots__ = ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch", "post_unpatch_enabled")

    def __init__(
        self,
        pre_patch: Callable[[KlpObject], int] | None = None,
        post_patch: Callable[[KlpObject], None] | None = None,
        pre_unpatch: Callable[[KlpObject], None] | None = None,
        post_unpatch: Callable[[KlpObject], None] | None = None,
    ):
        self.pre_patch = pre_patch
        self.post_patch = post_patch
        self.pre_unpatch = pre_unpatch
        self.post_unpatch = post_unpatch
        self.post_unpatch_enabled = False


class KlpObject:
    """``struct klp_object``: vmlinux (name None) or one module."""

    __slots__ = (
        "name",
        "funcs",
        "callbacks",
        "kobj",
        "func_list",
        "mod",
        "dynamic",
        "patched",
        "patch",
    )

    def __init__(
        self, name: str | None, funcs: list[KlpFunc] | None, callbacks: KlpCallbacks | None = None
    ):
        self.name = name
        self.funcs = funcs  # None: the invalid "no funcs array" case
        self.callbacks = callbacks or KlpCallbacks()
        # internal
        self.kobj: Inode | None = None
        self.func_list: list[KlpFunc] = []
        self.mod: Module | None = None
        self.dynamic = False
        self.patched = False
        self.patch: KlpPatch | None = None

    @property
    def display_name(self) -> str:
        return self.name or "vmlinux"

    def __repr__(self) -> str:
        return f"<klp_object {self.display_name}>"


class KlpState:
    """``struct klp_state``: a system state a patch creates or keeps."""

    __slots__ = ("id", "version", "data")

    def __init__(self, id: int, version: int = 0, data: object = None):
        self.id = id
        self.version = version
        self.data = data


class KlpPatch:
    """``struct klp_patch``.

    ``replace`` is mainline's field; ``replace_set`` and ``replaceable``
    exist only on the profiles whose series added them. The profile says
    which of them the kernel reads.
    """

    def __init__(
        self,
        mod: Module,
        objs: list[KlpObject] | None,
        states: list[KlpState] | None = None,
        replace: bool | int = False,
        replace_set: int = 0,
        replaceable: bool = False,
    ):
        self.mod = mod
        self.objs = objs
        self.states = states or []
        self.replace = replace  # mainline's bool; a u32 tag on replace-tag
        self.replace_set = replace_set
        self.replaceable = replaceable
        # internal
        self.kobj: Inode | None = None
        self.obj_list: list[KlpObject] = []
        self.enabled = False
        self.forced = False
        self.free_work: DelayedWork | None = None
        self.freed = False  # klp_free_patch_finish() has run

    @property
    def name(self) -> str:
        return self.mod.name

    def __repr__(self) -> str:
        return f"<klp_patch {self.name}>"
