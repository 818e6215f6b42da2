"""``klpsim inspect FILE.ko...``: what a livepatch module patches.

The reader is klpsim.artifacts.ko; this module is the command: its options,
the human view and the JSON shape (docs/shipping-livepatches.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from klpsim.artifacts.ko import LivepatchModule, Setting

__all__ = ["add_inspect_parser", "as_json", "cmd_inspect", "human_view"]

_LAYOUTS = {
    "klp_patch": "klp_patch (a static struct klp_patch in data)",
    "kpatch-build": "kpatch-build (.kpatch.funcs)",
    "klp-build": "klp-build (.init.klp_objects, .init.klp_funcs)",
}

_SOURCES = {
    "unknown": "unknown: set by init code, not held in data",
    "absent": "absent: the kernel's struct klp_patch has no such field",
}


def _u32(text: str) -> int:
    try:
        v = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= v < 1 << 32:
        raise argparse.ArgumentTypeError(f"{v} is not a u32")
    return v


def add_inspect_parser(sub: Any) -> None:
    """Add ``inspect`` to the ``klpsim`` subcommands."""
    p = sub.add_parser("inspect", help="what a livepatch .ko patches (a static reading of the ELF)")
    p.add_argument("files", nargs="+", metavar="FILE.ko")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per file")
    p.add_argument(
        "--replace-set",
        type=_u32,
        metavar="N",
        help="the patch's replace_set, when the file does not hold it (source: given)",
    )
    p.add_argument(
        "--replace",
        type=int,
        choices=[0, 1],
        help="the patch's replace flag, when the file does not hold it (source: given)",
    )
    p.set_defaults(func=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    """Read each file; print the results; one line per bad file; exit 2 if any."""
    import json  # here, not at every klpsim start-up (build_parser imports this module)

    from klpsim.artifacts.ko import ElfReaderMissing, KoError, read_ko
    from klpsim.kernel.printk import escape

    replace = None if args.replace is None else bool(args.replace)
    results = []
    status = 0
    for f in args.files:
        try:
            results.append(read_ko(f, replace=replace, replace_set=args.replace_set))
        except ElfReaderMissing as e:
            print(f"klpsim: inspect: {escape(str(e))}", file=sys.stderr)
            return 2
        except KoError as e:
            print(f"klpsim: {escape(str(e))}", file=sys.stderr)
            status = 2
        except Exception as e:  # never a traceback for a file given by the user
            print(
                f"klpsim: {escape(f)}: cannot read ({type(e).__name__}: {escape(str(e))})",
                file=sys.stderr,
            )
            status = 2
    if args.json:
        json.dump([as_json(r) for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write("\n".join(human_view(r) for r in results))
    return status


def _setting(s: Setting) -> dict[str, Any]:
    d: dict[str, Any] = {"value": s.value, "source": s.source}
    if s.source == "ambiguous":
        d["raw"] = s.raw
    return d


def as_json(r: LivepatchModule) -> dict[str, Any]:
    """The ``--json`` object of one file (docs/shipping-livepatches.md)."""
    return {
        "file": r.path,
        "name": r.name,
        "livepatch": r.livepatch,
        "vermagic": r.vermagic,
        "layout": r.layout,
        "objects": [
            {
                "name": o.name,
                "funcs": [
                    {"old_name": f.old_name, "old_sympos": f.old_sympos, "new_func": f.new_func}
                    for f in o.funcs
                ],
            }
            for o in r.objects
        ],
        "states": None
        if r.states is None
        else [{"id": s.id, "version": s.version} for s in r.states],
        "replace": _setting(r.replace),
        "replace_set": _setting(r.replace_set),
        "callbacks": [{"object": c.object, "kind": c.kind, "func": c.func} for c in r.callbacks],
        "params": [{"name": p.name, "type": p.type} for p in r.params],
        "rela_objects": list(r.rela_objects),
    }


def _show_setting(s: Setting) -> str:
    if s.source == "ambiguous":
        return f"? (ambiguous: the word holds {s.raw}; see the note)"
    if s.value is None:
        return f"- ({_SOURCES.get(s.source, s.source)})"
    v = ("true" if s.value else "false") if isinstance(s.value, bool) else str(s.value)
    return f"{v} ({s.source})"


def human_view(r: LivepatchModule) -> str:
    """The default view: a header, then one line per function grouped by object."""
    rows: list[tuple[str, str]] = [
        ("name", r.name or "?"),
        ("livepatch", "yes" if r.livepatch else "no (no livepatch=Y in .modinfo)"),
        ("vermagic", (r.vermagic or "?").strip()),
        ("layout", _LAYOUTS.get(r.layout or "", "- (no static patch data found)")),
        ("replace", _show_setting(r.replace)),
        ("replace_set", _show_setting(r.replace_set)),
    ]
    if r.states is None:
        rows.append(("states", "- (not held in data)"))
    else:
        rows.append(
            ("states", ", ".join(f"id {s.id} version {s.version}" for s in r.states) or "none")
        )
    by_obj: dict[str, list[str]] = {}
    for c in r.callbacks:
        by_obj.setdefault(c.object, []).append(f"{c.kind}={c.func or '?'}")
    if not by_obj:
        rows.append(("callbacks", "none"))
    for i, (obj, cbs) in enumerate(by_obj.items()):
        rows.append(("callbacks" if i == 0 else "", f"{obj}: {' '.join(cbs)}"))
    rows.append(("params", ", ".join(f"{p.name} ({p.type})" for p in r.params) or "none"))
    rows.append(("rela objects", ", ".join(r.rela_objects) or "none"))
    for n in r.notes:
        rows.append(("note", n))
    for p in r.params:
        if p.name in ("replace", "replace_set") and r.layout == "klp_patch":
            rows.append(
                ("note", f"a '{p.name}' parameter: init code may set patch->{p.name} from it")
            )
    out = [f"{r.path}:"]
    out += [f"  {k:<13} {v}".rstrip() for k, v in rows]
    width = max((len(f.old_name or "?") for o in r.objects for f in o.funcs), default=0)
    for o in r.objects:
        out.append(f"  {o.name}")
        if not o.funcs:
            out.append("    (no functions)")
        for f in o.funcs:
            pos = "?" if f.old_sympos is None else str(f.old_sympos)
            out.append(f"    {f.old_name or '?':<{width}}  sympos {pos}  -> {f.new_func or '?'}")
    return "\n".join(out) + "\n"
