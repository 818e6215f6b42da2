"""``klpsim inspect`` on small ELF files laid out here, and on bad input.

The real modules (the kernel's test modules and samples, kpatch-build and
klp-build layouts, built for Debian's kernels) are in tests/real; these
files are written byte by byte (elfmini.py) so the reader is exercised
without a compiler.
"""

import json
import struct
import subprocess
import sys

import pytest

from elfmini import SHT_NOBITS, A, Sec, Sym, W, X, elf
from harness import klpsim

MODINFO = "name=lp_mini\0vermagic=6.1.0-99-amd64 SMP preempt mod_unload \0parmtype=replace:int\0"
STRS = b"cmdline_proc_show\0version_proc_show\0nfs\0nfs_permission\0"
S_CMDLINE, S_VERSION, S_NFS, S_PERM = 0, 18, 36, 40
TEXT_SYMS = [
    Sym("livepatch_cmdline_proc_show", ".text", 0x10),
    Sym("livepatch_version_proc_show", ".text", 0x20),
    Sym("pre_patch_cb", ".text", 0x30),
    Sym("livepatch_nfs_permission", ".text", 0x38),
]


def _common(modinfo: str, extra_secs=(), syms=()):
    return [
        Sec(".text", bytes(64), A | X),
        Sec(".rodata.str1.1", STRS, A),
        Sec(".modinfo", modinfo.encode(), A),
        *extra_secs,
        Sec(".gnu.linkonce.this_module", bytes(24) + b"lp_mini" + bytes(0x380 - 31), A | W),
    ], [*TEXT_SYMS, *syms, Sym("__this_module", ".gnu.linkonce.this_module", 0, 0x380, 1, 1)]


def klp_patch_module(replace_word: int = 1, modinfo: str = "livepatch=Y\0" + MODINFO) -> bytes:
    """A static klp_patch with 48-byte klp_funcs and 80-byte klp_objects
    (sizes of no real kernel: the reader must find them from the layout)."""
    data = bytearray(800)
    struct.pack_into("<I", data, 24, replace_word)  # patch + 24
    struct.pack_into("<QI", data, 200, 5, 2)  # states[0] = {5, 2}
    struct.pack_into("<Q", data, 512 + 48 + 16, 1)  # funcs[1].old_sympos
    relocs = [
        (0, "__this_module", 0),
        (8, "sec:.data", 256),  # patch.objs
        (16, "sec:.data", 200),  # patch.states
        (256 + 8, "sec:.data", 512),  # objs[0].funcs (name NULL: vmlinux)
        (256 + 16, "sec:.text", 0x30),  # objs[0].callbacks.pre_patch
        (336 + 0, "sec:.rodata.str1.1", S_NFS),  # objs[1].name
        (336 + 8, "sec:.data", 656),  # objs[1].funcs
        (512, "sec:.rodata.str1.1", S_CMDLINE),
        (512 + 8, "sec:.text", 0x10),
        (560, "sec:.rodata.str1.1", S_VERSION),
        (560 + 8, "sec:.text", 0x20),
        (656, "sec:.rodata.str1.1", S_PERM),
        (656 + 8, "sec:.text", 0x38),
    ]
    secs, syms = _common(modinfo, [Sec(".data", bytes(data), A | W, relocs=relocs)])
    return elf(secs, syms)


KLP_PATCH_JSON = {
    "name": "lp_mini",
    "livepatch": True,
    "vermagic": "6.1.0-99-amd64 SMP preempt mod_unload ",
    "layout": "klp_patch",
    "objects": [
        {
            "name": "vmlinux",
            "funcs": [
                {
                    "old_name": "cmdline_proc_show",
                    "old_sympos": 0,
                    "new_func": "livepatch_cmdline_proc_show",
                },
                {
                    "old_name": "version_proc_show",
                    "old_sympos": 1,
                    "new_func": "livepatch_version_proc_show",
                },
            ],
        },
        {
            "name": "nfs",
            "funcs": [
                {
                    "old_name": "nfs_permission",
                    "old_sympos": 0,
                    "new_func": "livepatch_nfs_permission",
                }
            ],
        },
    ],
    "states": [{"id": 5, "version": 2}],
    "replace": {"value": None, "source": "ambiguous", "raw": 1},
    "replace_set": {"value": None, "source": "ambiguous", "raw": 1},
    "callbacks": [{"object": "vmlinux", "kind": "pre_patch", "func": "pre_patch_cb"}],
    "params": [{"name": "replace", "type": "int"}],
    "rela_objects": [],
}


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def inspect_json(*argv):
    r = klpsim("inspect", "--json", *map(str, argv))
    return r, json.loads(r.out)


