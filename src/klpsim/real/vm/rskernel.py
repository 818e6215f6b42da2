"""The replace-set kernel: Debian's linux-source-6.12 with the replace_set v2 rules.

replace-set-thread.md section 3.7 ("[PATCH v2 0/4] livepatch: Introduce
replace set support", 2026-05-29) gives the rules; the change that carries
them is written here, by klpsim, and applied at build time to the source
Debian ships.  Every edit anchors on a name or a line of the kernel source
and inserts or replaces code of our own; a missing anchor stops the build
with one line naming it.  Nothing of the kernel is kept in klpsim beyond
those anchors.

* v2 1/4: ``klp_find_func()`` loses ``static`` (declared in core.h, where
  the review asked for it), for the cross-set check in state.c.
* v2 2/4: ``unsigned int replace_set`` replaces ``bool replace`` in
  ``struct klp_patch``; sysfs ``replace_set`` (RO, ``"%u\\n"``) replaces
  ``replace``; ``klp_add_nops()`` is always called and adds nops for the
  same set only; ``klp_unpatch_replaced_patches()`` and
  ``klp_free_replaced_patches_async()`` skip other sets;
  ``klp_is_state_compatible()``/``klp_is_patch_compatible()`` refuse a
  missing or older state of the same set, a state id of another set, and
  a function another set patches; transition.c's complete/try_complete
  always replace; ``klp_force_transition()`` pins only the other patches
  of the same set.
* v2 3/4: no ``stack_order`` (6.12 never had it: the script checks).
* v2 4/4: ``test_klp_atomic_replace``, ``test_klp_callbacks_demo``,
  ``test_klp_callbacks_demo2`` and ``test_klp_livepatch`` take an int
  ``replace_set`` parameter (0644, default 0) copied into
  ``patch.replace_set``; ``test_klp_state``/``test_klp_state2`` use
  ``.replace_set = 0``; the selftests use sets 0 and 1 for "multiple
  livepatches", set 0 twice for "atomic replace", sysfs ``replace_set``
  0 and 1234, and lose the three-then-replace-all case.

The kernel is ``make tinyconfig`` plus data/replace-set.config
(real-artifacts.md part 4), built with ``O=``.  The result is cached::

    $XDG_CACHE_HOME/klpsim/kernels/replace-set-<debian version>-<key>/
        src/   linux-source-6.12, edited        obj/   the O= build tree

keyed by what it is built from (:func:`build_key`): the Debian version, the
change itself (the files the edits write, from pristine copies kept in
``replace-set-<version>-pristine/``) and the final .config (cached there per
set of fragment options). A comment here or in the fragment builds
nothing; a changed rule or option builds a new kernel and removes the older
builds (about 2.2 GB each).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import REPLACE_SET
from .debian import KernelPackages, KernelTree, cache_lock, cache_root, resolve_packages
from .errors import VMError

__all__ = [
    "KERNEL",
    "EDITS",
    "apply_edits",
    "build_key",
    "change_digest",
    "config_digest",
    "source_files",
    "prepare_replace_set_kernel",
]

#: The name of this kernel in ``klpsim vm|diff|fuzz --kernel``.
KERNEL = REPLACE_SET
#: The Debian series whose linux-source the kernel is built from.
BASE_SERIES = "6.12"
_FRAGMENT = "replace-set.config"
_ARCH = "x86_64"


class AnchorError(VMError):
    """An anchor of the change is missing from (or ambiguous in) the source."""


# ------------------------------------------------------------- text editing


def _pattern(anchor: str) -> re.Pattern:
    """``anchor`` as a regex in which any run of white space matches any other.

    It does not start inside a word, and an anchor that ends in a newline
    must end a line.
    """
    tokens = anchor.split()
    head = r"(?<![\w$])" if re.match(r"[\w$]", tokens[0]) else ""
    tail = r"[ \t]*\n" if anchor.rstrip(" \t").endswith("\n") else ""
    return re.compile(head + r"\s+".join(re.escape(t) for t in tokens) + tail)


def _find(text: str, anchor: str, path: str, lo: int = 0, hi: int | None = None) -> re.Match:
    hi = len(text) if hi is None else hi
    found = list(_pattern(anchor).finditer(text, lo, hi))
    first = anchor.strip().splitlines()[0]
    if not found:
        raise AnchorError(f"replace-set kernel: {path}: anchor not found: {first!r}")
    if len(found) > 1:
        raise AnchorError(f"replace-set kernel: {path}: anchor found {len(found)} times: {first!r}")
    return found[0]


def _function(text: str, signature: str, path: str) -> tuple[int, int]:
    """(start, end) of the C function (or struct) that ``signature`` opens.

    The start takes in a block comment right above it; the end is the first
    ``}`` in column 0 after it.
    """
    m = _find(text, signature, path)
    start = text.rfind("\n", 0, m.start()) + 1
    before = text[:start]
    if before.endswith("*/\n"):
        start = before.rfind("/*")
        start = text.rfind("\n", 0, start) + 1
    end = text.find("\n}", m.end())
    if end < 0:
        raise AnchorError(f"replace-set kernel: {path}: no end of {signature.strip()!r}")
    end = text.find("\n", end + 2)
    return start, end + 1


@dataclass(frozen=True)
class Edit:
    """One change to one file of linux-source.

    ``kind``: ``replace`` (the anchor by ``text``), ``after`` / ``before``
    (insert ``text`` next to the anchor), ``function`` (the whole function
    the anchor opens, with its comment, by ``text``), ``absent`` (the
    anchor must not occur).  ``within`` limits the search to the function
    that signature opens.
    """

    path: str
    kind: str
    anchor: str
    text: str = ""
    within: str | None = None
    why: str = ""

    def apply(self, text: str) -> str:
        if self.kind == "absent":
            if _pattern(self.anchor).search(text):
                raise AnchorError(
                    f"replace-set kernel: {self.path}: {self.anchor.strip()!r} is present "
                    f"({self.why})"
                )
            return text
        if self.kind == "function":
            start, end = _function(text, self.anchor, self.path)
            return text[:start] + self.text + text[end:]
        lo, hi = _function(text, self.within, self.path) if self.within else (0, len(text))
        m = _find(text, self.anchor, self.path, lo, hi)
        if self.kind == "replace":
            return text[: m.start()] + self.text + text[m.end() :]
        if self.kind == "after":
            return text[: m.end()] + self.text + text[m.end() :]
        if self.kind == "before":
            return text[: m.start()] + self.text + text[m.start() :]
        raise ValueError(self.kind)


@dataclass(frozen=True)
class BlockEdit:
    """Replace one test case of a selftest script by ``text``: the comment
    block right above ``start_test "NAME"`` through the end of the case's
    ``check_result "..."`` string."""

    path: str
    name: str
    text: str

    def apply(self, text: str) -> str:
        m = _find(text, f'start_test "{self.name}"', self.path)
        start = text.rfind("\n", 0, m.start()) + 1
        lines = text[:start].split("\n")[:-1]
        j = len(lines)
        while j and not lines[j - 1].strip():
            j -= 1
        if j and lines[j - 1].startswith("#"):
            while j and lines[j - 1].startswith("#"):
                j -= 1
            start = sum(len(line) + 1 for line in lines[:j])
        check = text.find('check_result "', m.end())
        close = text.find('"', check + len('check_result "')) if check >= 0 else -1
        if close < 0:
            raise AnchorError(
                f"replace-set kernel: {self.path}: no check_result after {self.name!r}"
            )
        end = text.find("\n", close) + 1
        return text[:start] + self.text + text[end:]


# ------------------------------------------------------------- the change

_LP = "kernel/livepatch"
_ST = "tools/testing/selftests/livepatch"
_TM = f"{_ST}/test_modules"

_SAME_SET_SKIP = """
		/* replace_set: a patch replaces only its own set */
		if (old_patch->replace_set != {new}->replace_set)
			continue;"""

_REPLACE_SET_SHOW = """\
static ssize_t replace_set_show(struct kobject *kobj,
				struct kobj_attribute *attr, char *buf)
{
	struct klp_patch *patch = container_of(kobj, struct klp_patch, kobj);

