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

usage: soak.py --minutes M --agent PATH --server PATH [--out DIR] [--seed N]
Exit status 0 when every check passed; the summary is printed either way.
"""
import argparse
import collections
import hashlib
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import fake_runner as fr  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

HANG_S = 45.0          # no progress for this long: a hang
SAMPLE_S = 5.0         # resource sampling period (2 s for short runs)
TOKEN = "soak-token-0123456789"
MAGIC = b"SOAK"
HDR = struct.Struct(">4sIIIII")  # magic, seed, up, down, mode, rounds
M_RESET = 1            # the local service resets the stream midway
M_SLOW_SVC = 2         # the local service reads slowly
M_SLOW_CLIENT = 4      # the public client reads slowly
M_RR = 8               # request/response rounds instead of one stream
CHUNK = 65536

_PDEATHSIG = ["setpriv", "--pdeathsig", "KILL"] if os.path.exists("/usr/bin/setpriv") else []


def now():
    return time.monotonic()


class Stream:
    """A seeded random byte stream, produced and checked in order."""

    def __init__(self, seed, total):
        self.rng = random.Random(seed)
        self.total = total
        self.pos = 0
        self.buf = b""
        self.sha = hashlib.sha256()

    def take(self, n):
        """The next n bytes (fewer at the end)."""
        n = min(n, self.total - self.pos)
        while len(self.buf) < n:
            self.buf += self.rng.randbytes(CHUNK)
        out, self.buf = self.buf[:n], self.buf[n:]
        self.pos += n
        self.sha.update(out)
        return out

    def check(self, data):
        """True if data is what comes next (and consume it)."""
        if self.pos + len(data) > self.total:
            return False
        return self.take(len(data)) == data


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = collections.Counter()
        self.failures = []

    def add(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def fail(self, why):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append("%.1fs %s" % (now() - T0, why))
            self.c["failures"] += 1


T0 = now()
stats = Stats()


class Faults:
    """Fault windows: a stream that overlaps one may be cut."""

    def __init__(self):
        self.lock = threading.Lock()
        self.windows = {"A": [], "B": []}

    def begin(self, leg):
        with self.lock:
            w = [now(), None]
            self.windows[leg].append(w)
            return w

    def end(self, leg, w, grace=5.0):
        with self.lock:
            w[1] = now() + grace

    def overlaps(self, leg, start, end):
        with self.lock:
            for a, b in self.windows[leg]:
                if a <= end and (b is None or b >= start):
                    return True
        return False


faults = Faults()


# --------------------------------------------------------------------------
# processes

class Proc:
    """A program under test, its stderr in a log file."""

    def __init__(self, name, args, logdir):
        self.name = name
        self.args = args
        self.logpath = os.path.join(logdir, name + ".log")
        self.proc = None
        self.starts = 0

    def start(self):
        log = open(self.logpath, "ab")
        log.write(b"---- start %d\n" % self.starts)
        log.flush()
        self.proc = subprocess.Popen(_PDEATHSIG + self.args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        self.starts += 1

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal and reap; the exit code (negative: killed by a signal)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return "hung: killed after %ds" % timeout

    def log_count(self, text):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().count(text.encode())
        except OSError:
            return 0


def sample(pid):
    """(descriptors, RSS KiB) of a process, or None."""
    try:
        fds = len(os.listdir("/proc/%d/fd" % pid))
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return fds, int(line.split()[1])
    except OSError:
        pass
    return None


def wait_for(pred, timeout, step=0.05):
    deadline = now() + timeout
    while now() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


# --------------------------------------------------------------------------
# leg A: local services (agent side)

class StreamService:
    """TCP service behind agent A: reads a SOAK header, then per the mode
    either one stream each way (answered by the SHA-256 of what it read)
    or request/response rounds. Checks every byte it reads."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(256)
        self.port = self.ls.getsockname()[1]
        self.stop = False
        self.active = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="svc-accept").start()

    def _accept(self):
        self.ls.settimeout(0.5)
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.active += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _recv_exact(c, n, slow=False):
        parts, got = [], 0
        while got < n:
            d = c.recv(min(n - got, 4096 if slow else 262144))
            if not d:
                return b"".join(parts)
            parts.append(d)
            got += len(d)
            if slow:
                time.sleep(random.uniform(0.002, 0.02))
        return b"".join(parts)

    def _serve(self, c):
        c.settimeout(HANG_S + 15)
        try:
            head = self._recv_exact(c, HDR.size)
            if len(head) < HDR.size or head[:4] != MAGIC:
                stats.add("A.svc_junk")  # churn: a few bytes, then gone
                while c.recv(65536):
                    pass
                return
            _, seed, up, down, mode, rounds = HDR.unpack(head)
            if mode & M_RR:
                self._rounds(c, seed, up, down, rounds)
            else:
                self._stream(c, seed, up, down, mode)
        except (OSError, socket.timeout):
            pass
        finally:
            c.close()
            with self.lock:
                self.active -= 1

    def _rounds(self, c, seed, up, down, rounds):
        for r in range(rounds):
            req = self._recv_exact(c, up)
            if len(req) < up:
                return
            if req != Stream(seed * 1000 + r, up).take(up):
                stats.fail("A: request/response: a corrupt request (seed %d round %d)" % (seed, r))
                return
            c.sendall(Stream(seed * 1000 + r + 500, down).take(down))

    def _stream(self, c, seed, up, down, mode):
        cut_at = random.randint(0, max(up, down)) if mode & M_RESET else None
        sent = [0]

        def writer():
            s = Stream(seed ^ 0x5A5A5A5A, down)
            try:
                while s.pos < down:
                    if cut_at is not None and s.pos >= cut_at:
                        return
                    c.sendall(s.take(CHUNK))
                    sent[0] = s.pos
            except OSError:
                pass

        w = threading.Thread(target=writer, daemon=True)
        w.start()
        check = Stream(seed, up)
        while check.pos < up:
            if cut_at is not None and check.pos >= cut_at and sent[0] >= min(cut_at, down):
                break
            d = c.recv(4096 if mode & M_SLOW_SVC else 262144)
            if not d:
                break
            if not check.check(d):
                stats.fail("A: stream seed %d: corrupt bytes at %d reached the service" % (seed, check.pos))
                return
            if mode & M_SLOW_SVC:
                time.sleep(random.uniform(0.002, 0.02))
        w.join(HANG_S + 15)
        if cut_at is not None:
            # The injected local reset: RST instead of a close.
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            stats.add("A.local_resets")
            return
        if check.pos == up:
            c.sendall(check.sha.digest())
            c.shutdown(socket.SHUT_WR)
            while c.recv(65536):
                pass

    def close(self):
        self.stop = True
        self.ls.close()