def test_klp_patch_layout(tmp_path):
    ko = write(tmp_path, "lp_mini.ko", klp_patch_module())
    r, (got,) = inspect_json(ko)
    assert r.status == 0, r.err
    assert got == {"file": str(ko), **KLP_PATCH_JSON}
    assert list(got) == ["file", *KLP_PATCH_JSON]


def test_a_patch_of_no_object_keeps_its_states(tmp_path):
    """objs is only the terminator (in .bss): the patch holds states and nothing else."""
    data = bytearray(256)
    struct.pack_into("<QI", data, 200, 5, 2)  # states[0] = {5, 2}
    relocs = [(0, "__this_module", 0), (8, "sec:.bss", 0), (16, "sec:.data", 200)]
    bss = Sec(".bss", flags=A | W, type=SHT_NOBITS, size=64)
    secs, syms = _common(
        "livepatch=Y\0" + MODINFO, [Sec(".data", bytes(data), A | W, relocs=relocs), bss]
    )
    ko = write(tmp_path, "lp_mini.ko", elf(secs, syms))
    r, (got,) = inspect_json(ko)
    assert r.status == 0, r.err
    assert (got["layout"], got["objects"], got["states"]) == (
        "klp_patch",
        [],
        [{"id": 5, "version": 2}],
    )


def test_replace_set_from_modinfo_and_width(tmp_path):
    """patch+24 is a bool on mainline, a u32 replace_set in the replace-set series."""
    hinted = write(
        tmp_path,
        "a.ko",
        klp_patch_module(3, "livepatch=Y\0livepatch_replace_set=3\0" + MODINFO),
    )
    wide = write(tmp_path, "b.ko", klp_patch_module(0x100))
    _, (a, b) = inspect_json(hinted, wide)
    assert a["replace"] == {"value": None, "source": "absent"}
    assert a["replace_set"] == {"value": 3, "source": "data"}
    assert b["replace_set"] == {"value": 256, "source": "data"}
    r, (given,) = inspect_json("--replace", "0", "--replace-set", "9", wide)
    assert given["replace"] == {"value": False, "source": "given"}
    assert given["replace_set"] == {"value": 9, "source": "given"}


def test_human_view(tmp_path):
    ko = write(tmp_path, "lp_mini.ko", klp_patch_module())
    r = klpsim("inspect", str(ko))
    assert r.status == 0
    lines = r.out.splitlines()
    assert lines[0] == f"{ko}:"
    assert lines[-5:] == [
        "  vmlinux",
        "    cmdline_proc_show  sympos 0  -> livepatch_cmdline_proc_show",
        "    version_proc_show  sympos 1  -> livepatch_version_proc_show",
        "  nfs",
        "    nfs_permission     sympos 0  -> livepatch_nfs_permission",
    ]
    assert "  layout        klp_patch (a static struct klp_patch in data)" in lines
    assert "  states        id 5 version 2" in lines
    assert "  note          klp_func size 48 from the relocation pattern" in lines
    assert "  note          klp_object size 80 from the relocation pattern" in lines


def kpatch_module(stride: int = 56) -> bytes:
    """Two .kpatch.funcs entries (name at +40, objname at +48, then fork fields)."""
    strings = b"vmlinux\0cmdline_proc_show\0nfs\0nfs_permission\0"
    funcs = bytearray(2 * stride)
    struct.pack_into("<Q", funcs, stride + 32, 2)  # funcs[1].sympos
    relocs = []
    for i, (name, obj, fn) in enumerate([(8, 0, "cmdline_proc_show"), (30, 26, "nfs_permission")]):
        relocs += [
            (i * stride, fn, 0),
            (i * stride + 40, "sec:.kpatch.strings", name),
            (i * stride + 48, "sec:.kpatch.strings", obj),
        ]
    cbs = Sec(
        ".kpatch.callbacks.post_patch",
        bytes(24),
        A | W,
        relocs=[(0, "sec:.text", 0x30), (8, "sec:.kpatch.strings", 26)],
    )
    secs, syms = _common(
        "livepatch=Y\0" + MODINFO,
        [
            Sec(".kpatch.strings", strings, A),
            Sec(".kpatch.funcs", bytes(funcs), A | W, relocs=relocs),
            cbs,
        ],
        [Sym("cmdline_proc_show", ".text", 0x10), Sym("nfs_permission", ".text", 0x20)],
    )
    return elf(secs, syms)


