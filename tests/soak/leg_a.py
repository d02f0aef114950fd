"""Leg A of the soak: public clients through tunnel-server and agent A to
the local services, and the faults injected into the server (see soak.py)."""
import random
import signal
import socket
import ssl
import struct
import threading
import time
import zlib

from workload import (CHUNK, HANG_S, HDR, MAGIC, M_RESET, M_RR, M_SLOW_CLIENT, M_SLOW_SVC,
                      TOKEN, Stream, faults, now, send_all, size_pick, stats, wait_for)


# Called with a tag when a stream hangs or is corrupt, while the state that
# made it is still there (soak.py: the server's /status and agent A's
# SIGUSR1 status lines into the output directory and log).
ON_TROUBLE = []


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
                send_all(c, HDR.pack(MAGIC, seed, up, down, mode, 0))
                while payload.pos < up:
                    held = send_all(c, payload.take(CHUNK))
                    stats.high("A.held_most", held)
                    if held > 1.0:  # (where a 1 s sendall() timeout would give up)
                        stats.add("A.held_back")
                        if not faults.overlaps("A", now() - held, now()):
                            stats.add("A.held_back_nofault")
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
                    why = "hang" if result["err"] is None else "hang (writer: %r)" % result["err"]
                    return why, payload.pos, expect.pos, start
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
        send_all(c, HDR.pack(MAGIC, seed, up, down, M_RR, rounds))
        total_up = total_down = 0
        for r in range(rounds):
            send_all(c, Stream(seed * 1000 + r, up).take(up))
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
            for hook in ON_TROUBLE:
                hook("%s-%d" % (outcome.split()[0], seed))


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


def garbage_burst(listen_port, rng, tls):
    """Junk at S: raw bytes, bad upgrades, a rogue agent sending junk frames.
    On a wss:// listener, half the connections send it inside TLS (which
    is not verified), the rest raw, before any handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for _ in range(rng.randint(3, 12)):
        try:
            c = socket.create_connection(("127.0.0.1", listen_port), timeout=5)
            c.settimeout(2)
            if tls and rng.random() < 0.5:
                c = ctx.wrap_socket(c, server_hostname="localhost")
                stats.add("A.garbage_in_tls")
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

KINDS_A = []


def fault_a(server, listen, rng, tls):
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
            garbage_burst(listen, rng, tls)
            if not server.alive():
                stats.fail("A: tunnel-server died after a burst of garbage")
                server.start()
        stats.add("A.fault_" + kind)
    finally:
        faults.end("A", w, grace=2 * 6 + 5)