	/* v2 2/4: the set is an unsigned int, shown as such */
	return sysfs_emit(buf, "%u\\n", patch->replace_set);
}
"""

_STATE_COMPATIBLE = """\
/*
 * replace_set (v2 2/4): within a set, a patch must keep every state of the
 * patch it replaces, at the same or a higher version; a patch of another
 * set must not use the state id at all.
 */
static bool klp_is_state_compatible(struct klp_patch *patch,
		struct klp_patch *old_patch, struct klp_state *old_state)
{
	struct klp_state *state = klp_get_state(patch, old_state->id);

	if (patch->replace_set != old_patch->replace_set)
		return !state;

	return state && state->version >= old_state->version;
}
"""

_PATCH_COMPATIBLE = """\
/*
 * Does @patch change a function that @old_patch changes?  @patch is not
 * initialised yet, so its static arrays are walked; @old_patch's lists
 * include the nops it still holds.  Objects match by name, vmlinux only
 * vmlinux; functions as klp_find_func() matches them (sympos 0 == 1).
 */
static bool klp_patch_shares_func(struct klp_patch *patch,
		struct klp_patch *old_patch)
{
	struct klp_object *obj, *old_obj;
	struct klp_func *func;

	klp_for_each_object_static(patch, obj) {
		klp_for_each_object(old_patch, old_obj) {
			if (!obj->name != !old_obj->name)
				continue;
			if (obj->name && strcmp(obj->name, old_obj->name))
				continue;
			klp_for_each_func_static(obj, func) {
				/* klp_init_func() refuses it later */
				if (!func->old_name)
					continue;
				if (klp_find_func(old_obj, func))
					return true;
			}
		}
	}

	return false;
}

/*
 * replace_set (v2 2/4): a new patch must be compatible with every installed
 * one: the state rules above, and no function shared with another set.
 */
