"""The replace-set kernel's build-time edits (rskernel.py), on text of our own.

The edits themselves meet Debian's linux-source in the real-kernel tier
(every build applies them); here the anchoring rules are pinned down: an
anchor matches whatever the white space, once, never inside a word, and a
missing or repeated anchor is one line naming the file and the anchor.
"""

import os

import pytest

from klpsim.real.vm.errors import VMError
from klpsim.real.vm.rskernel import (
    EDITS,
    AnchorError,
    BlockEdit,
    Edit,
    build_key,
    change_digest,
    check_config,
    config_digest,
)

C = """\
int f(void)
{
	if (a &&
		b)
		return 1;
	return 0;
}

/* g's comment */
static int g(int x)
{
	return x;
}
"""


def test_anchor_matches_across_white_space():
    e = Edit("x.c", "replace", "if (a && b) return 1;", "return 2;", within="int f(void)")
    assert "\treturn 2;\n\treturn 0;" in e.apply(C)


def test_missing_anchor_is_one_line_naming_it():
    e = Edit("kernel/livepatch/core.c", "replace", "bool replace;\nmore", "x")
    with pytest.raises(AnchorError) as err:
        e.apply(C)
    assert str(err.value) == (
        "replace-set kernel: kernel/livepatch/core.c: anchor not found: 'bool replace;'"
    )
    assert isinstance(err.value, VMError)  # klpsim vm prints it and exits 2


def test_repeated_anchor_is_refused():
    with pytest.raises(AnchorError, match="x.c: anchor found 3 times: 'return'"):
        Edit("x.c", "after", "return", ";").apply(C)


def test_anchor_never_starts_inside_a_word():
    text = "load_lp $M\nunload_lp $M\n"
    assert Edit("t.sh", "replace", "load_lp $M\n", "load_lp $M x=1\n").apply(text) == (
        "load_lp $M x=1\nunload_lp $M\n"
    )


def test_anchor_ending_in_newline_ends_a_line():
    text = "load_lp $M replace=1\nload_lp $M\n"
    out = Edit("t.sh", "replace", "load_lp $M\n", "load_lp $M replace_set=1\n").apply(text)
    assert out == "load_lp $M replace=1\nload_lp $M replace_set=1\n"


def test_search_is_limited_to_the_function():
    with pytest.raises(AnchorError, match="anchor not found: 'return x;'"):
        Edit("x.c", "replace", "return x;", "", within="int f(void)").apply(C)


def test_function_edit_takes_the_comment_above():
    out = Edit("x.c", "function", "static int g(", "int g2(void)\n{\n}\n").apply(C)
    assert out.endswith("}\n\nint g2(void)\n{\n}\n")
    assert "g's comment" not in out


def test_absent_anchor_must_stay_absent():
    with pytest.raises(AnchorError, match=r"x.c: 'static int g\(' is present \(why\)"):
        Edit("x.c", "absent", "static int g(", why="why").apply(C)


SH = """\
check_result "one"

# - a comment
#   of two lines

start_test "two"
load_lp $M
check_result "% insmod $M
livepatch: 'x'"

exit 0
"""


def test_block_edit_replaces_a_case_with_its_comment():
    out = BlockEdit("t.sh", "two", 'start_test "2"\ncheck_result ""\n').apply(SH)
    assert out == 'check_result "one"\n\nstart_test "2"\ncheck_result ""\n\nexit 0\n'


def test_config_option_dropped_by_kconfig_fails():
    with pytest.raises(VMError) as err:
        check_config("CONFIG_A=y\n# CONFIG_B is not set\n", "CONFIG_A=y\nCONFIG_B=y\n")
    assert str(err.value) == (
        "replace-set kernel: replace-set.config: CONFIG_B=y did not hold "
        "(olddefconfig gave n): a dependency is missing"
    )
    check_config("CONFIG_A=y\n", "CONFIG_A=y\n# CONFIG_C is not set\n")


def test_the_change_covers_the_v2_rules():
    """Every file the v2 series touches in 6.12 is edited, and the hash is stable."""
    paths = {e.path for e in EDITS}
    assert {
        "include/linux/livepatch.h",
        "kernel/livepatch/core.c",
        "kernel/livepatch/core.h",
        "kernel/livepatch/state.c",
        "kernel/livepatch/transition.c",
        "tools/testing/selftests/livepatch/test-livepatch.sh",
        "tools/testing/selftests/livepatch/test-callbacks.sh",
        "tools/testing/selftests/livepatch/test-sysfs.sh",
    } <= paths
    modules = {p.rsplit("/", 1)[1] for p in paths if "/test_modules/" in p}
    assert modules == {
        "test_klp_atomic_replace.c",
        "test_klp_callbacks_demo.c",
        "test_klp_callbacks_demo2.c",
        "test_klp_livepatch.c",
        "test_klp_state.c",
        "test_klp_state2.c",
    }
    assert len(build_key("6.12.117-1~deb12u1", "c" * 64, "d" * 64)) == 12


