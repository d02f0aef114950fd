"""Leg B of the soak: the Python fake runner drives agent B, and faults are
injected into the runner (see soak.py)."""
import random
import threading
import time

from websockets.exceptions import ConnectionClosed

from workload import HANG_S, UdpEcho, faults, now, size_pick, stats

import fake_runner as fr  # noqa: E402 (on the path workload set)


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
        late = set()  # datagrams counted lost: their echo may still come
        for _ in range(self.rng.randint(1, 20)):
            if s.closed.is_set() or s.dropped:
                raise Cut()  # a fault took the session: stop feeding it
            d = self.rng.randbytes(self.rng.randint(0, 1400))
            s.send_msg(fr.DATA, fr.UDP, cid, 0, d)
            m = s.try_recv_msg(cid, 5)
            while m is not None and m.type == fr.DATA and m.payload in late:
                late.discard(m.payload)
                stats.add("B.udp_late")
                m = s.try_recv_msg(cid, 5)
            if m is None:
                stats.add("B.udp_lost")
                late.add(d)
                continue
            if m.type != fr.DATA or m.payload != d:
                raise AssertionError("UDP cid %d: %s instead of the echo" % (cid, fr.describe_full(m)))
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