bool klp_is_patch_compatible(struct klp_patch *patch)
{
	struct klp_patch *old_patch;
	struct klp_state *old_state;

	klp_for_each_patch(old_patch) {
		klp_for_each_state(old_patch, old_state) {
			if (!klp_is_state_compatible(patch, old_patch, old_state))
				return false;
		}

		if (old_patch->replace_set != patch->replace_set &&
			klp_patch_shares_func(patch, old_patch))
			return false;
	}

	return true;
}
"""

_FORCE_SAME_SET = """else {
		/* replace_set: pin the replaced patches of the same set only */
		klp_for_each_patch(patch) {
			if (patch != klp_transition_patch &&
				patch->replace_set == klp_transition_patch->replace_set)
				patch->forced = true;
		}
	}"""

_PARAM = """

/* replace_set (v2 4/4): copied into patch.replace_set before enabling */
static int replace_set;
module_param(replace_set, int, 0644);
MODULE_PARM_DESC(replace_set, "replace_set (default=0)");"""

_NO_STACK_ORDER = "v2 3/4 removes stack_order; this script expects a source without it (6.12)"


def _param_swap(path: str) -> list[Edit]:
    """A module whose int ``replace`` parameter becomes ``replace_set``."""
    return [
        Edit(path, "replace", "static int replace;", "static int replace_set;"),
        Edit(
            path,
            "replace",
            "module_param(replace, int, 0644);",
            "module_param(replace_set, int, 0644);",
        ),
        Edit(
            path,
            "replace",
            'MODULE_PARM_DESC(replace, "replace (default=0)");',
            'MODULE_PARM_DESC(replace_set, "replace_set (default=0)");',
        ),
        Edit(path, "replace", "patch.replace = replace;", "patch.replace_set = replace_set;"),
        Edit(path, "replace", "set .replace in", "set .replace_set in"),
    ]


def _param_add(path: str, init: str) -> list[Edit]:
    """A module that gains ``replace_set``, copied in by its init function."""
    return [
        Edit(path, "after", "#include <linux/livepatch.h>", _PARAM),
        Edit(
            path,
            "before",
            "return klp_enable_patch(&patch);",
            "patch.replace_set = replace_set;\n\t",
            within=f"static int {init}(void)",
        ),
    ]


def _load_line(mod_var: str, old: str, new: str) -> Callable[[str], list[Edit]]:
    """``load_lp $MOD ARGS`` and its ``% insmod`` line, with new ARGS."""
    return lambda path: [
        Edit(path, "replace", f"load_lp {mod_var}{old}\n", f"load_lp {mod_var}{new}\n"),
        Edit(
            path,
            "replace",
            f"% insmod test_modules/{mod_var}.ko{old}\n",
            f"% insmod test_modules/{mod_var}.ko{new}\n",
        ),
    ]


_LIVEPATCH_ATOMIC_REPLACE = r"""# replace_set (klpsim, after v2 4/4): two livepatches of set 0.  The second
# one replaces the first: the first one's change is gone at once, without
# an unpatching transition of its own.

start_test "atomic replace"

load_lp $MOD_LIVEPATCH1

grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg

load_lp $MOD_REPLACE replace_set=0

grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg

loop_until "[[ ! -e /sys/kernel/livepatch/$MOD_LIVEPATCH1 ]]" ||
	die "$MOD_LIVEPATCH1 was not replaced"
unload_lp $MOD_LIVEPATCH1

grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg

disable_lp $MOD_REPLACE
unload_lp $MOD_REPLACE

grep 'live patched' /proc/cmdline > /dev/kmsg
grep 'live patched' /proc/meminfo > /dev/kmsg

check_result "% insmod test_modules/$MOD_LIVEPATCH1.ko
livepatch: enabling patch '$MOD_LIVEPATCH1'
livepatch: '$MOD_LIVEPATCH1': initializing patching transition
livepatch: '$MOD_LIVEPATCH1': starting patching transition
livepatch: '$MOD_LIVEPATCH1': completing patching transition
livepatch: '$MOD_LIVEPATCH1': patching complete
$MOD_LIVEPATCH1: this has been live patched
% insmod test_modules/$MOD_REPLACE.ko replace_set=0
livepatch: enabling patch '$MOD_REPLACE'
livepatch: '$MOD_REPLACE': initializing patching transition
livepatch: '$MOD_REPLACE': starting patching transition
livepatch: '$MOD_REPLACE': completing patching transition
livepatch: '$MOD_REPLACE': patching complete
$MOD_REPLACE: this has been live patched
% rmmod $MOD_LIVEPATCH1
$MOD_REPLACE: this has been live patched
% echo 0 > /sys/kernel/livepatch/$MOD_REPLACE/enabled
livepatch: '$MOD_REPLACE': initializing unpatching transition
livepatch: '$MOD_REPLACE': starting unpatching transition
livepatch: '$MOD_REPLACE': completing unpatching transition
livepatch: '$MOD_REPLACE': unpatching complete
% rmmod $MOD_REPLACE"
"""


def _sysfs_replace_set(value: str) -> str:
    return rf"""start_test "sysfs test replace_set {value}"

