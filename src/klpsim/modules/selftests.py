"""Models of tools/testing/selftests/livepatch/test_modules/.

Each module keeps its C counterpart's name, parameters (name, type,
permission, default), objects, messages and side effects; selftests.md,
section 2, lists them. On a profile whose klp_patch has ``replace_set``
(v2 4/4) the livepatch modules take ``replace_set=N`` where mainline takes
``replace=``.
"""

from klpsim.kernel.errno import EINVAL
from klpsim.kernel.module import FunctionSpec, ModuleCode, ModuleSpec
from klpsim.kernel.params import ParamSpec
from klpsim.livepatch.shadow import ShadowData
from klpsim.livepatch.structs import KlpCallbacks, KlpFunc, KlpObject, KlpState
from klpsim.modules.base import LivepatchCode, callback_line, seq_puts

__all__ = ["builtin_modules"]


# -- simple function patches ---------------------------------------------------------


class TestKlpLivepatch(LivepatchCode):
    def objects(self):
        return [
            KlpObject(None, [KlpFunc("cmdline_proc_show", self.sym("livepatch_cmdline_proc_show"))])
        ]


class TestKlpAtomicReplace(LivepatchCode):
    def objects(self):
        return [
            KlpObject(None, [KlpFunc("meminfo_proc_show", self.sym("livepatch_meminfo_proc_show"))])
        ]


class TestKlpModTarget(ModuleCode):
    """A plain module whose noinline show function is behind /proc/test_klp_mod_target."""

    def init(self) -> int:
        self.pr_info("test_klp_mod_target_init")
        show = self.sym("test_klp_mod_target_show")
        kernel = self.kernel

        def read() -> str:
            seq: list[str] = []
            kernel.call(kernel.sched.current, show, seq)
            return "".join(seq)

        kernel.fs.create_file("/proc/test_klp_mod_target", 0o444, read)
        return 0

    def exit(self) -> None:
        self.kernel.fs.remove("/proc/test_klp_mod_target")
        self.pr_info("test_klp_mod_target_exit")


class TestKlpModPatch(LivepatchCode):
    def objects(self):
        return [
            KlpObject(
                "test_klp_mod_target",
                [KlpFunc("test_klp_mod_target_show", self.sym("livepatch_mod_target_show"))],
            )
        ]


# -- callbacks -------------------------------------------------------------------------


class CallbackDemo(LivepatchCode):
    """test_klp_callbacks_demo{,2}: every object has all four callbacks."""

    def callbacks(self) -> KlpCallbacks:
        def pre_patch(obj):
            self.pr_info(callback_line("pre_patch_callback", obj))
            return self.mod.params.get("pre_patch_ret", 0)

        return KlpCallbacks(
            pre_patch,
            lambda obj: self.pr_info(callback_line("post_patch_callback", obj)),
            lambda obj: self.pr_info(callback_line("pre_unpatch_callback", obj)),
            lambda obj: self.pr_info(callback_line("post_unpatch_callback", obj)),
        )


class TestKlpCallbacksDemo(CallbackDemo):
    def objects(self):
        return [
            KlpObject(None, [], self.callbacks()),
            KlpObject("test_klp_callbacks_mod", [], self.callbacks()),
            KlpObject(
                "test_klp_callbacks_busy",
                [KlpFunc("busymod_work_func", self.sym("patched_work_func"))],
                self.callbacks(),
            ),
        ]


class TestKlpCallbacksDemo2(CallbackDemo):
    def objects(self):
        return [KlpObject(None, [], self.callbacks())]


class TestKlpCallbacksMod(ModuleCode):
    def init(self) -> int:
        self.pr_info("test_klp_callbacks_mod_init")
        return 0

    def exit(self) -> None:
        self.pr_info("test_klp_callbacks_mod_exit")


