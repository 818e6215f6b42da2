"""Modules read from real ``.ko`` files (artifacts/ko.py), as insmod loads them.

A livepatch ``.ko`` becomes the schema's :class:`LivepatchDef` and is built
as a TOML definition is (modules/definition.py), with these differences:

* its module parameters are the ones ``.modinfo`` lists (``parmtype``), each
  parsed on the insmod line as the kernel parses its type; a ``replace`` or
  ``replace_set`` parameter is copied into the patch before
  klp_enable_patch(), as the kernel's test modules do (an int stored into
  the u32 ``replace_set``: -1 is 4294967295);
* what a replacement does is not in the file: it answers a call as
  ``MOD:new_func`` (a seq_file show prints that line) and returns 0; a
  ``new_func`` whose symbol is stripped is ``?``;
* callbacks run as no-ops returning 0, and the states are the ones its data
  holds (kpatch-build and klp-build keep none).

``replace`` and ``replace_set`` come from the file where it holds them
(:class:`~klpsim.artifacts.ko.Setting`). Otherwise:

* ``given`` (a caller's value) wins;
* ``unknown`` (set by init code): ``replace`` is true, the default of both
  kpatch-build (``KLP_REPLACE_ENABLE`` unless built with ``-R``) and
  klp-build (unless ``-DKLP_NO_REPLACE``); ``replace_set`` is 0, klp-build's
  value without ``KLP_REPLACE_SET``;
* ``ambiguous`` (the word at ``patch+24`` without DWARF or modinfo): the
  profile's kernel reads it as its own field, ``bool replace`` on mainline
  and ``u32 replace_set`` with the replace-set series;
* ``absent``: false and 0.

A ``.ko`` that is not a livepatch loads as a plain module whose functions are
its symbol table's (every one returns 0 when called).
"""

from __future__ import annotations

from pathlib import Path

from klpsim.artifacts.ko import (
    ElfReaderMissing,
    KoError,
    LivepatchModule,
    PlainModule,
    Setting,
    read_module,
)
from klpsim.kernel.module import FunctionSpec, ModuleCode, ModuleSpec
from klpsim.kernel.params import ParamSpec, param_type
from klpsim.kernel.printk import escape
from klpsim.livepatch.profiles import Profile
from klpsim.model.schema import FuncDef, LivepatchDef, ObjectDef, StateDef

__all__ = ["KoModuleError", "ko_definition", "ko_module", "read_ko_module"]


class KoModuleError(Exception):
    """A ``.ko`` that cannot be loaded as a module: one line naming the file."""


def read_ko_module(path: Path) -> LivepatchModule | PlainModule:
    """Read *path*; KoModuleError (one line) if it is no readable module."""
    try:
        return read_module(path)
    except KoError as e:
        raise KoModuleError(escape(str(e))) from None
    except ElfReaderMissing as e:
        raise KoModuleError(f"{escape(str(path))}: {e}") from None


def _name(m: LivepatchModule | PlainModule) -> str:
    return m.name or Path(m.path).name.removesuffix(".ko").replace("-", "_")


def _replace(s: Setting, profile: Profile) -> bool:
    if s.value is not None:
        return bool(s.value)
    if s.source == "ambiguous":
        return "replace" in profile.patch_fields and bool(s.raw)
    return s.source == "unknown"  # kpatch-build's and klp-build's default


def _replace_set(s: Setting, profile: Profile) -> int:
    if s.value is not None:
        return int(s.value)
    if s.source == "ambiguous" and "replace_set" in profile.patch_fields:
        return s.raw or 0
    return 0


def ko_definition(
    m: LivepatchModule,
    profile: Profile,
    replace: bool | None = None,
    replace_set: int | None = None,
) -> LivepatchDef:
    """The definition a livepatch ``.ko`` gives on *profile*'s kernel;
    *replace*/*replace_set* override what the file holds."""
    name = _name(m)
    objects: list[ObjectDef] = []
    used: set[str] = set()
    for obj in m.objects:
        funcs: list[FuncDef] = []
        for i, f in enumerate(obj.funcs):
            new = f.new_func or "?"
            sym = new if new not in used and f.new_func else f"{new}#{len(used)}.{i}"
            used.add(sym)
            funcs.append(FuncDef(f.old_name or "", sym, f.old_sympos or 0, f"{name}:{new}", 0))
        objects.append(ObjectDef(obj.name, tuple(funcs)))
    return LivepatchDef(
        name=name,
        source=m.path,
        objects=tuple(objects),
        states=tuple(StateDef(s.id, s.version) for s in m.states or ()),
        replace=_replace(m.replace, profile) if replace is None else replace,
        replace_set=_replace_set(m.replace_set, profile) if replace_set is None else replace_set,
        replaceable=False,
        error_injection=(),
        params=tuple((p.name, p.type) for p in m.params),
    )


def _plain(m: PlainModule) -> ModuleSpec:
    params = []
    for p in m.params:
        typ = param_type(p.type) or "charp"
        default: object = [] if typ.endswith("_array") else "" if typ == "charp" else 0
        params.append(ParamSpec(p.name, typ, 0o644, False if "bool" in typ else default))
    return ModuleSpec(
        _name(m),
        ModuleCode,
        params=tuple(params),
        functions=tuple(FunctionSpec(f, lambda ctx, *a: 0) for f in m.functions),
        exports=m.exports,
        source=m.path,
    )


def ko_module(
    path: Path, profile: Profile, replace: bool | None = None, replace_set: int | None = None
) -> ModuleSpec:
    """The module the ``.ko`` at *path* is, as *profile*'s kernel loads it."""
    from klpsim.modules.definition import build_module

    m = read_ko_module(path)
    if isinstance(m, PlainModule):
        return _plain(m)
    return build_module(ko_definition(m, profile, replace, replace_set), profile)