MOD_LIVEPATCH=test_klp_atomic_replace
load_lp $MOD_LIVEPATCH replace_set={value}

check_sysfs_rights "$MOD_LIVEPATCH" "replace_set" "-r--r--r--"
check_sysfs_value  "$MOD_LIVEPATCH" "replace_set" "{value}"
# v2 2/4 renames replace; v2 3/4 removes stack_order
for attr in replace stack_order; do
	[[ ! -e "$KLP_SYSFS_DIR/$MOD_LIVEPATCH/$attr" ]] ||
		die "$MOD_LIVEPATCH has a $attr attribute"
done

disable_lp $MOD_LIVEPATCH
unload_lp $MOD_LIVEPATCH

check_result "% insmod test_modules/$MOD_LIVEPATCH.ko replace_set={value}
livepatch: enabling patch '$MOD_LIVEPATCH'
livepatch: '$MOD_LIVEPATCH': initializing patching transition
livepatch: '$MOD_LIVEPATCH': starting patching transition
livepatch: '$MOD_LIVEPATCH': completing patching transition
livepatch: '$MOD_LIVEPATCH': patching complete
% echo 0 > /sys/kernel/livepatch/$MOD_LIVEPATCH/enabled
livepatch: '$MOD_LIVEPATCH': initializing unpatching transition
livepatch: '$MOD_LIVEPATCH': starting unpatching transition
livepatch: '$MOD_LIVEPATCH': completing unpatching transition
livepatch: '$MOD_LIVEPATCH': unpatching complete
% rmmod $MOD_LIVEPATCH"
"""


EDITS: list = [
    # ---- v2 2/4: struct klp_patch
    Edit(
        "include/linux/livepatch.h",
        "replace",
        "@replace: replace all actively used patches",
        "@replace_set:\tpatches of one replace set atomically replace each other",
    ),
    Edit(
        "include/linux/livepatch.h",
        "replace",
        "bool replace;",
        "unsigned int replace_set;",
        within="struct klp_patch {",
    ),
    # ---- v2 1/4: klp_find_func() for state.c
    Edit(
        f"{_LP}/core.c",
        "replace",
        "static struct klp_func *klp_find_func(",
        "struct klp_func *klp_find_func(",
    ),
    Edit(
        f"{_LP}/core.h",
        "after",
        "void klp_unpatch_replaced_patches(struct klp_patch *new_patch);",
        "\nstruct klp_func *klp_find_func(struct klp_object *obj, struct klp_func *old_func);",
    ),
    # ---- v2 2/4: sysfs replace -> replace_set
    Edit(
        f"{_LP}/core.c",
        "replace",
        "* /sys/kernel/livepatch/<patch>/replace\n",
        "* /sys/kernel/livepatch/<patch>/replace_set\n",
    ),
    Edit(f"{_LP}/core.c", "function", "static ssize_t replace_show(", _REPLACE_SET_SHOW),
    Edit(
        f"{_LP}/core.c",
        "replace",
        "static struct kobj_attribute replace_kobj_attr = __ATTR_RO(replace);",
        "static struct kobj_attribute replace_set_kobj_attr = __ATTR_RO(replace_set);",
    ),
    Edit(f"{_LP}/core.c", "replace", "&replace_kobj_attr.attr,", "&replace_set_kobj_attr.attr,"),
    # ---- v2 3/4
    Edit(f"{_LP}/core.c", "absent", "stack_order", why=_NO_STACK_ORDER),
    # ---- v2 2/4: nops, unpatch and free for the same set only
    Edit(
        f"{_LP}/core.c",
        "after",
        "klp_for_each_patch(old_patch) {",
        _SAME_SET_SKIP.format(new="patch"),
        within="static int klp_add_nops(struct klp_patch *patch)",
    ),
    Edit(
        f"{_LP}/core.c",
        "after",
        "if (old_patch == new_patch) return;",
        _SAME_SET_SKIP.format(new="new_patch"),
        within="void klp_free_replaced_patches_async(struct klp_patch *new_patch)",
    ),
    Edit(
        f"{_LP}/core.c",
        "after",
        "if (old_patch == new_patch) return;",
        _SAME_SET_SKIP.format(new="new_patch"),
        within="void klp_unpatch_replaced_patches(struct klp_patch *new_patch)",
    ),
    Edit(
        f"{_LP}/core.c",
        "replace",
        "if (patch->replace) { ret = klp_add_nops(patch); if (ret) return ret; }",
        "/* replace_set: every patch replaces the older patches of its set */\n"
        "\tret = klp_add_nops(patch);\n\tif (ret)\n\t\treturn ret;",
        within="static int klp_init_patch(struct klp_patch *patch)",
    ),
    # ---- v2 2/4: transition.c
    Edit(
        f"{_LP}/transition.c",
        "replace",
        "if (klp_transition_patch->replace && klp_target_state == KLP_TRANSITION_PATCHED) {",
        "if (klp_target_state == KLP_TRANSITION_PATCHED) {",
        within="static void klp_complete_transition(void)",
    ),
    Edit(
        f"{_LP}/transition.c",
        "replace",
        "else if (patch->replace) klp_free_replaced_patches_async(patch);",
        "else\n\t\tklp_free_replaced_patches_async(patch);",
        within="void klp_try_complete_transition(void)",
    ),
    Edit(
        f"{_LP}/transition.c",
        "replace",
        "else if (klp_transition_patch->replace) { klp_for_each_patch(patch) {"
        " if (patch != klp_transition_patch) patch->forced = true; } }",
        _FORCE_SAME_SET,
        within="void klp_force_transition(void)",
    ),
    # ---- v2 2/4: state.c
    Edit(f"{_LP}/state.c", "function", "static bool klp_is_state_compatible(", _STATE_COMPATIBLE),
    Edit(f"{_LP}/state.c", "function", "bool klp_is_patch_compatible(", _PATCH_COMPATIBLE),
    # ---- v2 4/4: the test modules
    *_param_swap(f"{_TM}/test_klp_atomic_replace.c"),
    *_param_swap(f"{_TM}/test_klp_callbacks_demo2.c"),
    *_param_add(f"{_TM}/test_klp_livepatch.c", "test_klp_livepatch_init"),
    *_param_add(f"{_TM}/test_klp_callbacks_demo.c", "test_klp_callbacks_demo_init"),
    Edit(f"{_TM}/test_klp_state.c", "replace", ".replace = true,", ".replace_set = 0,"),
    Edit(f"{_TM}/test_klp_state2.c", "replace", ".replace = true,", ".replace_set = 0,"),
    # ---- v2 4/4: the selftests
    *_load_line("$MOD_REPLACE", " replace=0", " replace_set=1")(f"{_ST}/test-livepatch.sh"),
    BlockEdit(f"{_ST}/test-livepatch.sh", "atomic replace livepatch", _LIVEPATCH_ATOMIC_REPLACE),
    *_load_line("$MOD_LIVEPATCH2", "", " replace_set=1")(f"{_ST}/test-callbacks.sh"),
    *_load_line("$MOD_LIVEPATCH2", " replace=1", " replace_set=0")(f"{_ST}/test-callbacks.sh"),
    BlockEdit(f"{_ST}/test-sysfs.sh", "sysfs test replace disabled", _sysfs_replace_set("1234")),
    BlockEdit(f"{_ST}/test-sysfs.sh", "sysfs test replace enabled", _sysfs_replace_set("0")),
    Edit(
        f"{_ST}/test-sysfs.sh",
        "replace",
        'check_sysfs_rights "$MOD_LIVEPATCH" "replace" "-r--r--r--"',
        'check_sysfs_rights "$MOD_LIVEPATCH" "replace_set" "-r--r--r--"',
    ),
]

# After the edits nothing may still use the bool: it would not compile, or
# (in a script) would test mainline's attribute.
_LEFTOVERS = {
    "include/linux/livepatch.h": r"\bbool replace;",
    f"{_LP}/core.c": r"(->|\.)replace\b|\breplace_kobj_attr\b",
    f"{_LP}/state.c": r"(->|\.)replace\b",
    f"{_LP}/transition.c": r"(->|\.)replace\b",
}


def apply_edits(src: Path) -> list[str]:
    """Apply :data:`EDITS` to the linux-source tree ``src``; the files changed."""
    texts: dict[str, str] = {}
    for edit in EDITS:
        if edit.path not in texts:
            try:
                texts[edit.path] = (src / edit.path).read_text()
            except OSError as e:
                raise AnchorError(
                    f"replace-set kernel: {edit.path}: cannot read: {e.strerror}"
                ) from None
        texts[edit.path] = edit.apply(texts[edit.path])
    for path, pattern in _LEFTOVERS.items():
        m = re.search(pattern, texts[path])
        if m:
            line = texts[path].count("\n", 0, m.start()) + 1
            raise AnchorError(f"replace-set kernel: {path}:{line}: still uses {m.group(0)!r}")
    for c in sorted((src / _TM).glob("*.c")):
        text = texts.get(f"{_TM}/{c.name}") or c.read_text()
        m = re.search(r"(->|\.)replace\s*=", text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            raise AnchorError(f"replace-set kernel: {_TM}/{c.name}:{line}: still sets .replace")
    for sh in sorted((src / _ST).glob("test-*.sh")):
        text = texts.get(f"{_ST}/{sh.name}") or sh.read_text()
        m = re.search(r"\breplace=|\"replace\"", text)
        if m:
            line = text.count("\n", 0, m.start()) + 1
            raise AnchorError(f"replace-set kernel: {_ST}/{sh.name}:{line}: still uses replace")
    for path, text in texts.items():
        (src / path).write_text(text)
    return sorted(texts)


# ------------------------------------------------------------- the build


def _data(name: str) -> bytes:
    return resources.files("klpsim.real.vm").joinpath("data", name).read_bytes()


def source_files(src: Path) -> list[str]:
    """The files of linux-source :func:`apply_edits` reads: the ones the
    edits change, and every test module and selftest script it checks."""
    paths = {e.path for e in EDITS}
    paths |= {f"{_TM}/{c.name}" for c in (src / _TM).glob("*.c")}
    paths |= {f"{_ST}/{sh.name}" for sh in (src / _ST).glob("test-*.sh")}
    return sorted(paths)


def change_digest(pristine: Path) -> str:
    """Hash of the change itself: each file :func:`apply_edits` writes,
    before and after, applied to the pristine copies in *pristine* (what a
    diff of the two trees says). A comment or a typing fix in this script
    changes nothing here; a changed rule does."""
    h = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="klpsim-rs-") as tmp:
        edited = Path(tmp)
        shutil.copytree(pristine, edited, dirs_exist_ok=True)
        for path in apply_edits(edited):
            h.update(path.encode() + b"\0")
            h.update((pristine / path).read_bytes() + b"\0")
            h.update((edited / path).read_bytes() + b"\0")
    return h.hexdigest()


def fragment_options() -> dict[str, str]:
    """The options data/replace-set.config sets (its comments do not count)."""
    return _config_lines(_data(_FRAGMENT).decode())


def config_digest(config: str) -> str:
    """Hash of a final ``.config`` but its CONFIG_LOCALVERSION line (which
    carries the key this digest is part of)."""
    lines = [ln for ln in config.splitlines() if not ln.startswith("CONFIG_LOCALVERSION=")]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def build_key(version: str, change: str, config: str) -> str:
    """The cache key of a build: the Debian source version, the change
    (:func:`change_digest`) and the final .config (:func:`config_digest`)."""
    return hashlib.sha256(f"{version}\0{change}\0{config}".encode()).hexdigest()[:12]


def _fragment(localversion: str) -> str:
    return _data(_FRAGMENT).decode() + f'CONFIG_LOCALVERSION="{localversion}"\n'


def _config_lines(text: str) -> dict[str, str]:
    """``CONFIG_X`` -> value (``n`` for "is not set") of a .config or fragment."""
    out = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(CONFIG_\w+)=(.*)", line) or re.fullmatch(
            r"# (CONFIG_\w+) is not set", line
        )
        if m:
            out[m.group(1)] = m.group(2) if m.lastindex == 2 else "n"
    return out


def check_config(config: str, fragment: str) -> None:
    """Every option of the fragment holds in the final ``.config``."""
    final = _config_lines(config)
    for key, want in _config_lines(fragment).items():
        got = final.get(key, "n")
        if got != want:
            raise VMError(
                f"replace-set kernel: {_FRAGMENT}: {key}={want} did not hold "
                f"(olddefconfig gave {got}): a dependency is missing"
            )


def _make_env() -> dict[str, str]:
    env = dict(os.environ)
    # A reproducible /proc/version; nothing of the host in the image.
    env.update(
        KBUILD_BUILD_USER="klpsim",
        KBUILD_BUILD_HOST="klpsim",
        KBUILD_BUILD_TIMESTAMP="2026-05-29",
        LC_ALL="C",
    )
    return env


def _sh(cmd: list[str], what: str, log: Path, cwd: Path | None = None) -> None:
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        try:
            p = subprocess.run(
                cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=_make_env(), check=False
            )
        except FileNotFoundError:
            raise VMError(f"replace-set kernel: {what}: command not found: {cmd[0]}") from None
    if p.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()
        errs = [ln for ln in lines if re.search(r"\berror\b|Error \d", ln)]
        last = (errs or lines or ["?"])[0 if errs else -1].strip()
        raise VMError(f"replace-set kernel: {what} failed ({log}): {last}")


def _download_source(pkgs: KernelPackages, dest: Path) -> Path:
    """``apt-get download linux-source-6.12=<version>`` into ``dest``."""
    if os.geteuid() != 0:
        raise VMError("downloading linux-source needs root (apt-get download)")
    dest.mkdir(parents=True, exist_ok=True)
    name = pkgs.source.split("=")[0]
    p = subprocess.run(
        ["apt-get", *pkgs.apt_opts, "download", "-qq", "-o=APT::Sandbox::User=root", pkgs.source],
        cwd=dest,
        capture_output=True,
        text=True,
        check=False,
    )
    found = sorted(dest.glob(f"{name}_*.deb"))
    if p.returncode != 0 or not found:
        last = (p.stderr.strip().splitlines() or ["no .deb"])[-1]
        raise VMError(f"apt-get download {pkgs.source} failed: {last}")
    return found[-1]


def _unpack_source(deb: Path, series: str, dest: Path) -> None:
    """The whole ``linux-source-<series>.tar.xz`` of the .deb into ``dest``."""
    dest.mkdir(parents=True)
    inner = f"./usr/src/linux-source-{series}.tar.xz"
    dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    outer = subprocess.Popen(
        ["tar", "-xO", inner], stdin=dpkg.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert dpkg.stdout is not None and outer.stdout is not None  # stdout=PIPE
    dpkg.stdout.close()
    tar = subprocess.run(
        ["tar", "-xJ", "-C", str(dest), "--strip-components=1"],
        stdin=outer.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    outer.stdout.close()
    if dpkg.wait() or outer.wait() or tar.returncode:
        raise VMError(f"unpacking {deb.name} failed: {tar.stderr.strip() or 'tar error'}")
    if not (dest / "Makefile").exists():
        raise VMError(f"{deb.name} holds no kernel tree")


@dataclass
class BuildTimes:
    """Wall seconds of each phase of a cold build (for the report)."""

    phases: dict[str, float]

    def __str__(self) -> str:
        total = sum(self.phases.values())
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in self.phases.items())
        return f"{total:.0f} s ({parts})"


def _configure(src: Path, obj: Path, fragment: str, log_path: Path) -> str:
    """``make tinyconfig``, the fragment merged over it, ``olddefconfig``,
    in the ``O=`` tree *obj*: the final .config (checked against the fragment)."""
    obj.mkdir(parents=True, exist_ok=True)
    frag = obj / _FRAGMENT
    frag.write_text(fragment)
    make = ["make", "-s", "-C", str(src), f"O={obj}", f"ARCH={_ARCH}"]
    _sh([*make, "tinyconfig"], "make tinyconfig", log_path)
    merge = str(src / "scripts/kconfig/merge_config.sh")
    _sh(
        ["bash", merge, "-m", "-O", str(obj), str(obj / ".config"), str(frag)],
        "merge_config.sh",
        log_path,
        cwd=src,
    )
    _sh([*make, "olddefconfig"], "make olddefconfig", log_path)
    config = (obj / ".config").read_text()
    check_config(config, fragment)
    return config


def _fetch_source(pkgs: KernelPackages, dest: Path, log=print) -> None:
    """Debian's linux-source, unpacked (pristine) into *dest*."""
    shutil.rmtree(dest, ignore_errors=True)
    debs = dest.parent / f"{dest.name}.debs"
    log(f"{KERNEL}: downloading {pkgs.source}")
    deb = _download_source(pkgs, debs)
    log(f"{KERNEL}: unpacking {deb.name}")
    _unpack_source(deb, BASE_SERIES, dest)
    shutil.rmtree(debs, ignore_errors=True)