class UdpEcho:
    """UDP echo behind the agents."""

    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.port = self.s.getsockname()[1]
        self.s.settimeout(0.5)
        self.stop = False
        threading.Thread(target=self._loop, daemon=True, name="udp-echo").start()

    def _loop(self):
        while not self.stop:
            try:
                d, peer = self.s.recvfrom(65536)
                self.s.sendto(d, peer)
            except socket.timeout:
                continue
            except OSError:
                if self.stop:
                    return

    def close(self):
        self.stop = True
        self.s.close()


# --------------------------------------------------------------------------
# leg A: public clients

def size_pick(rng):
    """Mostly small, sometimes large: 0 B to 4 MiB."""
    r = rng.random()
    if r < 0.5:
        return rng.randint(0, 4096)
    if r < 0.85:
        return rng.randint(4096, 262144)
    return rng.randint(262144, 4 << 20)


def public_stream(port, seed, up, down, mode, rounds=0):
    """One stream (or request/response rounds) through S; returns
    (outcome, bytes up, bytes down): ok, cut or corrupt/hang (failures)."""
    start = now()
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return "cut", 0, 0, start
    c.settimeout(1.0)
    result = {"err": None}
    try:
        if mode & M_RR:
            return public_rounds(c, seed, up, down, rounds, start)
        payload = Stream(seed, up)

        def writer():
            try:
                c.sendall(HDR.pack(MAGIC, seed, up, down, mode, 0))
                while payload.pos < up:
                    c.sendall(payload.take(CHUNK))
                # No shutdown(SHUT_WR): the tunnel has no half-close (a
                # client's FIN becomes CLOSE, which ends both directions).
                # The service knows the length and closes when done.
            except OSError as e:
                result["err"] = e

        w = threading.Thread(target=writer, daemon=True)
        w.start()
        expect = Stream(seed ^ 0x5A5A5A5A, down)
        tail = b""
        last = now()
        while True:
            try:
                d = c.recv(4096 if mode & M_SLOW_CLIENT else 262144)
            except socket.timeout:
                if now() - last > HANG_S:
                    return "hang", payload.pos, expect.pos, start
                continue
            except OSError:
                break
            if not d:
                break
            last = now()
            if expect.pos < down:
                k = min(len(d), down - expect.pos)
                if not expect.check(d[:k]):
                    return "corrupt", payload.pos, expect.pos, start
                d = d[k:]
            tail += d
            if len(tail) > 32:
                return "corrupt", payload.pos, expect.pos, start
            if mode & M_SLOW_CLIENT:
                time.sleep(random.uniform(0.002, 0.02))
        w.join(HANG_S)
        if expect.pos == down and len(tail) == 32 and payload.pos == up:
            if tail != payload.sha.digest():
                return "corrupt", payload.pos, expect.pos, start
            return "ok", up, down, start
        return "cut", payload.pos, expect.pos, start
    finally:
        c.close()


