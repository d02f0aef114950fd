#!/usr/bin/python3
"""Local demo: the agent between a runner stand-in and a small HTTP service.

Run by `./build.sh demo` (TUNNEL_CLIENT names the binary, TUNNEL_CLIENT_RUN an
optional emulator prefix). Starts, on 127.0.0.1 only:
  - a runner stand-in (the integration suite's fake runner, ws://),
  - a tiny HTTP service standing in for a port inside the container,
  - the agent, pointed at the stand-in.
Then plays the user side: CONNECT to the service's port through the tunnel,
send an HTTP request as DATA, read the reply, see the CLOSE, stop the agent
with SIGTERM. Exits 0 on success, 1 with a clear message otherwise; the whole
run is bounded (about 20 seconds at most).
"""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

import agent as agent_mod  # noqa: E402
import fake_runner as fr  # noqa: E402

DEADLINE = 19  # seconds for the whole demo
CONTAINER_ID = "demo-container"
STEP = min(5.0, 2.0 * agent_mod.SLOW)  # per-step wait


class DemoFailure(Exception):
    pass


class HttpService(fr._TcpService):
    """Answers one HTTP request per connection, then closes."""

    def serve(self, c, idx):
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self._recv(c, 4096)
            if not d:
                return
            buf += d
        first = buf.split(b"\r\n", 1)[0].decode("latin-1")
        body = ("hello from port %d inside the container; you asked for %r\n"
                % (self.port, first)).encode()
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n%s" % (len(body), body))


def say(text):
    print("demo: " + text, flush=True)


def run(state):
    runner = state["runner"] = fr.FakeRunner()
    service = state["service"] = HttpService()
    say("runner stand-in listening at %s" % runner.url)
    say("HTTP service listening on 127.0.0.1:%d" % service.port)
    if not os.path.exists(agent_mod.BINARY):
        raise DemoFailure("agent binary %s not found (build it with ./build.sh)" % agent_mod.BINARY)
    agent = state["agent"] = agent_mod.spawn(
        "--runner-url", runner.url, "--container-id", CONTAINER_ID,
        "--reconnect-delay", "0.2", "--log-level", "info")
    say("started %s" % " ".join(agent_mod.command(*agent.args)))

    try:
        session = runner.accept(STEP)
    except AssertionError:
        rc = agent.proc.poll()
        raise DemoFailure("the agent did not connect to the runner within %.0fs%s" % (
            STEP, "" if rc is None else " (it exited with code %d)" % rc))
    say("agent connected to the runner at %s%s" % (runner.url, session.path))

    cid = 1
    session.send_msg(fr.CONNECT, fr.TCP, cid, service.port)
    say("sent CONNECT client_id=%d to port %d" % (cid, service.port))
    m = session.try_recv_msg(cid, STEP)
    if m is None:
        raise DemoFailure("no answer to CONNECT within %.0fs" % STEP)
    if m.type == fr.ERROR:
        raise DemoFailure("agent answered ERROR: %s" % m.payload.decode("utf-8", "replace"))
    if m.type != fr.CONNECTED:
        raise DemoFailure("expected CONNECTED, got %s" % fr.describe(m))
    say("got CONNECTED for client_id=%d" % cid)

    request = b"GET /hello HTTP/1.0\r\nHost: container\r\n\r\n"
    session.send_msg(fr.DATA, fr.TCP, cid, 0, request)
    say("sent %d bytes as DATA: %r" % (len(request), request.split(b"\r\n")[0].decode()))

    reply = b""
    while True:
        m = session.try_recv_msg(cid, STEP)
        if m is None:
            raise DemoFailure("reply stalled after %d bytes" % len(reply))
        if m.type == fr.DATA:
            reply += m.payload
            continue
        if m.type == fr.CLOSE:
            break
        raise DemoFailure("unexpected %s" % fr.describe(m))
    say("got back %d bytes in DATA messages, then CLOSE (the service closed its end):"
        % len(reply))
    for line in reply.decode("utf-8", "replace").splitlines():
        print("    | " + line, flush=True)
    if not reply.startswith(b"HTTP/1.0 200 OK") or b"hello from port" not in reply:
        raise DemoFailure("the reply is not what the service sent")

    session.send_msg(fr.PING, fr.TCP, 0)
    m = session.try_recv_msg(0, STEP)
    if m is None or m.type != fr.PONG:
        raise DemoFailure("no PONG for a tunnel PING")
    say("tunnel PING answered with PONG")

    agent.signal(signal.SIGTERM)
    rc = agent.wait(STEP)
    if rc is None:
        raise DemoFailure("the agent did not exit within %.0fs of SIGTERM" % STEP)
    code = session.wait_closed(STEP) if rc == 0 else session.close_code
    say("sent SIGTERM: agent exited with code %d; the runner saw close code %s"
        % (rc, code))
    if rc != 0:
        raise DemoFailure("agent exit code %d, expected 0" % rc)
    if code != 1001:
        raise DemoFailure("close code %s, expected 1001 (going away)" % code)
    bad = runner.violations()
    if bad:
        raise DemoFailure("protocol violations: %s" % "; ".join(bad))


def main():
    state = {}

    def timeout(*_):
        print("demo: FAILED: took longer than %ds" % DEADLINE, file=sys.stderr, flush=True)
        cleanup(state, show_log=True)
        os._exit(1)

    signal.signal(signal.SIGALRM, timeout)
    signal.alarm(DEADLINE)
    t0 = time.monotonic()
    ok = False
    try:
        run(state)
        ok = True
    except DemoFailure as e:
        print("demo: FAILED: %s" % e, file=sys.stderr, flush=True)
    except Exception as e:  # a bug in the demo itself, still a clean failure
        print("demo: FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
        cleanup(state, show_log=not ok)
    if ok:
        say("success in %.1fs" % (time.monotonic() - t0))
        return 0
    return 1


def cleanup(state, show_log=False):
    a = state.get("agent")
    if a is not None:
        a.stop()
        if show_log:
            print("demo: agent log:\n" + agent_mod.tail(a.log(), 30), file=sys.stderr)
    for k in ("runner", "service"):
        x = state.get(k)
        if x is not None:
            try:
                x.close()
            except Exception:
                pass


if __name__ == "__main__":
    sys.exit(main())