@dataclass
class _Cache:
    """The replace-set part of ``$XDG_CACHE_HOME/klpsim/kernels`` for one
    Debian version: ``replace-set-<version>-<key>/`` builds,
    ``replace-set-<version>-pristine/`` (the pristine copies of
    :func:`source_files`, and the final .config of each set of fragment
    options), ``replace-set-<version>-staging/`` (a pristine source tree
    between the key and the build)."""

    pkgs: KernelPackages

    @property
    def kernels(self) -> Path:
        return cache_root() / "kernels"

    def dir(self, what: str) -> Path:
        return self.kernels / f"{KERNEL}-{self.pkgs.version}-{what}"

    def builds(self) -> list[Path]:
        """Every replace-set build directory, of any version, newest first."""
        found = [
            d
            for d in self.kernels.glob(f"{KERNEL}-*")
            if re.search(r"-[0-9a-f]{12}$", d.name) and d.is_dir()
        ]
        return sorted(found, key=lambda d: d.stat().st_mtime, reverse=True)

    def source_tree(self, log) -> Path:
        """A pristine source tree, downloaded into staging if none is there."""
        staging = self.dir("staging") / "src"
        if not (staging / ".complete").exists():
            _fetch_source(self.pkgs, staging, log)
            (staging / ".complete").write_text(self.pkgs.source + "\n")
        return staging

    def kconfig_tree(self, log) -> Path:
        """A tree to run Kconfig in: staging, or the source of a build of
        this version (the change edits no Kconfig file), or a download."""
        staging = self.dir("staging") / "src"
        if (staging / ".complete").exists():
            return staging
        for d in self.builds():
            if d.name.startswith(f"{KERNEL}-{self.pkgs.version}-") and (d / ".complete").exists():
                return d / "src"
        return self.source_tree(log)

    def key(self, log) -> tuple[str, str]:
        """(build key, final .config but CONFIG_LOCALVERSION), from the
        pristine copies and the cached config of these fragment options;
        whatever is missing is made from a source tree first."""
        pristine = self.dir("pristine")
        files = pristine / "files"
        if not (pristine / ".complete").exists():
            src = self.source_tree(log)
            shutil.rmtree(pristine, ignore_errors=True)
            for path in source_files(src):
                (files / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / path, files / path)
            (pristine / ".complete").write_text(self.pkgs.source + "\n")
        options = "".join(f"{k}={v}\n" for k, v in sorted(fragment_options().items()))
        cached = pristine / "configs" / f"{hashlib.sha256(options.encode()).hexdigest()[:16]}"
        if not cached.exists():
            with tempfile.TemporaryDirectory(prefix="klpsim-rs-config-") as tmp:
                log(f"{KERNEL}: configuring (tinyconfig + {_FRAGMENT})")
                config = _configure(
                    self.kconfig_tree(log), Path(tmp) / "obj", _fragment(""), Path(tmp) / "log"
                )
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmpfile = cached.with_suffix(".tmp")
            tmpfile.write_text(config)
            tmpfile.replace(cached)
        config = cached.read_text()
        return build_key(self.pkgs.version, change_digest(files), config_digest(config)), config

    def prune(self, keep: Path) -> list[Path]:
        """Remove every other replace-set build (about 2.2 GB each), and the
        module builds and run directories of their kernels; a build that a
        live process still uses (api.RealKernel's run/<kver>/<pid>) stays."""
        gone = []
        for d in self.builds():
            if d == keep:
                continue
            release = d / "obj/include/config/kernel.release"
            kver = release.read_text().strip() if release.exists() else None
            runs = cache_root() / "run" / kver if kver else None
            if (
                runs is not None
                and runs.is_dir()
                and any(
                    p.name.isdigit() and Path(f"/proc/{p.name}").exists() for p in runs.iterdir()
                )
            ):
                continue
            shutil.rmtree(d, ignore_errors=True)
            if kver:
                for sub in ("build", "run"):
                    shutil.rmtree(cache_root() / sub / kver, ignore_errors=True)
            gone.append(d)
        shutil.rmtree(self.dir("staging"), ignore_errors=True)
        return gone


