#!/usr/bin/python3
"""Soak: the agent and tunnel-server under a randomized mixed workload with
faults injected at random, for a number of minutes (./build.sh soak).

Two legs run side by side, everything on 127.0.0.1:

  leg A  public clients -> tunnel-server (S) -> agent A -> local services
         TCP streams of random sizes both ways (each checked end to end: the
         bytes are a seeded random stream, verified as they arrive, and the
         service answers with the SHA-256 of what it got), request/response
         rounds, UDP datagrams (each checked), connection churn (connect,
         a few bytes, close or reset). Faults: S restarted (SIGTERM), S
         aborted (SIGKILL), S frozen (SIGSTOP for seconds), a local service
         that resets a stream midway, slow local and public readers, bursts
         of garbage at S (raw bytes, bad upgrades, a rogue agent sending
         junk frames), public clients that reset.
  leg B  the Python fake runner (tests/integration/fake_runner.py) -> agent B
         -> local services: TCP streams (echo, checked), UDP, local resets
         (a service that resets: the agent must answer CLOSE), bursts of
         protocol garbage (short messages, unknown types and protos, DATA
         and CLOSE for unknown ids, text frames, duplicate CONNECTs, tunnel
         PINGs); faults: runner restart, abort (TCP dropped, no close),
         frozen runner (it stops reading and answering pings).

Every stream ends ok, or cut while a fault could cut it (a fault window
overlapping it, or a reset injected into it); a cut stream must still
have carried only correct bytes and must end (public side: the
connection closes; fake runner: CLOSE or ERROR, or the session ends).
No progress for HANG_S seconds is a hang: a failure. Corrupt bytes: a
failure. The fake runner's protocol checks must find nothing.

Every SAMPLE_S seconds the descriptors and RSS of A, B and S are sampled
(build/soak/samples.csv). It fails if they trend upward: after a warm-up,
the median of the second half of the samples against the first (RSS: more
than 25 % + 1 MiB; descriptors: more than 8 + 25 %), and if, once the
workload stopped and everything drained, an agent or S holds more
descriptors than it did idle at the start.

With --tls, leg A runs over wss://: tunnel-server with a self-signed
certificate made by the openssl CLI, agent A verifying it; the garbage
bursts then come both raw (before any handshake) and inside TLS.

usage: soak.py --minutes M --agent PATH --server PATH [--out DIR] [--seed N] [--tls]
Exit status 0 when every check passed; the summary is printed either way.
"""
import argparse
import collections
import os
import random
import signal
import socket
import sys
import threading
import time

from leg_a import ON_TROUBLE, fault_a, leg_a_churn, leg_a_streams, leg_a_udp
from leg_b import LegB
from workload import (HANG_S, SAMPLE_S, T0, TOKEN, Proc, StreamService, UdpEcho, now, sample,
                      stats, wait_for)

import certs  # noqa: E402 (tests/integration, on the path workload set)
import fake_runner as fr  # noqa: E402 (on the path workload set)


# --------------------------------------------------------------------------
# resources

def pause_meter(stop):
    """The longest a 10 ms sleep of this process overran (load, steal time,
    the interpreter's lock): what a hold in the tunnel is read against."""
    last = now()
    while not stop.wait(0.01):
        t = now()
        stats.high("machine_pause", t - last - 0.01)
        last = t


class Sampler:
    def __init__(self, procs, path, period):
        self.procs = procs
        self.path = path
        self.period = period
        self.rows = collections.defaultdict(list)   # name -> [(t, pid, fds, rss)]
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._loop, daemon=True, name="sampler")
        with open(path, "w") as f:
            f.write("t,process,pid,fds,rss_kib\n")

    def start(self):
        self.t.start()

    def take(self):
        with open(self.path, "a") as f:
            for name, p in self.procs.items():
                if not p.alive():
                    continue
                s = sample(p.pid)
                if s is None:
                    continue
                t = now() - T0
                self.rows[name].append((t, p.pid, s[0], s[1]))
                f.write("%.1f,%s,%d,%d,%d\n" % (t, name, p.pid, s[0], s[1]))

    def _loop(self):
        while not self.stop.wait(self.period):
            self.take()


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0