def _pristine(tmp_path, text="int x;\n"):
    files = tmp_path / "pristine"
    (files / "kernel").mkdir(parents=True)
    (files / "kernel/a.c").write_text(text)
    return files


def test_the_change_digest_is_the_edit_not_the_script(tmp_path, monkeypatch):
    """The key's change part hashes what the edits do to the pristine files,
    so a comment in rskernel.py keeps the cached kernel; a changed rule, or
    another source, does not."""
    import klpsim.real.vm.rskernel as rs

    monkeypatch.setattr(rs, "_LEFTOVERS", {})
    files = _pristine(tmp_path)
    monkeypatch.setattr(rs, "EDITS", [Edit("kernel/a.c", "replace", "int x;", "int y;")])
    first = change_digest(files)
    assert change_digest(files) == first
    assert (files / "kernel/a.c").read_text() == "int x;\n"  # the copies stay pristine
    monkeypatch.setattr(rs, "EDITS", [Edit("kernel/a.c", "replace", "int x;", "int z;")])
    assert change_digest(files) != first
    monkeypatch.setattr(rs, "EDITS", [Edit("kernel/a.c", "replace", "int x;", "int y;")])
    assert change_digest(_pristine(tmp_path / "other", "int x; /* new */\n")) != first


def test_the_config_digest_leaves_out_the_localversion_only():
    a = 'CONFIG_A=y\nCONFIG_LOCALVERSION="-klpsim-rs-01234567"\n# CONFIG_B is not set\n'
    b = a.replace("01234567", "89abcdef")
    assert config_digest(a) == config_digest(b)
    assert config_digest(a) != config_digest(a.replace("CONFIG_A=y", "CONFIG_A=m"))


def test_fragment_comments_do_not_count(monkeypatch):
    import klpsim.real.vm.rskernel as rs

    real = rs._data(rs._FRAGMENT)
    opts = rs.fragment_options()
    monkeypatch.setattr(rs, "_data", lambda name: b"# another comment\n" + real)
    assert rs.fragment_options() == opts and opts["CONFIG_LIVEPATCH"] == "y"


def test_a_new_build_prunes_the_older_ones(tmp_path, monkeypatch):
    """Each build is about 2.2 GB: the newest stays, with the pristine
    copies; the older builds go, with their module builds and run dirs."""
    import klpsim.real.vm.rskernel as rs
    from klpsim.real.vm.debian import KernelPackages

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pkgs = KernelPackages("6.12", "", "6.12.117-1~deb12u1", "", (), "linux-source-6.12=x", ())
    cache = rs._Cache(pkgs)
    old, new = cache.dir("0123456789ab"), cache.dir("ba9876543210")
    other_version = cache.kernels / "replace-set-6.12.110-1-aaaaaaaaaaaa"
    for d, kver in ((old, "6.12.117-klpsim-rs-01234567"), (new, "6.12.117-klpsim-rs-ba987654"),
                    (other_version, "6.12.110-klpsim-rs-aaaaaaaa")):  # fmt: skip
        (d / "obj/include/config").mkdir(parents=True)
        (d / "obj/include/config/kernel.release").write_text(kver + "\n")
        for sub in ("build", "run"):
            (tmp_path / "klpsim" / sub / kver).mkdir(parents=True)
    cache.dir("pristine").mkdir()
    in_use = cache.kernels / "replace-set-6.12.117-1~deb12u1-cccccccccccc"
    (in_use / "obj/include/config").mkdir(parents=True)
    (in_use / "obj/include/config/kernel.release").write_text("6.12.117-klpsim-rs-cccccccc\n")
    (tmp_path / "klpsim/run/6.12.117-klpsim-rs-cccccccc" / str(os.getpid())).mkdir(parents=True)
    assert sorted(p.name for p in cache.prune(keep=new)) == [other_version.name, old.name]
    assert in_use.exists()  # a live process runs it
    assert new.exists() and cache.dir("pristine").exists() and not old.exists()
    assert sorted(p.name for p in (tmp_path / "klpsim/build").iterdir()) == [
        "6.12.117-klpsim-rs-ba987654"
    ]
