"""Every import in src/klpsim points down the layer table of
docs/architecture.md (module-level and function-level imports alike), and
nothing in scenario/ imports tools/."""

import ast
import re
from pathlib import Path

from harness import ROOT

SRC = ROOT / "src" / "klpsim"
TABLE = ROOT / "docs" / "architecture.md"


def layers() -> dict[str, int]:
    """{package: rank}, lowest layer first, from the table's `package` column."""
    text = TABLE.read_text()
    section = text[text.index("## Layers") :]
    rank: dict[str, int] = {}
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    for i, row in enumerate(rows):
        cells = [c.strip() for c in row.strip("|").split("|")]
        for package in re.findall(r"`([A-Za-z_]+)`", cells[1]):
            rank[package] = i
    return rank


def package_of(module: str) -> str | None:
    """``klpsim.model.schema`` -> ``model``; the root package has none."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "klpsim" else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in *path*, anywhere in it."""
    module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    if path.name == "__init__.py":
        module = module.removesuffix(".__init__") + ".__init__"
    here = module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            for alias in node.names:  # "from klpsim import tools"
                out.append((node.lineno, f"{target}.{alias.name}"))
    return [(line, m) for line, m in out if m.split(".")[0] == "klpsim"]


def sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_the_table_names_every_package():
    rank = layers()
    assert list(rank)[:4] == ["kernel", "trace", "livepatch", "model"]
    assert rank["session"] > rank["scenario"] and rank["tools"] > rank["real"]
    for path in sources():
        rel = path.relative_to(SRC)
        if rel == Path("__init__.py"):
            continue
        name = rel.parts[0].removesuffix(".py")
        assert name in rank, f"{rel}: no layer for '{name}' in docs/architecture.md"


def test_no_import_points_up():
    rank = layers()
    wrong = []
    for path in sources():
        rel = path.relative_to(SRC)
        mine = rel.parts[0].removesuffix(".py")
        if mine not in rank:
            continue  # the root package
        for line, target in imports(path):
            other = package_of(target)
            if other is None or other not in rank:
                continue  # the root package, or a name inside it ("from klpsim import x")
            if rank[other] > rank[mine]:
                wrong.append(f"{rel}:{line}: {mine} imports {target} ({other} is above)")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The import reader itself: an import inside a function counts."""
    probe = SRC / "scenario" / "verbs.py"
    found = {m for _, m in imports(probe)}
    assert "importlib" not in found and all(m.startswith("klpsim") for m in found)
    vm = {m for _, m in imports(SRC / "real" / "vm" / "api.py")}
    assert "klpsim.real.vm.modgen" in vm  # "from .modgen import ..."
    cli = {m for _, m in imports(SRC / "cli.py")}
    assert "klpsim.session" in cli  # imported inside _cmd_run()


def test_scenario_never_imports_tools():
    offenders = [
        f"{p.relative_to(SRC)}: {line.strip()}"
        for p in sorted((SRC / "scenario").rglob("*.py"))
        for line in p.read_text().splitlines()
        if re.search(r"\bklpsim\.tools\b|from klpsim import tools|from \.\.tools", line)
    ]
    assert not offenders, offenders