def trend_problems(name, rows, warmup):
    """Upward trend in one process's samples (the longest-lived pid)."""
    by_pid = collections.defaultdict(list)
    for r in rows:
        by_pid[r[1]].append(r)
    pid, series = max(by_pid.items(), key=lambda kv: len(kv[1]))
    series = [r for r in series if r[0] >= series[0][0] + warmup]
    if len(series) < 8:
        return []
    half = len(series) // 2
    a, b = series[:half], series[half:]
    out = []
    fa, fb = median([r[2] for r in a]), median([r[2] for r in b])
    if fb > fa * 1.25 + 8:
        out.append("%s: descriptors trend up (median %d -> %d)" % (name, fa, fb))
    ra, rb = median([r[3] for r in a]), median([r[3] for r in b])
    if rb > ra * 1.25 + 1024:
        out.append("%s: RSS trends up (median %d -> %d KiB)" % (name, ra, rb))
    return out


# --------------------------------------------------------------------------

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--out", default="build/soak")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--tls", action="store_true", help="leg A over wss://")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    duration = args.minutes * 60
    period = 2.0 if duration <= 300 else SAMPLE_S
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.endswith(".log"):
            os.unlink(os.path.join(args.out, f))
    print("soak: %.1f min, seed %d, leg A over %s, output in %s" % (
        args.minutes, seed, "wss://" if args.tls else "ws://", args.out), flush=True)

    svc = StreamService()
    udp = UdpEcho()
    listen = fr.free_port()
    admin = fr.free_port()
    p_tcp = fr.free_port()
    p_udp = fr.free_port(kind=socket.SOCK_DGRAM)
    tls_server, tls_agent = [], []
    if args.tls:
        leaf = certs.Pki(args.out).self_signed("soak", dns=["localhost"], key="ec")
        tls_server = ["--tls-cert", leaf.cert, "--tls-key", leaf.key]
        tls_agent = ["--ca-file", leaf.cert, "--tls-server-name", "localhost"]
    server = Proc("server", [args.server, "--listen", "127.0.0.1:%d" % listen, "--token", TOKEN,
                             "--expose", "tcp:127.0.0.1:%d=soak-a:%d" % (p_tcp, svc.port),
                             "--expose", "udp:127.0.0.1:%d=soak-a:%d" % (p_udp, udp.port),
                             "--ping-interval", "3", "--ping-timeout", "3",
                             "--udp-idle-timeout", "5", "--admin", "127.0.0.1:%d" % admin,
                             "--log-level", "info"] + tls_server, args.out)
    agent_opts = ["--reconnect-delay", "0.2", "--max-reconnect-delay", "1", "--ping-interval", "3",
                  "--ping-timeout", "3", "--udp-idle-timeout", "5", "--log-level", "info"]
    agent_a = Proc("agent-a", [args.agent, "--runner-url",
                               "%s://127.0.0.1:%d" % ("wss" if args.tls else "ws", listen),
                               "--container-id", "soak-a", "--token", TOKEN] + tls_agent + agent_opts,
                   args.out)
    runner = fr.FakeRunner()
    agent_b = Proc("agent-b", [args.agent, "--runner-url", runner.url, "--container-id", "soak-b"]
                   + agent_opts, args.out)
    procs = {"agent-a": agent_a, "agent-b": agent_b, "server": server}

    def trouble(tag):
        """Keep what the server and agent A know at the moment of a hang."""
        try:
            os.kill(agent_a.pid, signal.SIGUSR1)  # its connections, into its log
        except OSError:
            pass
        try:
            with socket.create_connection(("127.0.0.1", admin), timeout=5) as c:
                c.sendall(b"GET /status HTTP/1.0\r\n\r\n")
                c.settimeout(5)
                body = b"".join(iter(lambda: c.recv(65536), b""))
            with open(os.path.join(args.out, "trouble-%s-server-status.txt" % tag), "wb") as f:
                f.write(body)
        except OSError as e:
            print("soak: no server status for %s: %s" % (tag, e), flush=True)

    ON_TROUBLE.append(trouble)
    problems = []
    idle, end, violations = {}, {}, []
    sampler = Sampler(procs, os.path.join(args.out, "samples.csv"), period)
    legb = None
    try:
        server.start()
        agent_a.start()
        agent_b.start()
        if not wait_for(lambda: server.log_count("agent connected id=soak-a") >= 1, 15):
            raise SystemExit("soak: agent A did not connect to tunnel-server")
        first_b = runner.try_accept(15)
        if first_b is None:
            raise SystemExit("soak: agent B did not connect to the fake runner")
        time.sleep(1)
        idle = {n: sample(p.pid) for n, p in procs.items()}
        print("soak: idle at start: " + ", ".join("%s %d fds %d KiB" % (n, v[0], v[1])
                                                 for n, v in idle.items()), flush=True)
        sampler.start()
        threading.Thread(target=pause_meter, args=(sampler.stop,), daemon=True, name="pauses").start()
        until = now() + duration
        workers = [threading.Thread(target=leg_a_streams, args=(p_tcp, until, random.Random(rng.random())),
                                    daemon=True) for _ in range(6)]
        workers += [threading.Thread(target=leg_a_streams, args=(p_tcp, until, random.Random(rng.random()), True),
                                     daemon=True) for _ in range(2)]
        workers.append(threading.Thread(target=leg_a_udp, args=(p_udp, until, random.Random(rng.random())),
                                        daemon=True))
        workers.append(threading.Thread(target=leg_a_churn, args=(p_tcp, until, random.Random(rng.random())),
                                        daemon=True))
        first_b.dropped = False
        legb = LegB(agent_b, runner, random.Random(rng.random()), until, first_b)
        workers.append(threading.Thread(target=legb.run, daemon=True, name="leg-b"))
        workers.append(threading.Thread(target=legb.faults_loop, daemon=True, name="leg-b-faults"))
        for t in workers:
            t.start()
        report_at = now() + 60
        while now() < until:
            time.sleep(rng.uniform(15, 40) if duration > 300 else rng.uniform(10, 25))
            if now() >= until:
                break
            fault_a(server, listen, rng, args.tls)
            if not agent_a.alive() or not agent_b.alive():
                problems.append("an agent died: A rc %s, B rc %s" % (agent_a.proc.poll(), agent_b.proc.poll()))
                break
            if now() >= report_at:
                report_at = now() + 60
                with stats.lock:
                    c = dict(stats.c)
                print("soak: %4.0fs streams A %d ok %d cut %d, rr %d, udp %d/%d, churn %d; B streams %d; "
                      "faults A %d B %d; failures %d" % (
                          now() - T0, c.get("A.streams", 0), c.get("A.streams_ok", 0),
                          c.get("A.streams_cut", 0), c.get("A.rr", 0), c.get("A.udp_back", 0),
                          c.get("A.udp_sent", 0), c.get("A.churn", 0), c.get("B.streams", 0),
                          sum(v for k, v in c.items() if k.startswith("A.fault_")),
                          sum(v for k, v in c.items() if k.startswith("B.fault_")),
                          c.get("failures", 0)), flush=True)
        for t in workers:
            t.join(HANG_S + 30)
            if t.is_alive():
                problems.append("a workload thread (%s) did not finish: something hangs" % t.name)
        # Drained: every connection closed, nothing in flight.
        if not server.alive():
            server.start()
        wait_for(lambda: svc.active == 0, 30)
        time.sleep(3 * 3 + 5)  # UDP flows idle out (5 s), pings settle
        sampler.take()
        end = {n: sample(p.pid) for n, p in procs.items()}
        for n in ("agent-a", "agent-b", "server"):
            if end[n] is None:
                problems.append("%s is gone at the end" % n)
            elif end[n][0] > idle[n][0]:
                problems.append("%s holds %d descriptors after draining, %d idle at the start" % (
                    n, end[n][0], idle[n][0]))
    finally:
        sampler.stop.set()
        for p in procs.values():
            rc = p.stop(signal.SIGTERM)
            if p.starts and rc not in (0, None, -signal.SIGTERM):
                problems.append("%s: exit status %s on SIGTERM" % (p.name, rc))
        violations = runner.violations()
        runner.close()
        svc.close()
        udp.close()
        if legb is not None:
            legb.close()
    problems += ["fake runner: " + v for v in violations[:20]]
    warmup = 20 if duration <= 300 else 60
    for name, rows in sampler.rows.items():
        if rows:
            problems += trend_problems(name, rows, warmup)
    return report(args, seed, sampler, idle, end, problems)


