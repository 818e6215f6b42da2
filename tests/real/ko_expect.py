"""What ``klpsim inspect --json`` must say about a fixture, derived from its source.

Nothing here comes from inspect's own output: the C initialisers (kernel
test modules, samples, klpsim's layout fixtures) or the TOML definition
(generated modules) say what the module patches; modinfo(8) (kmod) says
what vermagic the build stamped.  A few facts about the variants are rules,
each stated where it is used:

* with DWARF (``debug``) the klp_patch's ``bool replace`` is known; without
  it the word at patch+24 is reported ``ambiguous`` with its raw value;
* ``strip --strip-unneeded`` drops local symbols, so static functions have
  no name left;
* binutils' strip rewrites ``.klp.rela`` sections as ordinary ones, so no
  stripped variant keeps them (binutils BZ 24456);
* ``strip --strip-all`` drops the symbol table: one error line.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from dataclasses import dataclass

from csource import CSource

from klpsim.real.fixtures import Fixture

__all__ = ["ExpectedError", "expected"]

KINDS = ("pre_patch", "post_patch", "pre_unpatch", "post_unpatch")


@dataclass(frozen=True)
class ExpectedError:
    """inspect must print one line ``klpsim: FILE: <message>...`` and exit 2."""

    message: str


def _modinfo(ko, field: str) -> str | None:
    p = subprocess.run(
        ["modinfo", "-F", field, str(ko)], capture_output=True, text=True, check=True
    )
    # modinfo -F prints one value per line; vermagic keeps its trailing space.
    return p.stdout[:-1] if p.stdout else None


def _is_static(src: CSource, fn: str) -> bool:
    m = re.search(r"^([^;{}()]*)\b" + re.escape(fn) + r"\s*\([^;]*\)\s*\{", src.text, re.M)
    if m is None:
        raise AssertionError(f"no definition of {fn} in the source")
    return "static" in m.group(1).split()


def _sym(src: CSource, fn: str | None, variant: str) -> str | None:
    """The symbol name inspect can give for function ``fn`` in ``variant``."""
    if fn is None:
        return None
    if variant == "strip-unneeded" and _is_static(src, fn):
        return None
    return fn


def _livepatch(src: CSource) -> bool:
    return any(a[0] == "livepatch" and src.value(a[1]) == "Y" for a in src.calls("MODULE_INFO"))


def _params(src: CSource) -> list[dict]:
    out = [{"name": a[0], "type": a[1]} for a in src.calls("module_param")]
    out += [{"name": a[0], "type": "array of " + a[1]} for a in src.calls("module_param_array")]
    out += [{"name": a[0], "type": a[2]} for a in src.calls("module_param_named")]
    return sorted(out, key=lambda p: p["name"])


def _replace(value: bool, variant: str) -> tuple[dict, dict]:
    """klp_patch layout on a mainline (Debian) kernel: DWARF names the bool."""
    if variant == "debug":
        return {"value": value, "source": "data"}, {"value": None, "source": "absent"}
    amb = {"value": None, "source": "ambiguous", "raw": int(value)}
    return amb, dict(amb)


def expected(f: Fixture, variant: str) -> dict | ExpectedError:
    ko = f.kos[variant]
    src = CSource.parse(f.c_text, f.source.parent)
    livepatch = _livepatch(src)
    if not livepatch:
        return ExpectedError("not a livepatch module")
    if variant == "strip-all":
        return ExpectedError("no symbol table (stripped with --strip-all?)")
    base = {
        "file": str(ko),
        "name": f.name.replace("-", "_"),  # KBUILD_MODNAME
        "livepatch": True,
        "vermagic": _modinfo(ko, "vermagic"),
    }
    if f.group == "toml":
        body = _from_toml(f, src, variant)
    elif f.group == "layouts" and "KPATCH_FUNC" in src.text:
        body = _from_kpatch(src, variant)
    elif f.group == "layouts":
        body = _from_klp_build(src, variant)
    else:
        body = _from_klp_patch(src, variant)
    body["params"] = _params(src)
    rela = sorted({a[0] for a in src.calls("KLPSIM_KLP_RELA")}) if variant == "debug" else []
    body["rela_objects"] = rela
    keys = ["file", "name", "livepatch", "vermagic", "layout", "objects", "states"]
    keys += ["replace", "replace_set", "callbacks", "params", "rela_objects"]
    merged = {**base, **body}
    return {k: merged[k] for k in keys}


def _from_klp_patch(src: CSource, variant: str) -> dict:
    """A static struct klp_patch (kernel test modules, samples)."""
    _, body = src.initializer("klp_patch")
    patch = src.fields("{" + body + "}") or {}
    objects, callbacks = [], []
    _, objs_body = src.initializer("klp_object", src.value(patch["objs"]))
    for el in src.elements(objs_body):
        o = src.fields(el)
        if o is None:
            break  # the terminator
        name = src.value(o.get("name", "NULL")) or "vmlinux"
        funcs = []
        _, funcs_body = src.initializer("klp_func", src.value(o["funcs"]))
        for fel in src.elements(funcs_body):
            fn = src.fields(fel)
            if fn is None:
                break
            funcs.append(
                {
                    "old_name": src.value(fn["old_name"]),
                    "old_sympos": src.value(fn.get("old_sympos", "0")),
                    "new_func": _sym(src, src.value(fn["new_func"]), variant),
                }
            )
        objects.append({"name": name, "funcs": funcs})
        cbs = src.fields(o["callbacks"]) if "callbacks" in o else None
        for kind in KINDS:
            if cbs and kind in cbs:
                cb = _sym(src, src.value(cbs[kind]), variant)
                callbacks.append({"object": name, "kind": kind, "func": cb})
    states = []
    if "states" in patch:
        _, states_body = src.initializer("klp_state", src.value(patch["states"]))
        for el in src.elements(states_body):
            s = src.fields(el)
            if s is None:
                break
            states.append({"id": src.value(s["id"]), "version": src.value(s.get("version", "0"))})
    replace, replace_set = _replace(bool(src.value(patch.get("replace", "false"))), variant)
    return {
        "layout": "klp_patch",
        "objects": objects,
        "states": states,
        "replace": replace,
        "replace_set": replace_set,
        "callbacks": callbacks,
    }


def _from_toml(f: Fixture, src: CSource, variant: str) -> dict:
    """A module generated by modgen: its objects, states and replace are the TOML's;
    its replacements are static functions named new_name (default livepatch_<old>)."""
    data = tomllib.loads(f.source.read_text())
    objects = []
    for o in data.get("objects", []):
        funcs = []
        for fn in o.get("funcs", []):
            new = fn.get("new_name", "livepatch_" + fn["old_name"])
            funcs.append(
                {
                    "old_name": fn["old_name"],
                    "old_sympos": fn.get("old_sympos", 0),
                    "new_func": _sym(src, new, variant),
                }
            )
        objects.append({"name": o["name"], "funcs": funcs})
    states = [{"id": s["id"], "version": s.get("version", 0)} for s in data.get("states", [])]
    replace, replace_set = _replace(data.get("replace", False), variant)
    return {
        "layout": "klp_patch",
        "objects": objects,
        "states": states,
        "replace": replace,
        "replace_set": replace_set,
        "callbacks": [],
    }


def _settings_in_init(src: CSource) -> tuple[dict, dict]:
    """kpatch-build and klp-build set replace in init code; replace_set only
    as klpsim's MODULE_INFO(livepatch_replace_set, "N")."""
    rs = [src.value(a[1]) for a in src.calls("MODULE_INFO") if a[0] == "livepatch_replace_set"]
    replace_set = (
        {"value": int(rs[0]), "source": "modinfo"} if rs else {"value": None, "source": "unknown"}
    )
    return {"value": None, "source": "unknown"}, replace_set


