"""The benchmark cannot rot: tests/bench/bench.py --quick against the agent
under test, every scenario checked for sane numbers.

Not marked `core` (it needs the native benchmark tools and a few seconds);
it runs in the full suite and is skipped for emulated or valgrind agents
(TUNNEL_CLIENT_RUN set). The peer and services come from
build/x86_64-linux-musl/bench/ (`make bench`; ./build.sh test builds them).
"""
import json
import os
import subprocess
import sys

import pytest

from agent import BINARY, ROOT, RUN_PREFIX

BENCH = os.path.join(ROOT, "tests", "bench", "bench.py")
TOOLS = os.path.join(ROOT, "build", "x86_64-linux-musl", "bench")
KIB, MIB = 1 << 10, 1 << 20

# What every scenario must report at the --quick sizes: payload bytes moved
# (both directions counted) and connections served (None: not checked).
QUICK = {
    "up": (8 * MIB, None),
    "down": (8 * MIB, None),
    "streams": (2 * 64 * 64 * KIB, 64),
    "rr": (2 * 200 * 64, None),
    "conns": (2 * 200 * KIB, 200),
    "bulk-idle": (8 * MIB, None),
    "idle": (0, None),
    "wss-up": (8 * MIB, None),
    "wss-down": (8 * MIB, None),
}
# Our name -> the peer's scenario, where they differ.
QUICK_PEER = {"wss-up": "up", "wss-down": "down"}
# Scenarios the peer may not offer yet (reported as not available).
OPTIONAL = {"wss-up", "wss-down"}


def test_bench_quick(tmp_path):
    if RUN_PREFIX:
        pytest.skip("the benchmark measures a native agent, not one run through %r"
                    % " ".join(RUN_PREFIX))
    peer, svc = os.path.join(TOOLS, "peer"), os.path.join(TOOLS, "svc")
    missing = [p for p in (peer, svc) if not os.access(p, os.X_OK)]
    assert not missing, "missing %s: build them with `make bench` (./build.sh test does)" % missing
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, BENCH, "--quick", "--agent", BINARY, "--peer", peer, "--svc", svc,
         "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    report = "bench.py exited %d\n%s\n%s" % (r.returncode, r.stdout[-4000:], r.stderr[-2000:])
    assert out.exists(), report
    with open(out) as f:
        data = json.load(f)

    assert data["config"]["quick"] is True
    assert set(data["config"]["scenarios"]) == set(QUICK), report
    for name, (want_bytes, want_served) in QUICK.items():
        if name in data["unavailable"]:
            assert name in OPTIONAL, "%s not available: %s" % (name, data["unavailable"][name])
            continue
        runs = [x for x in data["runs"] if x["scenario"] == name]
        assert len(runs) == 1, "%s: %d runs\n%s" % (name, len(runs), report)
        x = runs[0]
        assert "error" not in x, "%s: %s" % (name, x["error"])
        res = x["result"]
        assert res["scenario"] == QUICK_PEER.get(name, name)
        assert res["bytes"] == want_bytes, name
        assert res["errors"] == 0, name
        if want_served is not None:
            assert res["served"] == want_served, name
        assert res["seconds"] >= 0, name
        if name != "idle":
            assert x["cpu_s"] > 0, "%s: no agent CPU time measured" % name
            assert res["seconds"] > 0, name
        assert 0 < x["hwm_kib"] < 64 * 1024, "%s: peak RSS %s KiB" % (name, x["hwm_kib"])
        assert x["agent_exit"] == 0, "%s: agent exit %s" % (name, x["agent_exit"])
        if name == "rr":
            rtt, direct = res["rtt_us"], x["direct"]
            assert 0 < rtt["p50"] <= rtt["p99"] <= rtt["p999"], rtt
            assert 0 < direct["p50"] <= direct["p99"] <= direct["p999"], direct
            assert direct["count"] == 200
    med = data["medians"]
    assert med["up"]["mib_s"]["A"]["median"] > 0
    assert med["down"]["cpu_s_per_gib"]["A"]["median"] > 0
    assert med["idle"]["rss_kib"]["A"]["median"] > 0
    assert med["bulk-idle"]["bulk_vs_down_mib_s"]["A"]["median"] > 0
    assert r.returncode == 0, report