@pytest.mark.parametrize("stride", [56, 72])
def test_kpatch_layout(tmp_path, stride):
    ko = write(tmp_path, "kp.ko", kpatch_module(stride))
    r, (got,) = inspect_json(ko)
    assert r.status == 0, r.err
    assert got["layout"] == "kpatch-build"
    assert got["objects"] == [
        {
            "name": "vmlinux",
            "funcs": [
                {
                    "old_name": "cmdline_proc_show",
                    "old_sympos": 0,
                    "new_func": "cmdline_proc_show",
                }
            ],
        },
        {
            "name": "nfs",
            "funcs": [
                {"old_name": "nfs_permission", "old_sympos": 2, "new_func": "nfs_permission"}
            ],
        },
    ]
    assert got["callbacks"] == [{"object": "nfs", "kind": "post_patch", "func": "pre_patch_cb"}]
    assert got["states"] is None
    assert got["replace"] == {"value": None, "source": "unknown"}


def test_klp_build_layout(tmp_path):
    objs = bytearray(64)
    struct.pack_into("<I", objs, 56, 2)  # nr_funcs
    funcs = bytearray(48)
    struct.pack_into("<Q", funcs, 24 + 16, 4)  # funcs[1].sympos
    secs, syms = _common(
        "livepatch=Y\0livepatch_replace_set=6\0" + MODINFO,
        [
            Sec(
                "__klp_objects",
                bytes(objs),
                A | W,
                relocs=[(8, "sec:__klp_funcs", 0), (40, "sec:.text", 0x30)],
            ),
            Sec(
                "__klp_funcs",
                bytes(funcs),
                A | W,
                relocs=[
                    (0, "sec:.rodata.str1.1", S_CMDLINE),
                    (8, "sec:.text", 0x10),
                    (24, "sec:.rodata.str1.1", S_VERSION),
                    (32, "sec:.text", 0x20),
                ],
            ),
        ],
    )
    ko = write(tmp_path, "kb.ko", elf(secs, syms))
    r, (got,) = inspect_json(ko)
    assert r.status == 0, r.err
    assert got["layout"] == "klp-build"
    assert [f["old_sympos"] for f in got["objects"][0]["funcs"]] == [0, 4]
    assert got["objects"][0]["funcs"][1]["new_func"] == "livepatch_version_proc_show"
    assert got["callbacks"] == [
        {"object": "vmlinux", "kind": "post_unpatch", "func": "pre_patch_cb"}
    ]
    assert got["replace_set"] == {"value": 6, "source": "modinfo"}


def one_line(r, path, message):
    assert r.status == 2, (r.out, r.err)
    assert r.err == f"klpsim: {path}: {message}\n"


def test_bad_files(tmp_path):
    one_line(
        klpsim("inspect", str(tmp_path / "nope.ko")),
        tmp_path / "nope.ko",
        "No such file or directory",
    )
    one_line(klpsim("inspect", str(tmp_path)), tmp_path, "is a directory")
    text = write(tmp_path, "t.ko", b"obj-m += lp.o\n")
    one_line(klpsim("inspect", str(text)), text, "not an ELF file")
    good = klp_patch_module()
    cut = write(tmp_path, "cut.ko", good[:-100])
    one_line(
        klpsim("inspect", str(cut)),
        cut,
        f"truncated: the section headers end at byte {len(good)}, the file has {len(good) - 100}",
    )
    head = write(tmp_path, "head.ko", good[:40])
    one_line(klpsim("inspect", str(head)), head, "truncated: 40 bytes, shorter than an ELF header")
    elf32 = write(tmp_path, "e32.ko", good[:4] + b"\x01" + good[5:])
    one_line(
        klpsim("inspect", str(elf32)),
        elf32,
        "a 32-bit ELF file: klpsim reads x86-64 kernel modules only",
    )
    secs, syms = _common("livepatch=Y\0" + MODINFO)
    arm = write(tmp_path, "arm.ko", elf(secs, syms, machine=183))
    one_line(
        klpsim("inspect", str(arm)),
        arm,
        "an ELF file for AARCH64 (e_machine 183): klpsim reads x86-64 kernel modules only",
    )
    so = write(tmp_path, "so.ko", elf(secs, syms, etype=3))
    one_line(
        klpsim("inspect", str(so)), so, "not a kernel module: ELF type ET_DYN (a .ko is ET_REL)"
    )


