"""Helpers for writing a livepatch module's code in Python.

A livepatch module builds its klp_patch in init and hands it to the
exported klp_enable_patch(), exactly like a C module does.
"""

from klpsim.kernel.module import ModuleCode
from klpsim.livepatch.structs import KlpPatch

__all__ = ["LivepatchCode", "seq_puts", "callback_line"]


def seq_puts(text: str):
    """A seq_file show function that prints *text* and a newline."""

    def show(ctx, seq, *args):
        seq.append(text + "\n")
        return 0

    return show


def callback_line(cb_name: str, obj) -> str:
    """The test modules' ``<callback>: vmlinux`` / ``<callback>: <mod> -> <state>``."""
    if obj.mod is not None:
        return f"{cb_name}: {obj.mod.name} -> {obj.mod.state_name}"
    return f"{cb_name}: vmlinux"


class LivepatchCode(ModuleCode):
    """Base of livepatch modules: build the patch, apply parameters, enable."""

    replace = False  # the static ``.replace`` of the C struct
    replace_set = 0

    def objects(self) -> list:
        raise NotImplementedError

    def states(self) -> list:
        return []

    def init(self) -> int:
        params = self.mod.params
        patch = KlpPatch(
            self.mod,
            self.objects(),
            self.states(),
            replace=self.replace,
            replace_set=self.replace_set,
        )
        # Module parameters set in init, before klp_enable_patch().
        if "replace" in params:
            # An int parameter stored into mainline's bool (!!x), or into
            # the draft's u32 tag as C converts it (-1 is tag 4294967295).
            tag = self.kernel.exports.get("klp_replace_is_tag", False)
            patch.replace = params["replace"] & 0xFFFF_FFFF if tag else bool(params["replace"])
        if "replace_set" in params:
            # An int parameter stored into the u32 field, as C converts it
            # (v2 4/4's modules: replace_set=-1 is set 4294967295).
            patch.replace_set = int(params["replace_set"]) & 0xFFFF_FFFF
        if "replaceable" in params:
            patch.replaceable = bool(params["replaceable"])
        self.patch = patch
        return self.kernel.exports["klp_enable_patch"](patch)