def _busymod_work_func(ctx, *args):
    """The work item: print, then msleep(20) in a loop while block_transition."""
    mod = ctx.kernel.modules.find_module("test_klp_callbacks_busy")
    mod.code.pr_info("busymod_work_func enter")
    if mod.params["block_transition"]:
        ctx.task.stack.append(ctx.sym)  # asleep in msleep() inside this function
        mod.code.blocked = ctx.task
        return 0
    mod.code.pr_info("busymod_work_func exit")
    return 0


def _patched_work_func(ctx, *args):
    ctx.kernel.log.printk(6, "test_klp_callbacks_demo: patched_work_func")
    return 0


class TestKlpCallbacksBusy(ModuleCode):
    blocked = None

    def init(self) -> int:
        self.pr_info("test_klp_callbacks_busy_init")
        kworker = self.kernel.kworker
        # schedule_work() + wait_for_completion(): the work has started
        # (and, unless blocking, finished) before init returns.
        self.kernel.call(kworker, self.sym("busymod_work_func"))
        return 0

    def exit(self) -> None:
        self.mod.params["block_transition"] = False
        if self.blocked is not None:  # flush_work(): the loop ends
            task, self.blocked = self.blocked, None
            task.stack.remove(self.sym("busymod_work_func"))
            self.pr_info("busymod_work_func exit")
        self.pr_info("test_klp_callbacks_busy_exit")


# -- shadow variables -------------------------------------------------------------------