def test_not_a_livepatch(tmp_path):
    secs, syms = _common(MODINFO)
    plain = write(tmp_path, "plain.ko", elf(secs, syms))
    one_line(
        klpsim("inspect", str(plain)),
        plain,
        "not a livepatch module: no livepatch=Y in .modinfo, "
        "and no klp_patch, .kpatch.funcs or .init.klp_objects",
    )
    # A klp_patch without livepatch=Y: read, and marked (the kernel refuses it).
    r, (got,) = inspect_json(write(tmp_path, "nolp.ko", klp_patch_module(modinfo=MODINFO)))
    assert r.status == 0 and got["livepatch"] is False and got["layout"] == "klp_patch"
    r = klpsim("inspect", str(tmp_path / "nolp.ko"))
    assert "  livepatch     no (no livepatch=Y in .modinfo)" in r.out.splitlines()


def test_no_symbol_table(tmp_path):
    d = klp_patch_module()
    shoff = struct.unpack_from("<Q", d, 0x28)[0]
    shnum = struct.unpack_from("<H", d, 0x3C)[0]
    b = bytearray(d)
    for i in range(shnum):  # turn .symtab into a NULL section, as strip --strip-all leaves none
        if struct.unpack_from("<I", b, shoff + 64 * i + 4)[0] == 2:
            struct.pack_into("<I", b, shoff + 64 * i + 4, 0)
    ko = write(tmp_path, "stripped.ko", bytes(b))
    one_line(
        klpsim("inspect", str(ko)),
        ko,
        "no symbol table (stripped with --strip-all?): the patched functions, objects "
        "and callbacks cannot be read",
    )


def test_several_files_some_bad(tmp_path):
    good = write(tmp_path, "lp_mini.ko", klp_patch_module())
    bad = write(tmp_path, "bad.ko", b"\x7fELF")
    r, got = inspect_json(good, bad, good)
    assert r.status == 2
    assert [g["file"] for g in got] == [str(good), str(good)]
    assert r.err == f"klpsim: {bad}: truncated: 4 bytes, shorter than an ELF header\n"


def test_bss_funcs_are_a_terminator(tmp_path):
    """``static struct klp_func no_funcs[] = { {} };`` lands in .bss."""
    data = bytearray(512)
    relocs = [(0, "__this_module", 0), (8, "sec:.data", 256), (256 + 8, "sec:.bss", 0)]
    secs, syms = _common(
        "livepatch=Y\0" + MODINFO,
        [
            Sec(".data", bytes(data), A | W, relocs=relocs),
            Sec(".bss", b"", A | W, type=SHT_NOBITS, size=152),
        ],
    )
    r, (got,) = inspect_json(write(tmp_path, "nofuncs.ko", elf(secs, syms)))
    assert got["objects"] == [{"name": "vmlinux", "funcs": []}]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--replace", "2", "x.ko"], "argument --replace: invalid choice: 2"),
        (["--replace-set", "-1", "x.ko"], "argument --replace-set: -1 is not a u32"),
        (["--replace-set", "x", "x.ko"], "argument --replace-set: 'x' is not a number"),
    ],
)
def test_bad_options(argv, words):
    r = klpsim("inspect", *argv)
    assert r.status == 2
    assert len(r.err.splitlines()) == 1 and words in r.err, r.err


def test_without_pyelftools(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "elftools", None)
    monkeypatch.setitem(sys.modules, "elftools.elf", None)
    monkeypatch.setitem(sys.modules, "elftools.elf.elffile", None)
    r = klpsim("inspect", str(write(tmp_path, "lp.ko", klp_patch_module())))
    assert r.status == 2
    assert (
        r.err == "klpsim: inspect: reading .ko files needs pyelftools: pip install 'klpsim[elf]'\n"
    )


def test_startup_does_not_import_pyelftools():
    code = "import sys, klpsim.cli; klpsim.cli.build_parser(); print('elftools' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "False\n"


def test_name_from_this_module(tmp_path):
    """Without name= in .modinfo, the name is struct module's (offset 24)."""
    modinfo = "livepatch=Y\0" + MODINFO.replace("name=lp_mini\0", "")
    r, (got,) = inspect_json(write(tmp_path, "x.ko", klp_patch_module(modinfo=modinfo)))
    assert got["name"] == "lp_mini"
