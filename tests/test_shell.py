"""The shell commands a script may run, where a transcript does not pin them."""

from harness import Sim


def test_grep_names_the_files_only_when_there_are_several_and_not_with_h():
    sim = Sim()
    files = "/proc/cmdline /proc/version"
    assert sim.sh(f"grep -c Linux {files}") == "/proc/cmdline:0\n/proc/version:1\n"
    assert sim.sh(f"grep -h -c Linux {files}") == "0\n1\n"
    assert sim.sh(f"grep -h BOOT_IMAGE {files}") == sim.read("/proc/cmdline") + "\n"
    assert sim.sh("grep -c Linux /proc/version") == "1\n"