def public_rounds(c, seed, up, down, rounds, start):
    try:
        c.sendall(HDR.pack(MAGIC, seed, up, down, M_RR, rounds))
        total_up = total_down = 0
        for r in range(rounds):
            c.sendall(Stream(seed * 1000 + r, up).take(up))
            total_up += up
            expect = Stream(seed * 1000 + r + 500, down)
            last = now()
            while expect.pos < down:
                try:
                    d = c.recv(down - expect.pos)
                except socket.timeout:
                    if now() - last > HANG_S:
                        return "hang", total_up, total_down, start
                    continue
                if not d:
                    return "cut", total_up, total_down, start
                last = now()
                if not expect.check(d):
                    return "corrupt", total_up, total_down, start
                total_down += len(d)
        return "ok", total_up, total_down, start
    except OSError:
        return "cut", 0, 0, start


def leg_a_streams(port, until, rng, rr=False):
    while now() < until:
        seed = rng.randrange(1 << 31)
        if rr:
            mode, rounds = M_RR, rng.randint(1, 40)
            up, down = rng.randint(1, 2048), rng.randint(1, 16384)
        else:
            mode, rounds = 0, 0
            up, down = size_pick(rng), size_pick(rng)
            if rng.random() < 0.05:
                mode |= M_RESET
            if rng.random() < 0.08:
                mode |= M_SLOW_SVC
                up = min(up, 300000)
            if rng.random() < 0.08:
                mode |= M_SLOW_CLIENT
                down = min(down, 300000)
        outcome, nu, nd, start = public_stream(port, seed, up, down, mode, rounds)
        kind = "rr" if rr else "streams"
        stats.add("A.%s" % kind)
        stats.add("A.bytes_up", nu)
        stats.add("A.bytes_down", nd)
        if outcome == "ok":
            stats.add("A.%s_ok" % kind)
        elif outcome == "cut":
            if (mode & M_RESET) or faults.overlaps("A", start, now()):
                stats.add("A.%s_cut" % kind)
                time.sleep(0.2)  # (while the agent is away: no tight loop)
            else:
                stats.fail("A: %s seed %d (up %d, down %d, mode %d) cut with no fault "
                           "(%d/%d bytes moved)" % (kind, seed, up, down, mode, nu, nd))
        else:
            stats.fail("A: %s seed %d (up %d, down %d, mode %d): %s after %d/%d bytes" % (
                kind, seed, up, down, mode, outcome, nu, nd))


