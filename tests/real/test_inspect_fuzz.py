"""Byte-level mutations of real .ko fixtures: the reader answers, or says in one line why not.

Seeded (``KLPSIM_INSPECT_FUZZ_SEED``, default below), 1,000 cases per kernel.
The mutations are plain (flip, insert, delete, truncate) and ELF-aware
(section and ELF headers, string tables, relocation entries, symbols, the
patch data, DWARF).  Every case must end in a LivepatchModule that prints
(human and JSON) or in a one-line KoError: no other exception, no hang.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import struct
import traceback
from contextlib import redirect_stderr, redirect_stdout

from klpsim.artifacts.ko import KoError, LivepatchModule, read_ko
from klpsim.cli import main
from klpsim.tools.inspect import as_json, human_view

SEED = int(os.environ.get("KLPSIM_INSPECT_FUZZ_SEED", "20260611"))
CASES = 1000  # per kernel: 2,000 in all
EDGES = [0, 1, 7, 8, 24, 0x7F, 0xFF, 0xFFFF, 0xFFFFFFFF, 1 << 31, 1 << 63, (1 << 64) - 1]


class _Hang(Exception):
    pass


def _sections(d: bytes) -> list[tuple[int, str, int, int, int]]:
    """(header offset, name, type, offset, size) of each section of a good file."""
    shoff = struct.unpack_from("<Q", d, 0x28)[0]
    shnum, strndx = struct.unpack_from("<HH", d, 0x3C)
    str_off = struct.unpack_from("<Q", d, shoff + 64 * strndx + 0x18)[0]
    out = []
    for i in range(shnum):
        h = shoff + 64 * i
        name_off, typ = struct.unpack_from("<II", d, h)
        start = str_off + name_off
        name = d[start : d.index(b"\0", start)].decode()
        off, size = struct.unpack_from("<QQ", d, h + 0x18)
        out.append((h, name, typ, off, size))
    return out


def _edge(rng: random.Random, nbytes: int) -> int:
    v = rng.choice(EDGES) if rng.random() < 0.6 else rng.getrandbits(8 * nbytes)
    if rng.random() < 0.2:
        v = rng.randrange(0, 4096)
    return v & ((1 << (8 * nbytes)) - 1)


def _put(d: bytearray, pos: int, nbytes: int, value: int) -> None:
    if pos >= 0 and pos + nbytes <= len(d):
        d[pos : pos + nbytes] = value.to_bytes(nbytes, "little")


def _in_section(rng, d, secs, pred) -> int | None:
    cands = [(o, s) for _, n, t, o, s in secs if pred(n, t) and s and t != 8 and o + s <= len(d)]
    if not cands:
        return None
    o, s = rng.choice(cands)
    return o + rng.randrange(s)


def mutate(rng: random.Random, good: bytes) -> tuple[bytes, list[str]]:
    d = bytearray(good)
    secs = _sections(good)
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.choice(
            ["flip", "insert", "delete", "truncate", "shdr", "ehdr", "strings", "rela", "sym"]
            + ["data", "data", "dwarf"]
        )
        done.append(op)
        if op == "flip" and d:
            for _ in range(rng.randint(1, 8)):
                d[rng.randrange(len(d))] ^= rng.randint(1, 255)
        elif op == "insert":
            pos = rng.randrange(len(d) + 1)
            d[pos:pos] = rng.randbytes(rng.randint(1, 64))
        elif op == "delete" and d:
            pos = rng.randrange(len(d))
            del d[pos : pos + rng.randint(1, 256)]
        elif op == "truncate":
            del d[rng.randrange(len(d) + 1) :]
        elif op == "shdr":
            h = rng.choice(secs)[0]
            field, size = rng.choice(
                [(0, 4), (4, 4), (8, 8), (0x18, 8), (0x20, 8), (0x28, 4), (0x2C, 4), (0x38, 8)]
            )
            _put(d, h + field, size, _edge(rng, size))
        elif op == "ehdr":
            field, size = rng.choice(
                [(4, 1), (5, 1), (0x10, 2), (0x12, 2), (0x28, 8), (0x3A, 2), (0x3C, 2), (0x3E, 2)]
            )
            _put(d, field, size, _edge(rng, size))
        elif op == "strings":
            pos = _in_section(
                rng,
                d,
                secs,
                lambda n, t: t == 3 or n in (".modinfo",) or n.startswith(".rodata.str"),
            )
            if pos is not None:
                for k in range(rng.randint(1, 16)):
                    _put(d, pos + k, 1, rng.choice([0, 0x41, 0xFF, 0x2E, 0x3D]))
        elif op == "rela":
            relas = [(o, s) for _, n, t, o, s in secs if t == 4 and s >= 24 and o + s <= len(d)]
            if relas:
                o, s = rng.choice(relas)
                e = o + 24 * rng.randrange(s // 24)
                field = rng.choice([0, 8, 12, 16])
                size = 4 if field in (8, 12) else 8
                _put(d, e + field, size, _edge(rng, size))
        elif op == "sym":
            syms = [(o, s) for _, n, t, o, s in secs if t == 2 and o + s <= len(d)]
            if syms:
                o, s = syms[0]
                e = o + 24 * rng.randrange(max(1, s // 24))
                field, size = rng.choice([(0, 4), (4, 1), (6, 2), (8, 8), (16, 8)])
                _put(d, e + field, size, _edge(rng, size))
        elif op == "data":
            pos = _in_section(
                rng,
                d,
                secs,
                lambda n, t: (
                    n in (".data", ".kpatch.funcs", ".modinfo")
                    or n.startswith((".init.klp_", "__klp_", ".kpatch.callbacks"))
                ),
            )
            if pos is not None:
                _put(d, pos, 8, _edge(rng, 8))
        elif op == "dwarf":
            pos = _in_section(rng, d, secs, lambda n, t: n.startswith(".debug_"))
            if pos is not None:
                _put(d, pos, 4, _edge(rng, 4))
    return bytes(d), done


def test_reader_never_raises_a_traceback(ko_fixtures, tmp_path):
    series, fixtures = ko_fixtures
    pool = [
        f.kos[v].read_bytes()
        for f in fixtures
        for v in ("debug", "strip-debug", "strip-debug", "strip-unneeded")
    ]
    rng = random.Random(f"{SEED}:{series}")
    failures = []
    outcomes = {"result": 0, "error": 0}

    def alarm(signum, frame):
        raise _Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    try:
        for case in range(CASES):
            data, ops = mutate(rng, rng.choice(pool))
            path = tmp_path / f"case{case}.ko"
            path.write_bytes(data)
            signal.setitimer(signal.ITIMER_REAL, 5.0)
            try:
                r = read_ko(path)
                assert isinstance(r, LivepatchModule)
                json.dumps(as_json(r))
                human_view(r).encode()
                outcomes["result"] += 1
            except KoError as e:
                outcomes["error"] += 1
                if "\n" in str(e) or not str(e).startswith(str(path) + ": "):
                    failures.append(f"case {case} {ops}: not one line naming the file: {e!r}")
            except _Hang:
                failures.append(f"case {case} {ops}: no answer after 5 s")
            except Exception:
                failures.append(f"case {case} {ops}:\n{traceback.format_exc()}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if case % 100 == 0:
                # The command too: exit 0 or 2, and one line per bad file.
                out, err = io.StringIO(), io.StringIO()
                with redirect_stdout(out), redirect_stderr(err):
                    status = main(["inspect", "--json", str(path)])
                lines = err.getvalue().splitlines()
                if status not in (0, 2) or len(lines) != (status == 2):
                    failures.append(f"case {case}: status {status}, stderr {lines!r}")
            path.unlink()
    finally:
        signal.signal(signal.SIGALRM, old)
    assert not failures, (
        f"seed {SEED} on {series}: {len(failures)} of {CASES} cases failed "
        f"(replay with KLPSIM_INSPECT_FUZZ_SEED={SEED}):\n" + "\n".join(failures[:3])
    )
    # Both outcomes occur: the mutations reach past the header checks.
    assert outcomes["result"] > CASES // 10 and outcomes["error"] > CASES // 10, outcomes