def report(args, seed, sampler, idle, end, problems):
    with stats.lock:
        c = dict(stats.c)
        failures = list(stats.failures)
    print()
    print("soak summary (%.1f min, seed %d)" % (args.minutes, seed))
    print("  leg A (tunnel-server, %s): streams %d (ok %d, cut by faults %d), request/response %d (ok %d, cut %d)" % (
        "wss://" if args.tls else "ws://", c.get("A.streams", 0), c.get("A.streams_ok", 0), c.get("A.streams_cut", 0),
        c.get("A.rr", 0), c.get("A.rr_ok", 0), c.get("A.rr_cut", 0)))
    print("    bytes up %d, down %d; UDP %d sent, %d back; churn %d (+%d refused); "
          "local resets %d; garbage connections %d (%d inside TLS)" % (
              c.get("A.bytes_up", 0), c.get("A.bytes_down", 0), c.get("A.udp_sent", 0),
              c.get("A.udp_back", 0), c.get("A.churn", 0), c.get("A.churn_refused", 0),
              c.get("A.local_resets", 0), c.get("A.garbage_conns", 0), c.get("A.garbage_in_tls", 0)))
    print("    upload chunks (64 KiB) held back over 1 s: %d (%d with no fault), longest %.1f s; "
          "longest stall of a 10 ms sleep here: %.2f s" % (
              c.get("A.held_back", 0), c.get("A.held_back_nofault", 0), c.get("A.held_most", 0),
              c.get("machine_pause", 0)))
    print("    faults: restart %d, abort %d, freeze %d, garbage bursts %d" % (
        c.get("A.fault_restart", 0), c.get("A.fault_abort", 0), c.get("A.fault_freeze", 0),
        c.get("A.fault_garbage", 0)))
    print("  leg B (fake runner): sessions %d, streams %d (%d bytes), UDP back %d (lost %d), "
          "local closes/resets %d, garbage bursts %d, cut by faults %d" % (
              c.get("B.sessions", 0), c.get("B.streams", 0), c.get("B.bytes", 0),
              c.get("B.udp_back", 0), c.get("B.udp_lost", 0), c.get("B.local_resets", 0),
              c.get("B.garbage_bursts", 0), c.get("B.cut", 0)))
    print("    faults: restart %d, abort %d, frozen %d" % (
        c.get("B.fault_restart", 0), c.get("B.fault_abort", 0), c.get("B.fault_frozen", 0)))
    print("  resources (descriptors / RSS KiB): idle at start, first and last sample, min-max, drained at end")
    for name, rows in sorted(sampler.rows.items()):
        if not rows:
            continue
        fds = [r[2] for r in rows]
        rss = [r[3] for r in rows]
        print("    %-8s idle %s  first %d/%d  last %d/%d  fds %d-%d  rss %d-%d  end %s  (%d samples, %d pids)" % (
            name, "%d/%d" % idle[name] if idle.get(name) else "-", fds[0], rss[0], fds[-1], rss[-1],
            min(fds), max(fds), min(rss), max(rss),
            "%d/%d" % end[name] if end.get(name) else "-", len(rows), len({r[1] for r in rows})))
    bad = failures + problems
    if bad or c.get("failures", 0):
        print("soak: FAILED (%d problems)" % (c.get("failures", 0) + len(problems)))
        for b in bad:
            print("  - " + b)
        return 1
    if c.get("A.streams_ok", 0) == 0 or c.get("B.streams", 0) == 0:
        print("soak: FAILED: no stream completed in one of the legs")
        return 1
    print("soak: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
