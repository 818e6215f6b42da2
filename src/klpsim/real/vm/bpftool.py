"""The guest side of the BPF verbs: ``klpsim-bpf`` and what it reads.

``data/klpsim-bpf.c`` is klpsim's own loader (raw ``bpf(2)`` and
``perf_event_open(2)``, programs assembled instruction by instruction); it
is linked statically on the host, cached under ``build/tools/`` keyed by
its source, and copied into the guest as ``/klp/bin/klpsim-bpf``. The
guest's ``klpsim.sh`` then gives scenario scripts ``bpf_attach``,
``bpf_detach``, ``bpf_attachments`` and ``call`` (docs/bpf-and-livepatch.md
says what each can show on a real kernel).

To say which body a ``call`` ran, the loader matches what the caller saw
(a show function's first line, a syscall's return value) against the
livepatches the guest may load: :func:`livepatch_table` writes one line per
patched function, ``MOD OBJ OLD NEW RET OUTPUT``, from the same module
definitions the C generator reads, plus the kernel's own test modules.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from klpsim.model.schema import LivepatchDef, ModuleDef

from .debian import cache_lock, cache_root
from .errors import VMError
from .modgen import Signature, signature

__all__ = ["GUEST_PATH", "TABLE_PATH", "build_klpsim_bpf", "livepatch_table"]

#: Where the loader lives in the guest (klpsim.sh looks for it there).
GUEST_PATH = "klp/bin/klpsim-bpf"
#: The table of livepatched functions the loader reads (klpsim-bpf.c).
TABLE_PATH = "/klp/mods/livepatch-funcs"

# The kernel's test modules that patch a /proc show function: the module,
# the object, the function, its replacement. Each prints "MOD: this has been
# live patched" (tools/testing/selftests/livepatch/test_modules/).
_KSELFTEST_PATCHES = (
    ("test_klp_livepatch", "vmlinux", "cmdline_proc_show", "livepatch_cmdline_proc_show"),
    ("test_klp_atomic_replace", "vmlinux", "meminfo_proc_show", "livepatch_meminfo_proc_show"),
)


def build_klpsim_bpf() -> Path:
    """``klpsim-bpf``, linked statically (cached by the hash of its source)."""
    src = resources.files("klpsim.real.vm").joinpath("data", "klpsim-bpf.c").read_bytes()
    key = hashlib.sha256(src).hexdigest()[:16]
    out = cache_root() / "build" / "tools" / f"klpsim-bpf-{key}"
    if out.exists():
        return out
    if shutil.which("gcc") is None:
        raise VMError("gcc is not installed (apt-get install gcc libc6-dev)")
    with cache_lock():
        if out.exists():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        c = out.with_suffix(".c")
        c.write_bytes(src)
        tmp = out.with_suffix(".tmp")
        p = subprocess.run(
            ["gcc", "-static", "-O2", "-Wall", "-o", str(tmp), str(c)],
            capture_output=True,
            text=True,
            check=False,
        )
        if p.returncode != 0:
            errs = [ln for ln in p.stderr.splitlines() if "error" in ln] or ["?"]
            raise VMError(f"building klpsim-bpf failed: {errs[0].strip()}")
        tmp.replace(out)
    return out


def livepatch_table(defs: Iterable[ModuleDef]) -> str:
    """The loader's table: one ``MOD OBJ OLD NEW RET OUTPUT`` line per function
    a livepatch of *defs* (or a kernel test module) replaces; OUTPUT is the
    line a show replacement prints ("-" for other signatures)."""
    lines = [f"{m} {o} {old} {new} 0 {m}: this has been live patched"
             for m, o, old, new in _KSELFTEST_PATCHES]  # fmt: skip
    for mod in defs:
        if not isinstance(mod, LivepatchDef):
            continue
        for obj in mod.objects:
            for f in obj.funcs:
                show = signature(obj, f) is Signature.SHOW
                text = (f.output if f.output is not None else mod.default_output) if show else "-"
                lines.append(f"{mod.name} {obj.name} {f.old_name} {f.new_name} {f.ret} {text}")
    return "".join(line + "\n" for line in lines)