class TestKlpShadowVars(ModuleCode):
    """Exercises the shadow variable API from init, numbering pointers PTRn."""

    SV_ID1, SV_ID2, NUM_OBJS = 0x1234, 0x1235, 3

    def init(self) -> int:
        ex = self.kernel.exports
        self.get, self.alloc = ex["klp_shadow_get"], ex["klp_shadow_alloc"]
        self.get_or_alloc = ex["klp_shadow_get_or_alloc"]
        self.free, self.free_all = ex["klp_shadow_free"], ex["klp_shadow_free_all"]
        self.ids: list = []
        # Bound methods are new objects on every access; keep one of each
        # so that ptr_id() numbers them once, as C numbers a function.
        self.ctor, self.dtor = self.shadow_ctor, self.shadow_dtor
        self.ptr_id(None)
        n = self.NUM_OBJS
        objs = [object() for _ in range(n)]
        nfields1 = [object() for _ in range(n)]
        nfields2 = [object() for _ in range(n)]
        sv1: list[ShadowData | None] = [None] * n
        sv2: list[ShadowData | None] = [None] * n
        ret = 0
        if self.shadow_get(objs[0], self.SV_ID1) is None:
            self.pr_info("  got expected NULL result")
        for i in range(n):
            self.ptr_id(nfields1[i])
            op = self.shadow_alloc if i % 2 else self.shadow_get_or_alloc
            sv1[i] = op(objs[i], self.SV_ID1, nfields1[i])
            self.ptr_id(nfields2[i])
            sv2[i] = self.shadow_alloc(objs[i], self.SV_ID2, nfields2[i])
            if sv1[i] is None or sv2[i] is None:
                return self._out(-12)
        for i in range(n):
            for sid, sv, field in ((self.SV_ID1, sv1, nfields1), (self.SV_ID2, sv2, nfields2)):
                got = self.shadow_get(objs[i], sid)
                if got is None:
                    return self._out(-EINVAL)
                if got is sv[i] and got.value is field[i]:
                    self.expected(got)
        for i in range(n):
            self.ptr_id(nfields1[i])
            got = self.shadow_get_or_alloc(objs[i], self.SV_ID1, nfields1[i])
            if got is None:
                return self._out(-EINVAL)
            if got is sv1[i] and got.value is nfields1[i]:
                self.expected(got)
        for i in range(n):
            self.shadow_free(objs[i], self.SV_ID1)
            if self.shadow_get(objs[i], self.SV_ID1) is None:
                self.pr_info("  got expected NULL result")
        for i in range(n):
            got = self.shadow_get(objs[i], self.SV_ID2)
            if got is None:
                return self._out(-EINVAL)
            if got is sv2[i] and got.value is nfields2[i]:
                self.expected(got)
        self.shadow_free_all(self.SV_ID2, None)
        for i in range(n):
            if self.shadow_get(objs[i], self.SV_ID2) is None:
                self.pr_info("  got expected NULL result")
        return ret

    def _out(self, ret: int) -> int:
        self.shadow_free_all(self.SV_ID1, None)
        self.shadow_free_all(self.SV_ID2, None)
        return ret

    def ptr_id(self, ptr) -> int:
        for i, p in enumerate(self.ids):
            if p is ptr:
                return i
        self.ids.append(ptr)
        return len(self.ids) - 1

    def expected(self, sv) -> None:
        self.pr_info(f"  got expected PTR{self.ptr_id(sv)} -> PTR{self.ptr_id(sv.value)} result")

    def shadow_ctor(self, obj, data, ctor_data) -> int:
        if ctor_data is None:
            return -EINVAL
        data.value = ctor_data
        self.pr_info(f"shadow_ctor: PTR{self.ptr_id(data)} -> PTR{self.ptr_id(ctor_data)}")
        return 0

    def shadow_dtor(self, obj, data) -> None:
        self.pr_info(f"shadow_dtor(obj=PTR{self.ptr_id(obj)}, shadow_data=PTR{self.ptr_id(data)})")

    def shadow_get(self, obj, id) -> ShadowData | None:
        ret = self.get(obj, id)
        self.pr_info(
            f"klp_shadow_get(obj=PTR{self.ptr_id(obj)}, id=0x{id:x}) = PTR{self.ptr_id(ret)}"
        )
        return ret

    def _alloc_line(self, name, obj, id, ctor_data, ret) -> None:
        self.pr_info(
            f"{name}(obj=PTR{self.ptr_id(obj)}, id=0x{id:x}, size=8, gfp_flags=GFP_KERNEL), "
            f"ctor=PTR{self.ptr_id(self.ctor)}, ctor_data=PTR{self.ptr_id(ctor_data)}"
            f" = PTR{self.ptr_id(ret)}"
        )

    def shadow_alloc(self, obj, id, ctor_data) -> ShadowData | None:
        ret = self.alloc(obj, id, 8, "GFP_KERNEL", self.ctor, ctor_data)
        self._alloc_line("klp_shadow_alloc", obj, id, ctor_data, ret)
        return ret

    def shadow_get_or_alloc(self, obj, id, ctor_data) -> ShadowData | None:
        ret = self.get_or_alloc(obj, id, 8, "GFP_KERNEL", self.ctor, ctor_data)
        self._alloc_line("klp_shadow_get_or_alloc", obj, id, ctor_data, ret)
        return ret

    def shadow_free(self, obj, id):
        self.free(obj, id, self.dtor)
        self.pr_info(
            f"klp_shadow_free(obj=PTR{self.ptr_id(obj)}, id=0x{id:x}, "
            f"dtor=PTR{self.ptr_id(self.dtor)})"
        )

    def shadow_free_all(self, id, dtor):
        self.free_all(id, dtor)
        self.pr_info(f"klp_shadow_free_all(id=0x{id:x}, dtor=PTR{self.ptr_id(dtor)})")


# -- system states ---------------------------------------------------------------------

CONSOLE_LOGLEVEL_STATE = 1
CONSOLE_LOGLEVEL_MOTORMOUTH = 15


