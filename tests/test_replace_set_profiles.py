"""``replace-set-6.12`` (the kernel ``klpsim vm --kernel replace-set`` builds:
Debian's 6.12 with the v2 rules) and ``replace-set`` (7.1 with them) share
the replace-set rules; only base-kernel behaviour may differ. Every
tests/scenarios/replace-set script prints the same on both, and the real
kernel is compared with the 6.12 one."""

import re
from pathlib import Path

import pytest

from harness import ROOT, klpsim
from klpsim.livepatch.profiles import get_profile
from klpsim.real.vm import REPLACE_SET, model_profile

SCRIPTS = sorted((ROOT / "tests" / "scenarios" / "replace-set").glob("*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_same_transcript_on_both_replace_set_profiles(script: Path):
    a = klpsim("run", "--kernel", "replace-set", str(script))
    b = klpsim("run", "--kernel", "replace-set-6.12", str(script))
    # The one base difference these scripts show: the replace-set build has
    # no CONFIG_MODULE_SIG, so the first unsigned module taints nothing (E).
    unsigned = re.compile(r"^\[[ 0-9.]+\] \w+: module verification failed: .*\n", re.M)
    assert unsigned.search(a.out) and not unsigned.search(b.out)
    assert (a.status, unsigned.sub("", a.out), a.err) == (b.status, b.out, b.err)
    assert a.status == 0 and "livepatch" in a.out


def test_the_6_12_profile_is_6_12_base_with_the_replace_set_policy():
    rs, rs612, base = (get_profile(n) for n in ("replace-set", "replace-set-6.12", "6.12"))
    assert type(rs612.policy) is type(rs.policy)
    assert rs612.patch_attrs == rs.patch_attrs == ("enabled", "transition", "force", "replace_set")
    assert rs612.extra_patch_attrs.keys() == {"replace_set"}
    # The base is 6.12's: the differences the replace-set kernel shows next
    # to the 7.1-based profile.
    for attr in ("kstrtobool_enable_disable", "kprobe_arm_error_ignored", "sched_switch"):
        assert getattr(rs612, attr) == getattr(base, attr) != getattr(rs, attr), attr
    # data/replace-set.config: error injection on, IBT and module signatures off.
    assert "FUNCTION_ERROR_INJECTION" in rs612.config and "X86_KERNEL_IBT" not in rs612.config
    assert "MODULE_SIG" in rs.config and "MODULE_SIG" not in rs612.config
    assert model_profile(REPLACE_SET) == "replace-set-6.12" and model_profile("6.1") == "6.1"
