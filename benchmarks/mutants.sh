#!/usr/bin/env bash
# Mutation testing of the model's kernel/livepatch and tracing layers:
# mutmut mutates src/klpsim/livepatch/ and src/klpsim/trace/ and runs the
# model-tier suite against each mutant; this prints the kill ratio.
#
# Too slow for CI (hours on one core). Needs mutmut in the venv, the version
# this was measured with:
#   .venv/bin/pip install mutmut==3.8.1
#
# The suite is pytest tests --ignore=tests/real, less what cannot run on
# mutmut's copy or says nothing about the model: the two bash-oracle
# property tests of tests/test_parser_bash.py (they spawn bash thousands of
# times and reach no code under livepatch/ or trace/), the README's
# pip-install-in-a-fresh-venv test (it installs the mutated tree, which
# imports mutmut, in a venv without it), the test that greps src/ for the
# CONFIG_ options the code reads (mutmut's copy holds mutated names such as
# "XXKPROBESXX"), and the bad-input fuzzer (it checks exit statuses and
# messages, not the model, and takes ~10 s). mutmut runs, for each mutant,
# only the tests that reached the mutated function.
#
# Usage: benchmarks/mutants.sh [WORKDIR]   (default: a new temporary folder)
#   MUTANTS_ONLY='src/klpsim/livepatch/state.py' narrows the files mutated.
#   MUTANTS_JOBS=N runs N mutants at once (default 1: the machine is shared).
#   MUTANTS_PATTERN='*__mutmut_*3' runs only the mutants whose names match
#   (fnmatch, several separated by spaces; this one is a systematic 1-in-9
#   sample: every function's 3rd, 13th, 23rd... mutant, 418 of 3,683). The
#   whole set takes many hours on 2 shared cores.
# The run happens in a copy of the tree; the repository is not touched. The
# survivors, each argued, are in benchmarks/mutants-survivors.md.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
work=${1:-$(mktemp -d -t klpsim-mutants.XXXXXX)}
only=${MUTANTS_ONLY:-'src/klpsim/livepatch/* src/klpsim/trace/*'}
jobs=${MUTANTS_JOBS:-1}
pattern=${MUTANTS_PATTERN:-}

"$py" -c 'import mutmut' 2>/dev/null || {
	echo "mutants.sh: mutmut is not installed: $py -m pip install mutmut==3.8.1" >&2
	exit 2
}
mkdir -p "$work"
# The tracked and new files of the tree as it is now (not .venv, not .git).
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
	(cd "$repo" && xargs -0 tar -cf - --no-recursion) | (cd "$work" && tar -xf -)
toml_list() { printf '"%s", ' "$@" | sed 's/, $//'; }
# shellcheck disable=SC2086  # $only is a list of globs
cat >>"$work/pyproject.toml" <<TOML

[tool.mutmut]
source_paths = ["src/"]
only_mutate = [$(toml_list $only)]
also_copy = ["README.md", "docs", "examples", "benchmarks", ".ci"]
# A mutant that turns off the clock's fast-forward makes a long sleep take
# minutes: 4x the tests' own time is a hang (mutmut's default waits 15x).
timeout_multiplier = 4.0
pytest_add_cli_args_test_selection = [
    "tests", "--ignore=tests/real", "-p", "no:cacheprovider",
    "--deselect", "tests/test_parser_bash.py::test_plain_scripts_split_as_bash_splits_them",
    "--deselect", "tests/test_parser_bash.py::test_forbidden_constructs_are_refused_where_bash_differs",
    "--deselect", "tests/test_readme.py::test_the_first_headline_command_as_written",
    "--deselect", "tests/test_cli.py::test_every_config_option_the_model_reads_is_known",
    "--ignore", "tests/test_bad_input_fuzz.py",
]
TOML
cd "$work"
echo "mutants.sh: mutating $only in $work" >&2
read -r -a patterns <<<"$pattern"  # several patterns: space-separated
nice -n 19 "$py" -m mutmut run --max-children "$jobs" "${patterns[@]}" >mutmut-run.log 2>&1 || {
	tail -20 mutmut-run.log >&2
	exit 1
}
"$py" -m mutmut results --all true >results.txt 2>&1 || true
"$py" - <<'PY'
import collections, re
counts = collections.Counter()
for line in open("results.txt"):
    m = re.match(r"\s*(\S+): (.+)$", line)
    if m:
        counts[m.group(2).strip()] += 1
counts.pop("not checked", None)  # outside MUTANTS_PATTERN
# A mutant that makes the suite hang is caught by mutmut's timeout: killed.
killed = counts["killed"] + counts["timeout"]
total = sum(counts.values())
print("mutants.sh:", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
print(f"mutants.sh: killed {killed} of {total} ({100 * killed / max(total, 1):.1f}%)")
PY
echo "mutants.sh: survivors: (cd $work && $py -m mutmut results)" >&2