def leg_a_udp(port, until, rng):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    sent = {}
    seq = 0
    while now() < until:
        seq += 1
        body = struct.pack(">Q", seq) + rng.randbytes(rng.randint(0, 1200))
        d = body + struct.pack(">I", zlib.crc32(body))
        sent[seq] = d
        try:
            s.sendto(d, ("127.0.0.1", port))
            stats.add("A.udp_sent")
        except OSError:
            pass
        try:
            while True:
                r, _ = s.recvfrom(65536)
                ok = len(r) >= 12 and struct.unpack(">I", r[-4:])[0] == zlib.crc32(r[:-4])
                q = struct.unpack(">Q", r[:8])[0] if ok else -1
                if not ok or (q in sent and sent[q] != r):
                    stats.fail("A: UDP: a datagram came back changed (%d bytes)" % len(r))
                else:
                    stats.add("A.udp_back")  # (a late one for a forgotten seq counts too)
                    sent.pop(q, None)
        except (socket.timeout, BlockingIOError):
            pass
        except OSError:
            pass
        if len(sent) > 2000:
            sent = dict(list(sent.items())[-1000:])
        time.sleep(0.02)
    s.close()


def leg_a_churn(port, until, rng):
    while now() < until:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            if rng.random() < 0.7:
                c.sendall(rng.randbytes(rng.randint(0, 100)))
            if rng.random() < 0.5:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            stats.add("A.churn")
        except OSError:
            stats.add("A.churn_refused")
        time.sleep(rng.uniform(0, 0.05))


