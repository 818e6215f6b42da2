"""``klpsim inspect`` on real .ko files built from source, both Debian kernels.

Each fixture's expected JSON is derived from its source (ko_expect.py), for
all three layouts and every variant: with DWARF, without (the relocation
pattern), without local symbols, without any symbol table.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout

import pytest
from ko_expect import ExpectedError, expected

from klpsim.artifacts.ko import KoError, read_ko
from klpsim.cli import main


def inspect(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = main(["inspect", *argv])
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()


def test_inspect_json_equals_the_source(ko_fixtures):
    series, fixtures = ko_fixtures
    paths = [str(ko) for f in fixtures for ko in f.kos.values()]
    status, out, err = inspect("--json", *paths)
    got = {r["file"]: r for r in json.loads(out)}
    errors = {}
    for line in err.splitlines():
        assert line.startswith("klpsim: "), line
        path, _, message = line[len("klpsim: ") :].partition(": ")
        errors[path] = message
    mismatches = []
    layouts = set()
    for f in fixtures:
        for variant, ko in f.kos.items():
            want = expected(f, variant)
            if isinstance(want, ExpectedError):
                msg = errors.get(str(ko))
                if msg is None or not msg.startswith(want.message):
                    mismatches.append(f"{ko}: expected error {want.message!r}, got {msg!r}")
                continue
            if got.get(str(ko)) != want:
                mismatches.append(
                    f"{ko}:\n  want {json.dumps(want)}\n  got  {json.dumps(got.get(str(ko)))}"
                )
            layouts.add((want["layout"], variant))
    assert not mismatches, f"{len(mismatches)} mismatches on {series}:\n" + "\n".join(
        mismatches[:5]
    )
    assert status == 2  # the non-livepatch and strip-all files
    assert len(got) + len(errors) == len(paths)
    for layout in ("klp_patch", "kpatch-build", "klp-build"):
        for variant in ("debug", "strip-debug", "strip-unneeded"):
            assert (layout, variant) in layouts


def test_dwarf_and_relocation_paths(ko_fixtures):
    """The debug build is read through DWARF, the stripped ones through the
    relocation pattern, and both give the klp_func/klp_object sizes the
    kernel's DWARF states."""
    _, fixtures = ko_fixtures
    f = next(f for f in fixtures if f.name == "livepatch-callbacks-demo")
    debug = read_ko(f.kos["debug"])
    dwarf = next(n for n in debug.notes if n.startswith("struct sizes from DWARF: "))
    sizes = dict(
        item.split() for item in dwarf.removeprefix("struct sizes from DWARF: ").split(", ")
    )
    stripped = read_ko(f.kos["strip-debug"])
    assert "no DWARF: struct sizes from the relocation pattern" in stripped.notes
    assert f"klp_object size {sizes['klp_object']} from the relocation pattern" in stripped.notes
    assert f"klp_func size {sizes['klp_func']} from the relocation pattern" in stripped.notes
    assert stripped.objects == debug.objects


def test_kpatch_fork_stride(ko_fixtures):
    _, fixtures = ko_fixtures
    f = next(f for f in fixtures if f.name == "klpsim_kpatch_fork")
    r = read_ko(f.kos["strip-debug"])
    assert ".kpatch.funcs: 72-byte entries (56 upstream): a fork" in r.notes


def test_lost_klp_relas_are_noted(ko_fixtures):
    _, fixtures = ko_fixtures
    f = next(f for f in fixtures if f.name == "klpsim_kpatch_layout")
    assert read_ko(f.kos["debug"]).rela_objects == ("klpsim_mod_a", "vmlinux")
    r = read_ko(f.kos["strip-debug"])
    assert r.rela_objects == ()
    assert any(
        n.startswith(".klp.sym symbols of klpsim_mod_a, vmlinux that no .klp.rela section uses")
        for n in r.notes
    )


def _one_line(status: int, out: str, err: str, path: str, message: str) -> None:
    assert status == 2
    assert out == ""
    assert err == f"klpsim: {path}: {message}\n", err


def test_bad_real_files(ko_fixtures, tmp_path):
    """Truncated, wrong-arch, 32-bit, non-livepatch and stripped files: one line, exit 2."""
    _, fixtures = ko_fixtures
    good = next(f for f in fixtures if f.name == "test_klp_livepatch").kos["debug"].read_bytes()

    cut = tmp_path / "truncated.ko"
    cut.write_bytes(good[: len(good) // 2])
    status, out, err = inspect(str(cut))
    _, shoff = len(good), int.from_bytes(good[0x28:0x30], "little")
    shnum = int.from_bytes(good[0x3C:0x3E], "little")
    _one_line(
        status,
        out,
        err,
        str(cut),
        f"truncated: the section headers end at byte {shoff + 64 * shnum}, "
        f"the file has {len(good) // 2}",
    )

    arm = bytearray(good)
    arm[0x12:0x14] = (183).to_bytes(2, "little")  # EM_AARCH64
    (tmp_path / "arm.ko").write_bytes(bytes(arm))
    _one_line(
        *inspect(str(tmp_path / "arm.ko")),
        str(tmp_path / "arm.ko"),
        "an ELF file for AARCH64 (e_machine 183): klpsim reads x86-64 kernel modules only",
    )

    elf32 = bytearray(good)
    elf32[4] = 1  # ELFCLASS32
    (tmp_path / "elf32.ko").write_bytes(bytes(elf32))
    _one_line(
        *inspect(str(tmp_path / "elf32.ko")),
        str(tmp_path / "elf32.ko"),
        "a 32-bit ELF file: klpsim reads x86-64 kernel modules only",
    )

    plain = next(f for f in fixtures if f.name == "test_klp_callbacks_mod").kos["debug"]
    _one_line(
        *inspect(str(plain)),
        str(plain),
        "not a livepatch module: no livepatch=Y in .modinfo, "
        "and no klp_patch, .kpatch.funcs or .init.klp_objects",
    )

    stripped = next(f for f in fixtures if f.name == "test_klp_livepatch").kos["strip-all"]
    _one_line(
        *inspect(str(stripped)),
        str(stripped),
        "no symbol table (stripped with --strip-all?): the patched functions, objects "
        "and callbacks cannot be read",
    )
    with pytest.raises(KoError):
        read_ko(stripped)


def test_replace_given_overrides(ko_fixtures):
    _, fixtures = ko_fixtures
    ko = next(f for f in fixtures if f.name == "test_klp_state").kos["strip-debug"]
    status, out, _ = inspect("--json", "--replace", "1", "--replace-set", "7", str(ko))
    (r,) = json.loads(out)
    assert status == 0
    assert r["replace"] == {"value": True, "source": "given"}
    assert r["replace_set"] == {"value": 7, "source": "given"}


def test_human_view_lists_every_function(ko_fixtures):
    """One line per function, under its object, in the kernel's walk order."""
    _, fixtures = ko_fixtures
    f = next(f for f in fixtures if f.name == "klpsim_ins_multi")
    want = expected(f, "debug")
    status, out, _ = inspect(str(f.kos["debug"]))
    assert status == 0
    lines = out.splitlines()
    start = lines.index("  vmlinux")
    body = [ln.split() for ln in lines[start:]]
    listed = []
    for obj in want["objects"]:
        listed.append([obj["name"]])
        for fn in obj["funcs"]:
            listed.append([fn["old_name"], "sympos", str(fn["old_sympos"]), "->", fn["new_func"]])
    assert body == listed
    assert os.path.basename(str(f.kos["debug"])) in lines[0]
