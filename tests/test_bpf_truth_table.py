"""The lpc26-livepatch truth table (lpc26-truth.md, 2.2) reproduced on the
model: peer x attach order -> label, second registration, outcome and
enabled_functions, all 28 cells; and docs/truth-table.md is current."""

import pytest

from harness import ROOT
from klpsim.tools.truthtable import MEASURED, ORDERS, PEERS, render, run_cell

CELLS = [(p, o) for p in PEERS for o in ORDERS]


@pytest.mark.parametrize(("peer", "order"), CELLS, ids=[f"{p}-{o}" for p, o in CELLS])
def test_cell_matches_measurement(peer, order):
    cell = run_cell(peer, order)
    label, second, outcome, site = MEASURED[(peer, order)]
    assert (cell.label, cell.second, cell.outcome, cell.site) == (label, second, outcome, site)


def test_observers_attribute_to_the_original():
    for peer in "CDFGHIJKLMN":
        for order in ORDERS:
            assert run_cell(peer, order).attribution.startswith("cmdline_proc_show"), peer


def test_return_hooks_see_new_funcs_value():
    for peer in "FHI":
        assert run_cell(peer, "consumer-first").attribution.endswith("ret=7")


@pytest.mark.parametrize("peer", ["B", "E"])
def test_as_released_the_livepatch_first_refusal_is_silent(peer):
    """587e8e6d640b: 0 returned, nothing armed, the livepatch runs."""
    cell = run_cell(peer, "livepatch-first", fixed=False)
    assert (cell.second, cell.outcome, cell.site) == ("0", "klp1", "1:IM")


def test_docs_table_is_current():
    assert (ROOT / "docs" / "truth-table.md").read_text() == render()