def garbage_burst(listen_port, rng):
    """Junk at S: raw bytes, bad upgrades, a rogue agent sending junk frames."""
    for _ in range(rng.randint(3, 12)):
        try:
            c = socket.create_connection(("127.0.0.1", listen_port), timeout=5)
            c.settimeout(2)
            kind = rng.randrange(4)
            if kind == 0:
                c.sendall(rng.randbytes(rng.randint(1, 5000)))
            elif kind == 1:
                c.sendall(b"GET /ws/tunnel/%s HTTP/1.1\r\nHost: x\r\n\r\n" % rng.randbytes(8).hex().encode())
            elif kind == 2:
                c.sendall(b"GET /ws/tunnel/rogue HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                          b"Authorization: Bearer wrong\r\n\r\n")
            else:
                c.sendall(b"GET /ws/tunnel/rogue HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                          b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
                time.sleep(0.05)
                junk = rng.randbytes(rng.randint(1, 3000))
                c.sendall(bytes([0x82, 0x80 | min(len(junk), 125)]) + b"\0\0\0\0" + junk)
            try:
                while c.recv(65536):
                    pass
            except OSError:
                pass
            c.close()
            stats.add("A.garbage_conns")
        except OSError:
            pass


# --------------------------------------------------------------------------
# leg B: the fake runner

class Cut(Exception):
    """The session ended under a stream (a fault)."""


class LegB:
    """Agent B and the fake runner: one thread runs operations on the
    current session, another injects faults into it at random."""

    def __init__(self, agent, runner, rng, until, first):
        self.agent = agent
        self.runner = runner
        self.rng = rng
        self.frng = random.Random(rng.random())
        self.until = until
        self.echo = fr.TcpEcho()
        self.udp = UdpEcho()
        self.cid = 0
        self.session = first
        self.lock = threading.Lock()
        self.new_session = threading.Event()
        self.kinds = []

    def next_cid(self):
        self.cid += 1
        return self.cid

    # ---- receiving with the session's end in view
    def recv(self, s, cid, deadline):
        while True:
            m = s.try_recv_msg(cid, 0.5)
            if m is not None:
                return m
            if s.closed.is_set() or s.dropped:
                raise Cut()
            if now() > deadline:
                raise AssertionError("cid %d: no message from agent B within %ds" % (cid, HANG_S))

    def recv_data(self, s, cid, n, proto=fr.TCP):
        deadline = now() + HANG_S
        parts, got = [], 0
        while got < n:
            m = self.recv(s, cid, deadline)
            if m.type != fr.DATA or m.proto != proto:
                raise AssertionError("cid %d: %s after %d of %d bytes" % (cid, fr.describe_full(m), got, n))
            parts.append(m.payload)
            got += len(m.payload)
        return b"".join(parts)

    def run(self):
        while now() < self.until:
            with self.lock:
                s = self.session
            if s is None or s.closed.is_set() or s.dropped:
                s = self.runner.try_accept(HANG_S)
                if s is None:
                    stats.fail("B: agent B did not come back to the fake runner within %ds" % HANG_S)
                    return
                s.dropped = False
                stats.add("B.sessions")
                with self.lock:
                    self.session = s
                self.new_session.set()
            op = self.rng.random()
            start = now()
            try:
                if op < 0.55:
                    self.stream(s)
                elif op < 0.7:
                    self.datagrams(s)
                elif op < 0.85:
                    self.local_reset(s)
                else:
                    self.garbage(s)
            except ConnectionClosed:
                # The session ended while we sent (a fault): like a Cut.
                stats.add("B.cut")
                s.dropped = True
            except (Cut, AssertionError) as e:
                if isinstance(e, Cut) or s.closed.is_set() or s.dropped or \
                        faults.overlaps("B", start, now()):
                    stats.add("B.cut")
                    s.dropped = True
                else:
                    stats.fail("B: %s" % e)
            with s._cond:
                s.messages.clear()  # the soak keeps no history

    def stream(self, s):
        cid = self.next_cid()
        s.send_msg(fr.CONNECT, fr.TCP, cid, self.echo.port)
        m = self.recv(s, cid, now() + HANG_S)
        if m.type != fr.CONNECTED:
            raise AssertionError("stream cid %d: %s instead of CONNECTED" % (cid, fr.describe_full(m)))
        size = size_pick(self.rng) // 2
        data = self.rng.randbytes(size)
        if size:
            s.send_background(fr.data_messages(cid, data))
            got = self.recv_data(s, cid, size)
            if got != data:
                stats.fail("B: stream cid %d: %d bytes echoed changed" % (cid, size))
        s.send_msg(fr.CLOSE, fr.TCP, cid)
        stats.add("B.streams")
        stats.add("B.bytes", 2 * size)

    def datagrams(self, s):
        cid = self.next_cid()
        s.send_msg(fr.CONNECT, fr.UDP, cid, self.udp.port)
        m = self.recv(s, cid, now() + HANG_S)
        if m.type != fr.CONNECTED:
            raise AssertionError("UDP cid %d: %s instead of CONNECTED" % (cid, fr.describe_full(m)))
        for _ in range(self.rng.randint(1, 20)):
            d = self.rng.randbytes(self.rng.randint(0, 1400))
            s.send_msg(fr.DATA, fr.UDP, cid, 0, d)
            m = s.try_recv_msg(cid, 5)
            if m is None:
                stats.add("B.udp_lost")
                continue
            if m.type != fr.DATA or m.payload != d:
                stats.fail("B: UDP cid %d: %s instead of the echo" % (cid, fr.describe_full(m)))
                return
            stats.add("B.udp_back")
        s.send_msg(fr.CLOSE, fr.UDP, cid)

    def local_reset(self, s):
        """A local service that closes or resets: the agent must end the id
        with CLOSE (after the bytes it read, which must be right)."""
        n = self.rng.randint(0, 200000)
        svc = fr.TcpSendClose(bytes(n), reset=self.rng.random() < 0.5)
        try:
            cid = self.next_cid()
            s.send_msg(fr.CONNECT, fr.TCP, cid, svc.port)
            deadline = now() + HANG_S
            m = self.recv(s, cid, deadline)
            if m.type == fr.ERROR:
                # Reset before the agent saw its connect complete: ERROR
                # ("connection reset by peer") is the answer then.
                stats.add("B.local_resets")
                return
            if m.type != fr.CONNECTED:
                raise AssertionError("reset cid %d: %s instead of CONNECTED" % (cid, fr.describe_full(m)))
            got = 0
            while True:
                m = self.recv(s, cid, deadline)
                if m.type == fr.DATA:
                    if m.payload != bytes(len(m.payload)):
                        stats.fail("B: local close/reset cid %d: wrong bytes" % cid)
                    got += len(m.payload)
                    continue
                if m.type not in (fr.CLOSE, fr.ERROR) or got > n:
                    raise AssertionError("reset cid %d: %s after %d bytes" % (cid, fr.describe_full(m), got))
                break
            stats.add("B.local_resets")
        finally:
            svc.close()

    def garbage(self, s):
        rng = self.rng
        junk = []
        for _ in range(rng.randint(5, 40)):
            k = rng.randrange(8)
            cid = rng.randrange(1 << 31, 1 << 32)
            if k == 0:
                junk.append(rng.randbytes(rng.randint(0, 7)))
            elif k == 1:
                junk.append(fr.pack(rng.choice([0, 8, 9, 0x42, 0xff]), 0, cid) + rng.randbytes(rng.randint(0, 50)))
            elif k == 2:
                junk.append(fr.pack(fr.DATA, rng.choice([2, 7, 0xff]), cid, 0, b"x"))
            elif k == 3:
                junk.append(fr.pack(fr.DATA, fr.TCP, cid, 0, rng.randbytes(rng.randint(0, 300))))
            elif k == 4:
                junk.append(fr.pack(fr.CLOSE, rng.randrange(2), cid))
            elif k == 5:
                junk.append(fr.pack(fr.CONNECTED, 0, cid) if rng.random() < 0.5 else fr.pack(fr.PONG, 0, cid))
            elif k == 6:
                junk.append(rng.randbytes(rng.randint(1, 50)).hex())  # a text message
            else:
                junk.append(fr.pack(fr.PING, rng.randrange(2), cid))
        s.send_many(junk, 10)
        probe = 0xFFFFFF00
        s.send_msg(fr.PING, fr.TCP, probe)
        m = self.recv(s, probe, now() + HANG_S)
        if m.type != fr.PONG:
            raise AssertionError("after garbage: %s instead of PONG" % fr.describe_full(m))
        stats.add("B.garbage_bursts")
        with s._cond:
            for cid in [c for c in s._by_cid if c >= 1 << 31]:
                del s._by_cid[cid]  # replies to the junk (CLOSE for unknown DATA, PONGs)

    def faults_loop(self):
        while True:
            time.sleep(self.frng.uniform(8, 25))
            if now() >= self.until - 5:
                return
            with self.lock:
                s = self.session
            if s is None or s.closed.is_set():
                continue
            if not self.kinds:
                self.kinds = ["restart", "abort", "frozen"]
                self.frng.shuffle(self.kinds)
            kind = self.kinds.pop()  # every kind in turn, in a random order
            w = faults.begin("B")
            self.new_session.clear()
            try:
                if kind == "restart":
                    self.runner.stop()
                    time.sleep(self.frng.uniform(0.2, 2))
                    self.runner.start()
                elif kind == "abort":
                    s.drop()
                else:
                    # It stops reading and answering pings: the agent must
                    # give up on it (ping timeout) and dial again.
                    s.pause_reading()
                    s.ignore_pings()
                s.dropped = True
                if not self.new_session.wait(HANG_S + 15):
                    stats.fail("B: no new session within %ds after a %s" % (HANG_S + 15, kind))
                if kind == "frozen":
                    s.resume_reading()
                stats.add("B.fault_" + kind)
            finally:
                faults.end("B", w)

    def close(self):
        self.echo.close()
        self.udp.close()


# --------------------------------------------------------------------------
# resources

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
    global SAMPLE_S
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--out", default="build/soak")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    duration = args.minutes * 60
    if duration <= 300:
        SAMPLE_S = 2.0
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.endswith(".log"):
            os.unlink(os.path.join(args.out, f))
    print("soak: %.1f min, seed %d, output in %s" % (args.minutes, seed, args.out), flush=True)

    svc = StreamService()
    udp = UdpEcho()
    listen = fr.free_port()
    p_tcp = fr.free_port()
    p_udp = fr.free_port(kind=socket.SOCK_DGRAM)
    server = Proc("server", [args.server, "--listen", "127.0.0.1:%d" % listen, "--token", TOKEN,
                             "--expose", "tcp:127.0.0.1:%d=soak-a:%d" % (p_tcp, svc.port),
                             "--expose", "udp:127.0.0.1:%d=soak-a:%d" % (p_udp, udp.port),
                             "--ping-interval", "3", "--ping-timeout", "3",
                             "--udp-idle-timeout", "5", "--log-level", "info"], args.out)
    agent_opts = ["--reconnect-delay", "0.2", "--max-reconnect-delay", "1", "--ping-interval", "3",
                  "--ping-timeout", "3", "--udp-idle-timeout", "5", "--log-level", "info"]
    agent_a = Proc("agent-a", [args.agent, "--runner-url", "ws://127.0.0.1:%d" % listen,
                               "--container-id", "soak-a", "--token", TOKEN] + agent_opts, args.out)
    runner = fr.FakeRunner()
    agent_b = Proc("agent-b", [args.agent, "--runner-url", runner.url, "--container-id", "soak-b"]
                   + agent_opts, args.out)
    procs = {"agent-a": agent_a, "agent-b": agent_b, "server": server}
    problems = []
    idle, end, violations = {}, {}, []
    sampler = Sampler(procs, os.path.join(args.out, "samples.csv"), SAMPLE_S)
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
            fault_a(server, listen, rng)
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


KINDS_A = []


def fault_a(server, listen, rng):
    if not KINDS_A:
        KINDS_A.extend(["restart", "abort", "freeze", "garbage"])
        rng.shuffle(KINDS_A)
    kind = KINDS_A.pop()  # every kind in turn, in a random order
    w = faults.begin("A")
    try:
        if kind in ("restart", "abort"):
            before = server.log_count("agent connected id=soak-a")
            rc = server.stop(signal.SIGTERM if kind == "restart" else signal.SIGKILL)
            if kind == "restart" and rc != 0:
                stats.fail("A: tunnel-server exit status %s on SIGTERM" % rc)
            time.sleep(rng.uniform(0.1, 2))
            server.start()
            if not wait_for(lambda: server.log_count("agent connected id=soak-a") > before, HANG_S):
                stats.fail("A: agent A did not reconnect within %ds after a %s" % (HANG_S, kind))
        elif kind == "freeze":
            server.proc.send_signal(signal.SIGSTOP)
            time.sleep(rng.uniform(2, 8))
            server.proc.send_signal(signal.SIGCONT)
        else:
            garbage_burst(listen, rng)
            if not server.alive():
                stats.fail("A: tunnel-server died after a burst of garbage")
                server.start()
        stats.add("A.fault_" + kind)
    finally:
        faults.end("A", w, grace=2 * 6 + 5)


def report(args, seed, sampler, idle, end, problems):
    with stats.lock:
        c = dict(stats.c)
        failures = list(stats.failures)
    print()
    print("soak summary (%.1f min, seed %d)" % (args.minutes, seed))
    print("  leg A (tunnel-server): streams %d (ok %d, cut by faults %d), request/response %d (ok %d, cut %d)" % (
        c.get("A.streams", 0), c.get("A.streams_ok", 0), c.get("A.streams_cut", 0),
        c.get("A.rr", 0), c.get("A.rr_ok", 0), c.get("A.rr_cut", 0)))
    print("    bytes up %d, down %d; UDP %d sent, %d back; churn %d (+%d refused); "
          "local resets %d; garbage connections %d" % (
              c.get("A.bytes_up", 0), c.get("A.bytes_down", 0), c.get("A.udp_sent", 0),
              c.get("A.udp_back", 0), c.get("A.churn", 0), c.get("A.churn_refused", 0),
              c.get("A.local_resets", 0), c.get("A.garbage_conns", 0)))
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
