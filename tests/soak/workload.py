"""The soak's shared parts: constants, counters, the fault log, processes
under test, the local services and the stream sizes (see soak.py)."""
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

# The fake runner (tests/integration/fake_runner.py), for the modules that
# import this one first.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

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

    def high(self, key, v):
        """Keep the largest v seen under key."""
        with self.lock:
            self.c[key] = max(self.c[key], v)

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


def send_all(c, data):
    """sendall() bounded by progress, not by total time: the tunnel may hold
    a stream back for seconds (another connection's slow service pauses
    the WebSocket, up to the stall timeout), which is backpressure, not a
    hang. Raises socket.timeout after HANG_S with no byte taken. Returns
    the seconds it took."""
    view, start = memoryview(data), now()
    last = start
    while view:
        try:
            n = c.send(view)
        except socket.timeout:
            if now() - last > HANG_S:
                raise
            continue
        view, last = view[n:], now()
    return now() - start


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

