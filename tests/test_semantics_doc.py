"""docs/semantics.md is generated from the code and must not drift."""

from harness import ROOT, klpsim


def test_semantics_doc_is_up_to_date():
    r = klpsim("semantics")
    assert r.status == 0, r.err
    committed = (ROOT / "docs" / "semantics.md").read_text()
    assert r.out == committed, "run: klpsim semantics > docs/semantics.md"


def test_only_the_replaceable_variant_breaks_consistency():
    table = (ROOT / "docs" / "semantics.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| **petr counterexample**"))
    cells = row.split(" | ")[1:]
    broken = [i for i, cell in enumerate(cells) if "broken: per-task-consistency" in cell]
    header = next(line for line in table.splitlines() if line.startswith("| scenario"))
    profiles = [h.strip(" `|") for h in header.split(" | ")[1:]]
    assert [profiles[i] for i in broken] == ["replaceable"]
