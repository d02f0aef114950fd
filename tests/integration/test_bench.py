"""The benchmark cannot rot: tests/bench/bench.py --quick against the agent
under test, every scenario checked for sane numbers, the tunnel-server
scenarios (relay-up, relay-down, relay-conns, fleet) included, against the
server under test (TUNNEL_SERVER, default the host build).

Not marked `core` (it needs the native benchmark tools and a few seconds);
it runs in the full suite and is skipped for emulated or valgrind programs
(TUNNEL_CLIENT_RUN or TUNNEL_SERVER_RUN set). The peer, services and fleet
come from build/x86_64-linux-musl/bench/ (`make bench`; ./build.sh test
builds them).
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
# The server scenarios at the --quick sizes: bytes the client reports
# (None: not a byte count) and connections served or agents connected.
SERVER_QUICK = {
    "relay-up": (8 * MIB, None),
    "relay-down": (8 * MIB, None),
    "relay-conns": (2 * 200 * KIB, 200),
    "fleet": (None, 200),
}
# The fleet's server pings every 2 s; a ping may come this much later
# (bench.py's FLEET_PING_INTERVAL and FLEET_GAP_SLACK_MS).
FLEET_GAP_LIMIT_MS = 2000 + 1000
SERVER = os.environ.get("TUNNEL_SERVER", os.path.join(ROOT, "build", "x86_64-linux-musl",
                                                      "tunnel-server"))
SERVER_RUN = os.environ.get("TUNNEL_SERVER_RUN", "")
# Our name -> the peer's scenario, where they differ.
QUICK_PEER = {"wss-up": "up", "wss-down": "down"}
# Scenarios the peer may not offer yet (reported as not available).
OPTIONAL = {"wss-up", "wss-down"}


def test_bench_quick(tmp_path):
    if RUN_PREFIX or SERVER_RUN:
        pytest.skip("the benchmark measures native programs, not ones run through %r"
                    % " ".join(RUN_PREFIX or [SERVER_RUN]))
    peer, svc = os.path.join(TOOLS, "peer"), os.path.join(TOOLS, "svc")
    fleet = os.path.join(TOOLS, "fleet")
    missing = [p for p in (peer, svc, fleet) if not os.access(p, os.X_OK)]
    assert not missing, "missing %s: build them with `make bench` (./build.sh test does)" % missing
    assert os.access(SERVER, os.X_OK), "no tunnel-server at %s (./build.sh builds it)" % SERVER
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [sys.executable, BENCH, "--quick", "--agent", BINARY, "--peer", peer, "--svc", svc,
         "--fleet", fleet, "--server", SERVER, "--json", str(out)],
        capture_output=True, text=True, timeout=600)
    report = "bench.py exited %d\n%s\n%s" % (r.returncode, r.stdout[-4000:], r.stderr[-2000:])
    assert out.exists(), report
    with open(out) as f:
        data = json.load(f)

    assert data["config"]["quick"] is True
    assert set(data["config"]["scenarios"]) == set(QUICK) | set(SERVER_QUICK), report
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
    check_server_scenarios(data, report)
    assert r.returncode == 0, report


def check_server_scenarios(data, report):
    """The tunnel-server scenarios of a --quick run: sane numbers."""
    assert [s["label"] for s in data["servers"]] == ["A"], report
    assert data["servers"][0]["path"] == os.path.abspath(SERVER)
    assert not set(SERVER_QUICK) & set(data["unavailable"]), data["unavailable"]
    for name, (want_bytes, want_served) in SERVER_QUICK.items():
        runs = [x for x in data["runs"] if x["scenario"] == name]
        assert len(runs) == 1, "%s: %d runs\n%s" % (name, len(runs), report)
        x = runs[0]
        assert "error" not in x, "%s: %s" % (name, x["error"])
        res = x["result"]
        assert x["server_exit"] == 0, "%s: server exit %s" % (name, x["server_exit"])
        assert x["server_cpu_s"] > 0, "%s: no server CPU time measured" % name
        assert 0 < x["server_hwm_kib"] < 64 * 1024, "%s: server peak RSS %s KiB" % (
            name, x["server_hwm_kib"])
        if name == "fleet":
            assert res["connected"] == want_served and res["count"] == want_served, res
            assert res["failed"] == 0 and res["errors"] == {}, res
            assert res["closed_by_server"] == 0, res
            assert 2 <= res["pings_min"] <= res["pings_max"] <= 4, res
            assert res["ws_pings"] >= 2 * want_served, res
            assert res["pings"] == res["ws_pings"] + res["tunnel_pings"], res
            assert 1500 <= res["max_gap_ms"] <= FLEET_GAP_LIMIT_MS, res
            assert res["max_tail_ms"] <= FLEET_GAP_LIMIT_MS, res
            assert 0 < x["server_rss_base_kib"] <= x["server_rss_connected_kib"], x
            assert x["connect_cpu_s"] > 0 and x["idle_cpu_s"] > 0, x
            assert x["agent"] is None and "agent_exit" not in x
            continue
        assert res["bytes"] == want_bytes, name
        assert res["errors"] == 0, name
        assert res["seconds"] > 0, name
        assert x["agent_cpu_s"] > 0, "%s: no agent CPU time measured" % name
        assert 0 < x["agent_hwm_kib"] < 64 * 1024, "%s: agent peak RSS %s KiB" % (
            name, x["agent_hwm_kib"])
        assert x["agent_exit"] == 0, "%s: agent exit %s" % (name, x["agent_exit"])
        if name == "relay-conns":
            assert res["served"] == want_served and res["dropped"] == 0, res
            assert res["open_max"] == want_served, res
        else:
            assert res["mode"] == ("push" if name == "relay-up" else "pull"), res
    med = data["medians"]
    for name in ("relay-up", "relay-down"):
        assert med[name]["mib_s"]["A"]["median"] > 0
        assert med[name]["server_cpu_s_per_gib"]["A"]["median"] > 0
        assert med[name]["agent_cpu_s_per_gib"]["A"]["median"] > 0
    assert med["relay-conns"]["served"]["A"]["median"] == 200
    assert med["fleet"]["connected"]["A"]["median"] == 200
    assert med["fleet"]["server_rss_connected_kib"]["A"]["median"] > 0
    targets = {(t["scenario"], t["binary"]): t for t in data["targets"]}
    assert set(targets) == {("relay-conns", "A"), ("fleet", "A")}, data["targets"]
    # tiny sizes: far below the full-size memory targets
    assert all(t["met"] for t in targets.values()), data["targets"]
