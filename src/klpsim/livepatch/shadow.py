"""Shadow variables: data attached to existing objects by <obj, id>.

Mirrors kernel/livepatch/shadow.c. The hash is global across patches and
nothing frees a variable automatically; a patch must do it itself. Objects
are Python objects, identified by identity; the data of a variable is a
:class:`ShadowData` the constructor may fill in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from klpsim.livepatch.core import Klp

__all__ = ["ShadowData", "ShadowHash", "ShadowCtor", "ShadowDtor", "EXPORTED"]

# The exported API: klp_shadow_<name> is ShadowHash.<name>.
EXPORTED = ("get", "alloc", "get_or_alloc", "free", "free_all")


ShadowCtor = Callable[[object, "ShadowData", object], int]
"""``klp_shadow_ctor_t``: ctor(obj, shadow_data, ctor_data) -> 0 or -errno."""
ShadowDtor = Callable[[object, "ShadowData"], None]
"""``klp_shadow_dtor_t``: dtor(obj, shadow_data)."""


class ShadowData:
    """The zeroed ``data[]`` of a shadow variable: *size* bytes, one value."""

    __slots__ = ("size", "value")

    def __init__(self, size: int):
        self.size = size
        self.value: object = None


class ShadowHash:
    """klp_shadow_hash: {(id(obj), id): (obj, ShadowData)}, in insertion order."""

    def __init__(self, klp: Klp):
        self.klp = klp
        self.vars: dict[tuple[int, int], tuple[object, ShadowData]] = {}

    def get(self, obj: object, id: int) -> ShadowData | None:
        entry = self.vars.get((id_of(obj), id))
        return entry[1] if entry else None

    def _get_or_alloc(
        self,
        obj: object,
        id: int,
        size: int,
        ctor: ShadowCtor | None,
        ctor_data: object,
        warn: bool,
    ) -> ShadowData | None:
        key = (id_of(obj), id)
        entry = self.vars.get(key)
        if entry is not None:
            if warn:
                self._warn_duplicate(obj, id)
                return None
            return entry[1]
        data = ShadowData(size)
        if ctor is not None:
            err = ctor(obj, data, ctor_data)
            if err:
                self.klp.msg("shadow_ctor_failed", self.klp.kernel_ptr(obj), id, err)
                return None
        self.vars[key] = (obj, data)
        return data

    def _warn_duplicate(self, obj: object, id: int) -> None:
        self.klp.kernel.warn(
            f"Duplicate shadow variable <{self.klp.kernel_ptr(obj)}, {id:x}>",
            "kernel/livepatch/shadow.c:156 __klp_shadow_get_or_alloc+0x1a8/0x1e0",
        )

    def alloc(
        self,
        obj: object,
        id: int,
        size: int,
        gfp: str = "GFP_KERNEL",
        ctor: ShadowCtor | None = None,
        ctor_data: object = None,
    ) -> ShadowData | None:
        """klp_shadow_alloc(): NULL plus a WARN if <obj, id> exists."""
        return self._get_or_alloc(obj, id, size, ctor, ctor_data, True)

    def get_or_alloc(
        self,
        obj: object,
        id: int,
        size: int,
        gfp: str = "GFP_KERNEL",
        ctor: ShadowCtor | None = None,
        ctor_data: object = None,
    ) -> ShadowData | None:
        """klp_shadow_get_or_alloc(): the existing variable, the ctor not run."""
        return self._get_or_alloc(obj, id, size, ctor, ctor_data, False)

    def free(self, obj: object, id: int, dtor: ShadowDtor | None = None) -> None:
        entry = self.vars.pop((id_of(obj), id), None)
        if entry is not None and dtor is not None:
            dtor(entry[0], entry[1])

    def free_all(self, id: int, dtor: ShadowDtor | None = None) -> None:
        for key in [k for k in self.vars if k[1] == id]:
            obj, data = self.vars.pop(key)
            if dtor is not None:
                dtor(obj, data)


def id_of(obj: object) -> int:
    return id(obj)