def build(cache: _Cache, root: Path, key: str, config: str, log=print) -> BuildTimes:
    """Edit, configure and build into ``root`` (cold), from the staging
    source (downloaded if missing), and check the final .config is the one
    the key was made from."""
    times: dict[str, float] = {}
    t = time.monotonic()
    staging = cache.source_tree(log)
    times["download+unpack"] = time.monotonic() - t
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    buildlog = root / "build.log"
    src, obj = root / "src", root / "obj"
    (staging / ".complete").unlink()
    staging.rename(src)

    t = time.monotonic()
    changed = apply_edits(src)
    log(f"{KERNEL}: applied the replace_set change to {len(changed)} files")
    fragment = _fragment(f"-klpsim-rs-{key[:8]}")
    (root / _FRAGMENT).write_text(fragment)
    final = _configure(src, obj, fragment, buildlog)
    if config_digest(final) != config_digest(config):
        raise VMError(f"{KERNEL}: the final .config differs from the one keyed ({buildlog})")
    times["edit+config"] = time.monotonic() - t

    t = time.monotonic()
    jobs = f"-j{os.cpu_count() or 1}"
    log(f"{KERNEL}: building bzImage ({jobs}; about 10 minutes with 2 cores)")
    make = ["make", "-s", "-C", str(src), f"O={obj}", f"ARCH={_ARCH}"]
    _sh([*make, jobs, "bzImage", "modules"], "kernel build", buildlog)
    times["make"] = time.monotonic() - t
    return BuildTimes(times)


