"""klpsim's own bad-input fuzzer: seeded mutations of the repository's
scripts, module definitions, ``.ko`` files, snapshots and command lines,
each run in this process through the console script's entry point.

What counts as a pass is what the README and cli.py document for exit
statuses:

* 0: the command did its job (a script ran to the end; a script's own
  commands may still have written errors on stderr, as under bash);
* 1: a script failed (a helper died, a check_result differed): stderr may
  hold a multi-line diff and the commands' own errors;
* 2: bad input (a script, a module definition, a file, an option): exactly
  one line on stderr, and nothing ran; ``inspect`` alone reads each FILE on
  its own and gives one line for each bad one (cmd_inspect), each naming it;
* 3: ``--check`` found a broken invariant; 74: the output could not be
  written: one line of klpsim's own, the last, after whatever the script's
  commands wrote on stderr before (as for 0 and 1).

So, for every case: the status is one of those (70, an internal error, never
is), no traceback is printed, no exception is turned into a message, the case
ends within LIMIT seconds, the lines on stderr are as above, and the files
the case was given are unchanged.

The commands fuzzed are every one that reads user input in-process: run
(files and stdin), semantics --scenarios, inspect, snapshot --show (never a
collection of this host), fuzz --dry-run, truth-table, kernels and the
top-level options; diff and vm boot a real kernel in QEMU and are left out.

Two runs: a fixed seed, and a seed that changes each run (set
KLPSIM_FUZZ_SEED to replay one; a failure names the seed and the case).
KLPSIM_FUZZ_CASES sets the number of cases per seed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import random
import re
import signal
import sys
import time
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fakehost import run_python, standard_host
from harness import ROOT
from klpsim.cli import entry
from klpsim.kernel.printk import escape
from klpsim.livepatch.profiles import all_profiles
from test_inspect import klp_patch_module, kpatch_module

LIMIT = 10.0
"""Seconds one case may take."""
CASES = int(os.environ.get("KLPSIM_FUZZ_CASES", "600"))
FIXED_SEED = 20261130
DOCUMENTED = {0, 1, 2, 3, 74}
PROFILES = sorted(all_profiles())

# -- the corpus: the repository's own inputs ------------------------------------


def _scripts() -> list[tuple[Path, str]]:
    """(script, profile it is written for)."""
    out = [(p, "7.1") for p in sorted((ROOT / "tests" / "selftests").glob("*.sh"))]
    for p in sorted((ROOT / "tests" / "scenarios").glob("*/*.sh")):
        out.append((p, p.parent.name if p.parent.name in PROFILES else "7.1"))
    out += [(p, "replace-set") for p in sorted((ROOT / "examples").glob("*.sh"))]
    sem = ROOT / "src" / "klpsim" / "tools" / "data" / "semantics"
    out += [(p, "7.1") for p in sorted(sem.glob("*.sh"))]
    return out


def _tomls() -> list[Path]:
    skip = {".venv", ".git", "build", "dist", "node_modules"}
    return sorted(p for p in ROOT.rglob("*.toml") if not skip & set(p.relative_to(ROOT).parts[:-1]))


SCRIPTS = _scripts()
TOMLS = _tomls()
SEMANTICS = ROOT / "src" / "klpsim" / "tools" / "data" / "semantics"

# -- mutations -----------------------------------------------------------------------

SPECIAL: list[bytes] = [
    b"'",
    b'"',
    b"$",
    b"$x",
    b"${",
    b"$(true)",
    b"{",
    b"}",
    b"{a,b}",
    b"x{1..3}",
    b"~",
    b"~/x",
    b"\x00",
    b"\r",
    b"\r\n",
    b"\t",
    b"\\",
    b"`",
    b"|",
    b";",
    b"&",
    b">",
    b">>",
    b"<",
    b"*",
    b"?",
    b"[a]",
    b"#",
    b"=",
    b"--",
    b"-",
    b"a" * 80_000,
    b"9" * 5000,
    b"-1",
    b"-0",
    b"0",
    b"0x",
    b"0x" + b"f" * 40,
    b"1e400",
    b"1e-400",
    b"nan",
    b"inf",
    b"-inf",
    b"NaN",
    b"18446744073709551616",
    b"18446744073709551615",
    b"4294967296",
    b"2147483648",
    b"-9223372036854775809",
    "é".encode(),
    "\u202e".encode(),
    "\U0001f600".encode(),
    "\ufeff".encode(),
    b"\x1b[31m",
    b"\x7f",
    b"\xff",
    b"\xc3",
    b"/",
    b"..",
    b"/proc/self",
    b"/sys/kernel/livepatch",
    b"1001",
    b"99999999999",
    b"vmlinux",
    b"cmdline_proc_show",
    b"test_klp_livepatch",
    b"x" * 300,
]


def _words(line: bytes) -> list[bytes]:
    return line.split(b" ")


class Mutator:
    """Seeded mutations of bytes, lines, words and TOML trees."""

    def __init__(self, rng: random.Random, donors: list[bytes]):
        self.rng = rng
        self.donors = donors  # texts to splice lines from
        verbs = {ln.split(b" ", 1)[0] for d in donors for ln in d.splitlines()}
        self.verbs = sorted(v for v in verbs if v and not v.startswith(b"#"))

    def word(self) -> str:
        """A special token as a command-line word: bytes that are not UTF-8
        arrive as lone surrogates (Python's argv); a NUL cannot be in argv."""
        return self.special().replace(b"\x00", b"").decode(errors="surrogateescape")

    def special(self) -> bytes:
        s = self.rng.choice(SPECIAL)
        if self.rng.random() < 0.2:
            quote = self.rng.choice([b"'", b'"'])
            s = quote + s + quote
        return s

    def bytes_op(self, data: bytes) -> bytes:
        """A byte flip, deletion, duplication, insertion or truncation."""
        rng = self.rng
        n = len(data)
        i = rng.randrange(n + 1)
        op = rng.randrange(6)
        if op == 0 and n:  # flip a byte
            i = min(i, n - 1)
            return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]
        if op == 1 and n:  # delete a span
            return data[:i] + data[i + rng.randrange(1, 64) :]
        if op == 2 and n:  # duplicate a span
            j = min(n, i + rng.randrange(1, 128))
            return data[:j] + data[i:j] + data[j:]
        if op == 3:  # insert a special token
            return data[:i] + self.special() + data[i:]
        if op == 4:  # truncate
            return data[:i]
        return (
            data[:i] + bytes([rng.choice([0, 9, 10, 13, 27, 32, 34, 39, 92, 127, 255])]) + data[i:]
        )

    def line_op(self, data: bytes) -> bytes:
        """Delete, duplicate, swap or splice lines; change a word of a line."""
        rng = self.rng
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        op = rng.randrange(7)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3:  # splice a line of another script
            donor = rng.choice(self.donors).split(b"\n")
            lines.insert(i, rng.choice(donor))
        else:
            words = _words(lines[i])
            k = rng.randrange(len(words))
            wop = rng.randrange(5)
            if wop == 0 and len(words) > 1:
                del words[max(k, 1)]  # drop an argument
            elif wop == 1:
                words[max(k, 1) if len(words) > 1 else k] = self.special()
            elif wop == 2:
                words.append(self.special())
            elif wop == 3 and self.verbs:
                words[0] = rng.choice(self.verbs)  # another verb, these arguments
            else:
                words = words[:1]  # the verb alone
            lines[i] = b" ".join(words)
        return b"\n".join(lines)

    def text(self, data: bytes) -> bytes:
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            data = (self.line_op if self.rng.random() < 0.6 else self.bytes_op)(data)
        return data

    # TOML: a tree mutation, written back as TOML

    def toml_value(self) -> object:
        return self.rng.choice(
            [
                0,
                -1,
                1,
                2**32,
                2**63 - 1,
                -(2**63),
                1.5,
                math.nan,
                math.inf,
                True,
                False,
                "",
                "x",
                "a\nb",
                "\x00",
                "é\u202e",
                "x" * 5000,
                "cmdline_proc_show",
                "vmlinux",
                "ERRNO",
                [],
                [1, "a"],
                [{}],
                {},
                {"old_name": "meminfo_proc_show"},
            ]
        )

    def toml_tree(self, tree: dict) -> dict:
        rng = self.rng
        nodes: list[tuple[Any, Any]] = []  # (container, key)

        def walk(node: object) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    nodes.append((node, k))
                    walk(v)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    nodes.append((node, i))
                    walk(v)

        walk(tree)
        op = rng.randrange(5)
        if not nodes or op == 0:  # an extra key somewhere
            dicts = [tree] + [c[k] for c, k in nodes if isinstance(c[k], dict)]
            target = rng.choice(dicts)
            target[rng.choice(["extra", "", "a b", "é", "name", "funcs", "livepatch", "id"])] = (
                self.toml_value()
            )
            return tree
        container, key = rng.choice(nodes)
        if op == 1:
            del container[key]
        elif op == 2 and isinstance(container[key], list):
            value = container[key]
            value.extend(value[:1] * rng.randrange(1, 3))
        else:
            container[key] = self.toml_value()
        return tree

    def toml(self, data: bytes) -> bytes:
        try:
            tree = tomllib.loads(data.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            tree = None
        r = self.rng.random()
        if tree is not None and r < 0.6:
            return dump_toml(self.toml_tree(tree)).encode()
        if r < 0.75:  # a table or array-of-tables header twice
            headers = re.findall(rb"^\[.*\]$", data, re.M)
            if headers:
                h = self.rng.choice(headers)
                return data + b"\n" + h + b"\n"
        return self.text(data)


_BARE = re.compile(r"[A-Za-z0-9_-]+\Z")


def _toml_key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _toml_str(s: str) -> str:
    # TOML basic strings take JSON's escapes but \/; json.dumps writes none.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return (
            "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        )
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def dump_toml(tree: dict) -> str:
    """Any tree as TOML: top-level keys, inline tables below them."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in tree.items())


def test_dump_toml_round_trips():
    tree = {"a": [1, {"b": "x\n\x00é"}], "c d": {"e": math.inf, "f": True}, "g": -(2**63)}
    assert tomllib.loads(dump_toml(tree)) == tree


# -- cases ---------------------------------------------------------------------------


@dataclass
class Case:
    what: str
    argv: list[str]
    stdin: bytes = b""
    inputs: list[Path] = field(default_factory=list)


def _link_modules(src: Path, dst: Path, skip: str | None = None) -> None:
    """dst/: a symlink to each module definition in src/ (klpsim only reads them)."""
    dst.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        for f in src.glob("*.toml"):
            if f.stem != skip:
                (dst / f.name).symlink_to(f)


def _small_count(word: str) -> str:
    """*word* for fuzz --count, unless it is a count over 2: writing a
    billion scenarios is a long job that was asked for, not bad input."""
    try:
        return word if int(word) <= 2 else "2"
    except ValueError:
        return word


class Generator:
    def __init__(self, seed: int, tmp: Path):
        self.rng = random.Random(seed)
        self.tmp = tmp
        self.texts = {p: p.read_bytes() for p, _ in SCRIPTS}
        self.m = Mutator(self.rng, list(self.texts.values()))
        self.tomls = {p: p.read_bytes() for p in TOMLS}
        self.kos = [klp_patch_module(), kpatch_module()]
        self.snapshots = _snapshots(tmp / "snapshot-seed")
        self.n = 0

    def case_dir(self) -> Path:
        self.n += 1
        d = self.tmp / f"c{self.n}"
        d.mkdir()
        return d

    def kernel_opt(self, profile: str) -> list[str]:
        r = self.rng.random()
        if r < 0.85:
            return ["--kernel", profile]
        if r < 0.95:
            return ["--kernel", self.rng.choice(PROFILES)]
        return ["--kernel", self.m.word()]

    def run_opts(self) -> list[str]:
        rng = self.rng
        opts = []
        if rng.random() < 0.3:
            opts.append("--dmesg")
        if rng.random() < 0.3:
            opts.append("--check")
        if rng.random() < 0.1:
            opts += ["--config", rng.choice(["CONFIG_KPROBES=n", "CONFIG_LIVEPATCH=n", "X=y", ""])]
        return ["--debug", "run", *opts] if rng.random() < 0.05 else ["run", *opts]

    # one kind of case each

    def script(self) -> Case:
        path, profile = self.rng.choice(SCRIPTS)
        d = self.case_dir()
        _link_modules(path.parent / "test_modules", d / "test_modules")
        s = d / "s.sh"
        s.write_bytes(self.m.text(self.texts[path]))
        argv = [*self.run_opts(), *self.kernel_opt(profile), str(s)]
        return Case(f"script {path.relative_to(ROOT)}", argv, inputs=[s])

    def stdin_script(self) -> Case:
        path, profile = self.rng.choice(SCRIPTS)
        data = self.m.text(self.texts[path])
        return Case(
            f"stdin {path.relative_to(ROOT)}", ["run", "--kernel", profile, "-"], stdin=data
        )

    def toml(self) -> Case:
        rng = self.rng
        path = rng.choice(TOMLS)
        d = self.case_dir()
        name = path.stem.replace("-", "_")
        mods = d / "test_modules"
        _link_modules(path.parent, mods, skip=path.stem)
        mutated = self.m.toml(self.tomls[path])
        (mods / f"{name}.toml").write_bytes(mutated)
        users = [
            (p, prof)
            for p, prof in SCRIPTS
            if p.parent == path.parent.parent
            and re.search(rb"\b%s\b" % name.encode(), self.texts[p])
        ]
        if users and rng.random() < 0.7:
            script, profile = rng.choice(users)
            text = self.texts[script]
        else:
            profile = rng.choice(PROFILES)
            verb = "load_lp" if b"livepatch" in self.tomls[path] else "load_mod"
            text = f"start_test fuzz\n{verb} {name}\n".encode()
        s = d / "s.sh"
        s.write_bytes(text)
        argv = [*self.run_opts(), *self.kernel_opt(profile), str(s)]
        if rng.random() < 0.2:  # the same folder through --modules
            argv[1:1] = ["--modules", str(mods)]
        return Case(f"toml {path.relative_to(ROOT)}", argv, inputs=[s, mods / f"{name}.toml"])

    def semantics(self) -> Case:
        rng = self.rng
        d = self.case_dir() / "sem"
        d.mkdir()
        mods = d / "test_modules"
        inputs = []
        scripts = sorted(SEMANTICS.glob("*.sh"))
        pick = rng.choice(scripts)
        if rng.random() < 0.5:
            (d / pick.name).write_bytes(self.m.text(pick.read_bytes()))
            _link_modules(SEMANTICS / "test_modules", mods)
        else:
            (d / pick.name).symlink_to(pick)
            toml = rng.choice(sorted((SEMANTICS / "test_modules").glob("*.toml")))
            _link_modules(SEMANTICS / "test_modules", mods, skip=toml.stem)
            (mods / toml.name).write_bytes(self.m.toml(toml.read_bytes()))
            inputs.append(mods / toml.name)
        inputs.append(d / pick.name)
        return Case(f"semantics {pick.name}", ["semantics", "--scenarios", str(d)], inputs=inputs)

    def inspect(self) -> Case:
        rng = self.rng
        d = self.case_dir()
        files = []
        for i in range(rng.choice([1, 1, 2])):
            data = rng.choice(self.kos)
            for _ in range(rng.choice([0, 1, 1, 2, 4])):
                data = self.m.bytes_op(data)
            f = d / f"m{i}.ko"
            f.write_bytes(data)
            files.append(f)
        opts = rng.choice(
            [[], ["--json"], ["--replace", "1"], ["--replace-set", "7"], ["--replace-set", "-1"]]
        )
        if rng.random() < 0.1:
            opts = [*opts, self.m.word()]
        return Case("inspect", ["inspect", *opts, *map(str, files)], inputs=files)

    def snapshot(self) -> Case:
        rng = self.rng
        d = self.case_dir()
        name, data = rng.choice(self.snapshots)
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            data = self.m.bytes_op(data)
        f = d / name
        f.write_bytes(data)
        argv = rng.choice(
            [
                ["snapshot", "--show", str(f)],
                ["snapshot", "--show", str(f)],
                ["snapshot", "--show", str(f), "-o", str(d / "o.tar.gz")],
                ["snapshot", "--show", ""],
                ["snapshot", "--print-script", "--show", str(f)],
                ["snapshot", "--show", str(d / "missing.tar.gz")],
                ["snapshot", "--show", self.m.word()],
                ["snapshot", "--show", str(d)],
            ]
        )
        return Case(f"snapshot {name}", argv, inputs=[f])

    def command_line(self) -> Case:
        rng = self.rng
        d = self.case_dir()
        junk = self.m.word()
        plain = d / "plain"
        plain.write_text("x\n")
        long = "x" * 300
        out = rng.choice([str(d / "out"), str(plain), str(d / "a" / "b"), "", long, "/proc/nope"])
        argv = rng.choice(
            [
                [
                    "fuzz",
                    "--dry-run",
                    "--kernel",
                    rng.choice(["6.1", "6.12", "7.1", junk]),
                    "--seed",
                    rng.choice(["0", "-1", str(2**70), "nan", junk]),
                    "--count",
                    rng.choice(["0", "1", "2", "-1", "1e3", _small_count(junk)]),
                    "--out",
                    out,
                ],
                ["truth-table", *rng.choice([[], [junk], ["--help"], ["--bogus"]])],
                ["kernels", *rng.choice([[], [junk], ["-h"]])],
                ["run", *rng.choice([[str(d)], [str(plain / "x")], [long + ".sh"], [junk], []])],
                ["run", "--modules", rng.choice([str(plain), long, junk, str(d)]), str(plain)],
                ["semantics", "--scenarios", rng.choice([str(plain), long, junk, "/"])],
                ["inspect", rng.choice([str(d), str(plain), long, junk])],
                [rng.choice(["--version", "--bogus", junk, "--debug", "help"])],
                [],
                ["snapshot", "--show"],
                ["snapshot", "--print-script", "-o", str(d / "o")],
                ["snapshot", "--ko", str(d), "--show", str(plain)],
            ]
        )
        return Case("command line", argv, inputs=[plain])

    def cases(self, n: int):
        kinds = [
            (self.script, 40),
            (self.stdin_script, 5),
            (self.toml, 25),
            (self.semantics, 3),
            (self.inspect, 10),
            (self.snapshot, 7),
            (self.command_line, 10),
        ]
        fns, weights = zip(*kinds, strict=True)
        for _ in range(n):
            yield self.rng.choices(fns, weights)[0]()


def _snapshots(d: Path) -> list[tuple[str, bytes]]:
    """A host snapshot from the fake host, gzip'd and not."""
    d.mkdir()
    host = standard_host(d / "host")
    out = d / "snap.tar.gz"
    r = run_python(host.root, out)
    assert r.returncode == 0, r.stderr
    gz = out.read_bytes()
    return [("snap.tar.gz", gz), ("snap.tar", gzip.decompress(gz))]


# -- running a case ------------------------------------------------------------------


class CaseTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that entry() cannot catch it."""


def _alarm(signum, frame):
    raise CaseTimeout


def run_case(case: Case) -> tuple[int | str, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(case.stdin), encoding="utf-8", errors="surrogateescape")
    saved = sys.argv, sys.stdin, signal.signal(signal.SIGALRM, _alarm)
    sys.argv, sys.stdin = ["klpsim", *case.argv], stdin
    start = time.perf_counter()
    status: int | str
    try:
        signal.setitimer(signal.ITIMER_REAL, LIMIT)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                entry()
                status = "returned"  # entry() always exits
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except CaseTimeout:
        status = "timeout"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.argv, sys.stdin = saved[0], saved[1]
        signal.signal(signal.SIGALRM, saved[2])
    return status, out.getvalue(), err.getvalue(), time.perf_counter() - start


# cmd_inspect() turns any exception while reading a file into "cannot read
# (TypeError: ...)": a crash of the reader all the same.
_DISGUISED = re.compile(r"cannot read \(\w+(Error|Exception)\b")


def problems(case: Case, status, out: str, err: str, took: float) -> list[str]:
    found = []
    if status == "timeout" or took >= LIMIT:
        found.append(f"over {LIMIT:.0f} s")
    elif status not in DOCUMENTED:
        found.append(f"exit status {status}")
    if "internal error" in err or "Traceback (most recent call last)" in out + err:
        found.append("internal error")
    lines = err.splitlines()
    if any(_DISGUISED.search(line) for line in lines):
        found.append("an exception caught as a message")
    if case.argv[:1] == ["inspect"] and status == 2 and len(lines) != 1:
        # inspect reads each FILE on its own: one line for each bad one
        # (cmd_inspect), each naming its file.
        named = all(
            any(line.startswith(f"klpsim: {escape(a)}: ") for a in case.argv) for line in lines
        )
        if not lines or len(lines) > len(case.argv) or not named:
            found.append(f"{len(lines)} lines on stderr for exit 2, not one for each bad file")
    elif status == 2 and len(lines) != 1:
        found.append(f"{len(lines)} lines on stderr for exit 2")
    elif status in (3, 74):
        # What the script's own commands wrote before stays (as under bash);
        # klpsim's own word is one line, the last.
        own = [line for line in lines if line.startswith("klpsim: ")]
        if len(own) != 1 or lines[-1] != own[0]:
            found.append(f"{len(own)} klpsim lines on stderr for exit {status}")
    return found


def _digest(paths: list[Path]) -> dict[Path, str]:
    out = {}
    for p in paths:
        if p.is_file():
            out[p] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _seed(label: str) -> int:
    """The fixed seed, or a new one each run (chosen in the test, so that
    every pytest-xdist worker collects the same two tests)."""
    if label == "fixed":
        return FIXED_SEED
    return int(os.environ.get("KLPSIM_FUZZ_SEED") or time.time_ns() % 2**32)


# The mutated scripts include the aggregated-kprobe ones, which reproduce a
# real kernel WARN (kprobes.c's disarm through the wrong ops) on purpose.
@pytest.mark.kernel_warns
@pytest.mark.parametrize("label", ["fixed", "fresh"])
def test_bad_input_fuzz(tmp_path, monkeypatch, label):
    seed = _seed(label)
    # Relative paths a case names land here, not in the checkout.
    monkeypatch.chdir(tmp_path)
    print(f"bad-input fuzz: seed {seed} ({label}); replay: KLPSIM_FUZZ_SEED={seed}")
    repo_before = _digest(TOMLS + [p for p, _ in SCRIPTS])
    gen = Generator(seed, tmp_path)
    failures, kinds = [], {}
    for i, case in enumerate(gen.cases(CASES)):
        given = _digest(case.inputs)
        status, out, err, took = run_case(case)
        kinds[status] = kinds.get(status, 0) + 1
        found = problems(case, status, out, err, took)
        if _digest(case.inputs) != given:
            found.append("an input file changed")
        if found:
            first = err.strip().splitlines()[:3]
            failures.append(f"case {i} ({case.what}): {', '.join(found)}: {case.argv} -> {first}")
    assert _digest(TOMLS + [p for p, _ in SCRIPTS]) == repo_before
    print(f"bad-input fuzz: {CASES} cases, exit statuses {dict(sorted(kinds.items(), key=str))}")
    assert not failures, f"seed {seed}: {len(failures)} of {CASES} cases failed:\n" + "\n".join(
        failures[:20]
    )
