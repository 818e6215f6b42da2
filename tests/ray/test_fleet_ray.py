"""klpsim plan --fleet --ray local gives exactly the report --jobs 1 and
--jobs 2 give.

Run by .ci/ray-tier, which installs the ``ray`` extra first; without Ray
this fails: it never skips.
"""

import json

import ray  # noqa: F401  (no Ray: this tier fails here, loudly)
from harness import klpsim
from klpsim.tools.fleet import SYNTHETIC_NEW, synthetic_fleet


def test_ray_local_gives_the_same_fleet_report(tmp_path):
    hosts = tmp_path / "hosts"
    synthetic_fleet(hosts, 24, seed=3)
    (hosts / "cut.tar.gz").write_bytes((hosts / "host-0000.tar.gz").read_bytes()[:300])
    new = tmp_path / "lp_new.toml"
    new.write_text(SYNTHETIC_NEW)
    argv = ["plan", "--fleet", str(hosts), str(new), "--json"]
    runs = [
        klpsim(*argv, *extra) for extra in ([], ["--jobs", "2"], ["--ray", "local", "--jobs", "2"])
    ]
    for r in runs[:2]:
        assert r.status == 1 and r.err == "", r.err
    # Ray's own notices (token authentication) may go to stderr; nothing of klpsim's
    assert runs[2].status == 1
    assert "klpsim" not in runs[2].err and "Traceback" not in runs[2].err, runs[2].err
    reports = [json.loads(r.out) for r in runs]
    assert reports[0] == reports[1] == reports[2]
    counts = reports[0]["counts"]
    assert counts["unreadable"] == 1 and counts["accepts"] and counts["refuses"]