def _from_kpatch(src: CSource, variant: str) -> dict:
    """klpsim_kpatch_*.c: KPATCH_FUNC(new function = old name, sympos, object[, ref])
    entries, KPATCH_CB(function, object) in .kpatch.callbacks.<kind> sections."""
    by_obj: dict[str, list] = {}
    for args in src.calls("KPATCH_FUNC"):
        fn, pos, obj = args[0], int(args[1]), args[2]
        by_obj.setdefault(obj, []).append(
            {"old_name": fn, "old_sympos": pos, "new_func": _sym(src, fn, variant)}
        )
    cbs = []
    for kind in KINDS:
        m = re.search(
            r'__section\("\.kpatch\.callbacks\.' + kind + r'"\)[^=]*=\s*\{(.*?)\n\};',
            src.text,
            re.S,
        )
        if m is None:
            continue
        for fn, obj in re.findall(r"KPATCH_CB\((\w+),\s*(\w+)\)", m.group(1)):
            by_obj.setdefault(obj, [])
            cbs.append({"object": obj, "kind": kind, "func": _sym(src, fn, variant)})
    order = list(by_obj)
    cbs.sort(key=lambda c: (order.index(c["object"]), KINDS.index(c["kind"])))
    replace, replace_set = _settings_in_init(src)
    return {
        "layout": "kpatch-build",
        "objects": [{"name": n, "funcs": fs} for n, fs in by_obj.items()],
        "states": None,
        "replace": replace,
        "replace_set": replace_set,
        "callbacks": cbs,
    }


def _from_klp_build(src: CSource, variant: str) -> dict:
    """klpsim_klp_build.c: klp_object_ext entries pointing at KLP_FUNC(old, new,
    sympos) arrays."""
    objects, callbacks = [], []
    _, body = src.initializer("klpsim_klp_object_ext")
    for el in src.elements(body):
        o = src.fields(el)
        name = src.value(o.get("name", "NULL")) or "vmlinux"
        _, fbody = src.initializer("klpsim_klp_func_ext", src.value(o["funcs"]))
        funcs = []
        for fel in src.elements(fbody):
            m = re.fullmatch(r"\s*KLP_FUNC\((.*)\)\s*", fel, re.S)
            old, new, pos = (a.strip() for a in m.group(1).split(","))
            funcs.append(
                {
                    "old_name": src.value(old),
                    "old_sympos": src.value(pos),
                    "new_func": _sym(src, new, variant),
                }
            )
        objects.append({"name": name, "funcs": funcs})
        cbs = src.fields(o["callbacks"]) if "callbacks" in o else {}
        for kind in KINDS:
            if kind in cbs:
                callbacks.append(
                    {"object": name, "kind": kind, "func": _sym(src, src.value(cbs[kind]), variant)}
                )
    replace, replace_set = _settings_in_init(src)
    return {
        "layout": "klp-build",
        "objects": objects,
        "states": None,
        "replace": replace,
        "replace_set": replace_set,
        "callbacks": callbacks,
    }
