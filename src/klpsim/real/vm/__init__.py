"""The real-kernel tier: Debian's 6.1 and 6.12 kernels, and 6.12 built with
the replace_set rules, under QEMU/TCG.

Nothing heavy is imported until a name is used::

    from klpsim.real.vm import prepare
    rk = prepare("6.12")
    with rk.boot() as vm:
        res = rk.run_script(vm, "scenario.sh", modules_dirs=["defs/"])

Submodules: debian (packages), rskernel (the replace-set kernel), build
(kbuild), modgen (TOML -> C), initramfs, vm (the QEMU guest), selftests, api
(RealKernel), cli (``klpsim vm``).  Kernel sources, functions.sh and the
test modules are fetched from Debian's linux-source at run time; none is
part of klpsim.
"""

from __future__ import annotations

__all__ = [
    "KERNELS",
    "REPLACE_SET",
    "MODEL_PROFILES",
    "model_profile",
    "RealKernel",
    "VM",
    "VMError",
    "VMResult",
    "prepare",
]

#: The real kernel built with the replace_set v2 rules (rskernel.py).
REPLACE_SET = "replace-set"
#: Kernels of the tier: Debian's two, and 6.12 with the replace_set rules.
KERNELS = ("6.1", "6.12", REPLACE_SET)
#: The model's profile of each real kernel. The replace-set kernel is
#: Debian's 6.12 with the v2 rules, not the "replace-set" profile's 7.1 base.
MODEL_PROFILES = {"6.1": "6.1", "6.12": "6.12", REPLACE_SET: "replace-set-6.12"}


def model_profile(kernel: str) -> str:
    """The profile the model runs to compare with real *kernel* (any other
    name is a profile already)."""
    return MODEL_PROFILES.get(kernel, kernel)


_WHERE = {
    "RealKernel": "api",
    "prepare": "api",
    "VM": "vm",
    "VMResult": "vm",
    "VMError": "errors",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(name)