class TestKlpState(LivepatchCode):
    """test_klp_state: state 1 version 1 (console_loglevel); vmlinux callbacks only."""

    replace = True
    version = 1
    uses_prev_state = False

    def objects(self):
        return [
            KlpObject(
                None,
                [],
                KlpCallbacks(self.pre_patch, self.post_patch, self.pre_unpatch, self.post_unpatch),
            )
        ]

    def states(self):
        return [KlpState(CONSOLE_LOGLEVEL_STATE, self.version)]

    def _state(self):
        return self.kernel.exports["klp_get_state"](self.patch, CONSOLE_LOGLEVEL_STATE)

    def _prev(self):
        if not self.uses_prev_state:
            return None
        return self.kernel.exports["klp_get_prev_state"](CONSOLE_LOGLEVEL_STATE)

    def pre_patch(self, obj) -> int:
        self.pr_info(callback_line("pre_patch_callback", obj))
        if self._prev() is not None:
            self.pr_info(
                "allocate_loglevel_state: space to store console_loglevel already allocated"
            )
            return 0
        state = self._state()
        if state is None:
            return -EINVAL
        state.data = {"loglevel": None}
        self.pr_info("allocate_loglevel_state: allocating space to store console_loglevel")
        return 0

    def post_patch(self, obj) -> None:
        self.pr_info(callback_line("post_patch_callback", obj))
        state = self._state()
        if state is None:
            return
        prev = self._prev()
        if prev is not None:
            state.data = prev.data
            self.pr_info("fix_console_loglevel: taking over the console_loglevel change")
            return
        self.pr_info("fix_console_loglevel: fixing console_loglevel")
        state.data = {"loglevel": CONSOLE_LOGLEVEL_MOTORMOUTH}

    def pre_unpatch(self, obj) -> None:
        self.pr_info(callback_line("pre_unpatch_callback", obj))
        if self._prev() is not None:
            self.pr_info(
                "restore_console_loglevel: passing the console_loglevel change back to "
                "the old livepatch"
            )
            return
        state = self._state()
        if state is None:
            return
        self.pr_info("restore_console_loglevel: restoring console_loglevel")
        if state.data is None:
            # console_loglevel = *(int *)state->data: the data of a state
            # taken over from a patch that stored none (a TOML livepatch's)
            self.kernel.oops_page_fault(
                0, f"{self.kernel.config.state_restore_oops_at} [{self.mod.name}]"
            )

    def post_unpatch(self, obj) -> None:
        self.pr_info(callback_line("post_unpatch_callback", obj))
        if self._prev() is not None:
            self.pr_info("free_loglevel_state: keeping space to store console_loglevel")
            return
        if self._state() is None:
            return
        self.pr_info("free_loglevel_state: freeing space for the stored console_loglevel")


class TestKlpState2(TestKlpState):
    """test_klp_state2 (and state3, the same source): version 2, takes over."""

    version = 2
    uses_prev_state = True


# -- syscall ---------------------------------------------------------------------------


def _lp_sys_getpid(ctx, *args):
    """Count each listed pid that runs the patched getpid once."""
    mod = ctx.kernel.modules.find_module("test_klp_syscall")
    code = mod.code
    if code.npids_pending > 0:
        pids = mod.params["klp_pids"]
        for i, pid in enumerate(pids[: code.npids]):
            if pid == ctx.task.pid:
                pids[i] = 0
                code.npids_pending -= 1
                break
    return ctx.task.pid


class TestKlpSyscall(LivepatchCode):
    npids = 0
    npids_pending = 0

    def objects(self):
        return [KlpObject(None, [KlpFunc("__x64_sys_getpid", self.sym("lp_sys_getpid"))])]

    def init(self) -> int:
        pids = self.mod.params["klp_pids"]
        self.npids_pending = len(pids)
        self.kernel.fs.create_file(
            "/sys/kernel/test_klp_syscall/npids", 0o444, lambda: f"{self.npids_pending}\n"
        )
        self.npids = self.npids_pending
        return super().init()

    def exit(self) -> None:
        self.kernel.fs.remove("/sys/kernel/test_klp_syscall")


# -- kprobes -----------------------------------------------------------------------------


class TestKlpKprobe(ModuleCode):
    """A kprobe on cmdline_proc_show, with an empty post_handler if asked."""

    def init(self) -> int:
        kprobes = self.kernel.exports.get("kprobes")
        if kprobes is None:
            return -EINVAL
        post = (lambda *a: None) if self.mod.params["has_post_handler"] else None
        self.kp = kprobes.new_kprobe(
            "cmdline_proc_show", pre_handler=lambda *a: 0, post_handler=post, owner=self.mod.name
        )
        return kprobes.register_kprobe(self.kp)

    def exit(self) -> None:
        self.kernel.exports["kprobes"].unregister_kprobe(self.kp)