def _tree(pkgs: KernelPackages, root: Path) -> KernelTree:
    obj = root / "obj"
    release = (obj / "include/config/kernel.release").read_text().strip()
    packages = KernelPackages(
        series=KERNEL,
        kver=release,
        version=pkgs.version,
        image="",
        headers=(),
        source=pkgs.source,
        apt_opts=pkgs.apt_opts,
    )
    return KernelTree(
        packages=packages,
        root=root,
        vmlinuz=obj / "arch/x86/boot/bzImage",
        system_map=obj / "System.map",
        config=obj / ".config",
        kbuild_dir=obj,
        source_dir=root / "src",
    )


def prepare_replace_set_kernel(log=print) -> KernelTree:
    """The replace-set kernel, built once per :func:`build_key` (source
    version, change, final .config); a new build prunes the older ones."""
    pkgs = resolve_packages(BASE_SERIES)
    cache = _Cache(pkgs)
    # Its own lock: a ten-minute build must not hold up other cache writers.
    with cache_lock(f"{KERNEL}-build"):
        key, config = cache.key(log)
        root = cache.dir(key)
        stamp = root / ".complete"
        if not stamp.exists():
            t0 = time.monotonic()
            times = build(cache, root, key, config, log)
            log(f"{KERNEL}: built in {times}")
            stamp.write_text(f"{pkgs.source} {key}\n{times}\n")
            log(f"{KERNEL}: cold build {time.monotonic() - t0:.0f} s")
            for old in cache.prune(keep=root):
                log(f"{KERNEL}: removed the older build {old.name}")
    tree = _tree(pkgs, root)
    for what, path in (
        ("bzImage", tree.vmlinuz),
        ("System.map", tree.system_map),
        ("functions.sh", tree.functions_sh),
    ):
        if not path.exists():
            raise VMError(f"{KERNEL}: {what} missing at {path} (remove {root} to rebuild)")
    # v2 1/4 made klp_find_func() global: proof that the change is built in.
    if not re.search(r" T klp_find_func$", tree.system_map.read_text(), re.M):
        raise VMError(f"{KERNEL}: {tree.system_map} has no global klp_find_func (remove {root})")
    return tree