# -- the table -----------------------------------------------------------------------------


def _replace_params(profile, *, replace: bool) -> tuple[ParamSpec, ...]:
    """``replace`` (mainline) or ``replace_set`` (v2 4/4), as the profile's klp_patch has."""
    fields = profile.patch_fields
    params = []
    if replace and "replace" in fields:
        params.append(ParamSpec("replace", "int", 0o644, 0))
    if "replace_set" in fields:
        params.append(ParamSpec("replace_set", "int", 0o644, 0))
    return tuple(params)


def builtin_modules(profile) -> dict[str, ModuleSpec]:
    """The selftest modules as built for *profile*'s kernel."""
    pre_patch_ret = ParamSpec("pre_patch_ret", "int", 0o644, 0)
    specs = [
        ModuleSpec(
            "test_klp_livepatch",
            TestKlpLivepatch,
            params=_replace_params(profile, replace=False),
            functions=(
                FunctionSpec(
                    "livepatch_cmdline_proc_show",
                    seq_puts("test_klp_livepatch: this has been live patched"),
                ),
            ),
            livepatch=True,
        ),
        ModuleSpec(
            "test_klp_atomic_replace",
            TestKlpAtomicReplace,
            params=_replace_params(profile, replace=True),
            functions=(
                FunctionSpec(
                    "livepatch_meminfo_proc_show",
                    seq_puts("test_klp_atomic_replace: this has been live patched"),
                ),
            ),
            livepatch=True,
        ),
        ModuleSpec(
            "test_klp_callbacks_demo",
            TestKlpCallbacksDemo,
            params=(pre_patch_ret,) + _replace_params(profile, replace=False),
            functions=(FunctionSpec("patched_work_func", _patched_work_func),),
            livepatch=True,
        ),
        ModuleSpec(
            "test_klp_callbacks_demo2",
            TestKlpCallbacksDemo2,
            params=_replace_params(profile, replace=True),
            livepatch=True,
        ),
        ModuleSpec("test_klp_callbacks_mod", TestKlpCallbacksMod),
        ModuleSpec(
            "test_klp_callbacks_busy",
            TestKlpCallbacksBusy,
            params=(ParamSpec("block_transition", "bool", 0o644, False),),
            functions=(FunctionSpec("busymod_work_func", _busymod_work_func),),
        ),
        ModuleSpec("test_klp_shadow_vars", TestKlpShadowVars),
        ModuleSpec("test_klp_state", TestKlpState, livepatch=True),
        ModuleSpec("test_klp_state2", TestKlpState2, livepatch=True),
        ModuleSpec("test_klp_state3", TestKlpState2, livepatch=True),
        ModuleSpec(
            "test_klp_syscall",
            TestKlpSyscall,
            params=(ParamSpec("klp_pids", "int_array", 0, []),),
            functions=(FunctionSpec("lp_sys_getpid", _lp_sys_getpid),),
            livepatch=True,
        ),
        ModuleSpec(
            "test_klp_kprobe",
            TestKlpKprobe,
            params=(ParamSpec("has_post_handler", "bool", 0o444, True),),
        ),
        ModuleSpec(
            "test_klp_mod_target",
            TestKlpModTarget,
            functions=(
                FunctionSpec(
                    "test_klp_mod_target_show", seq_puts("test_klp_mod_target: original output")
                ),
            ),
        ),
        ModuleSpec(
            "test_klp_mod_patch",
            TestKlpModPatch,
            functions=(
                FunctionSpec(
                    "livepatch_mod_target_show",
                    seq_puts("test_klp_mod_patch: this has been live patched"),
                ),
            ),
            livepatch=True,
        ),
    ]
    return {s.name: s for s in specs}
