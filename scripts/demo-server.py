#!/usr/bin/python3
"""Local demo of tunnel-server: a public port on the "VPS" reaching a port
behind the agent, all on loopback.

Run by `./build.sh demo-server` (TUNNEL_SERVER / TUNNEL_CLIENT name the
binaries, TUNNEL_SERVER_RUN / TUNNEL_CLIENT_RUN an optional emulator prefix).
Starts, on 127.0.0.1 only:
  - a tiny HTTP service standing in for a port on the router,
  - tunnel-server with a token and one expose (public port -> that service),
  - the agent, dialling the server with the token.
Then fetches a page through the public port, stops the server with SIGTERM
(the agent sees close 1001) and the agent, and prints each step. Exits 0 on
success, 1 with the reason otherwise; the whole run is bounded.
"""
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

import agent as agent_mod  # noqa: E402
import server_util as su  # noqa: E402

AGENT_ID = "demo-router"
TOKEN = "demo-token-%s" % os.urandom(6).hex()
STEP = min(10.0, su.T(2.5))          # per-step wait
DEADLINE = int(8 * STEP + 10)        # the whole demo


class DemoFailure(Exception):
    pass


def say(text):
    print("demo-server: " + text, flush=True)


def fetch(port, path):
    """GET path through the public port; (status line, headers, body)."""
    with su.connect(port, STEP) as c:
        c.sendall(b"GET %s HTTP/1.0\r\nHost: demo\r\n\r\n" % path.encode())
        reply, how = su.recv_all(c, STEP)
    if how == "timeout":
        raise DemoFailure("the reply did not end within %.0fs (%d bytes so far)"
                          % (STEP, len(reply)))
    if not reply:
        raise DemoFailure("the public connection was closed with no reply (%s)" % how)
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return lines[0], lines[1:], body


def run(state):
    for name, path in (("tunnel-server", su.BINARY), ("agent", agent_mod.BINARY)):
        if not os.path.exists(path):
            raise DemoFailure("%s binary %s not found (build it with ./build.sh)" % (name, path))
    service = state["service"] = su.HttpService()
    say("HTTP service (the port behind the agent) on 127.0.0.1:%d" % service.port)

    public = su.free_port()
    expose = "127.0.0.1:%d=%s:%d" % (public, AGENT_ID, service.port)
    srv = state["server"] = su.Server(["--expose", expose, "--token", TOKEN],
                                      log_level="info", ready=False)
    say("started %s" % " ".join(su.command(*srv.args)).replace(TOKEN, "<token>"))
    try:
        srv.wait_ready(STEP)
    except AssertionError as e:
        raise DemoFailure(str(e))
    say("tunnel-server: agents at %s, public port 127.0.0.1:%d -> %s:%d"
        % (srv.url, public, AGENT_ID, service.port))

    a = state["agent"] = agent_mod.spawn(
        "--runner-url", srv.url, "--container-id", AGENT_ID, "--token", TOKEN,
        "--reconnect-delay", "0.2", "--log-level", "info")
    say("started %s" % " ".join(agent_mod.command(*a.args)).replace(TOKEN, "<token>"))
    if not srv.wait_log("agent connected id=%s " % AGENT_ID, STEP):
        rc = a.proc.poll()
        raise DemoFailure("the agent did not register within %.0fs%s" % (
            STEP, "" if rc is None else " (it exited with code %d)" % rc))
    say("the agent dialled in with its token: the server logged "
        "'agent connected id=%s'" % AGENT_ID)

    t0 = time.monotonic()
    status, headers, body = fetch(public, "/hello")
    say("GET /hello on the public port 127.0.0.1:%d (%.0f ms):" % (
        public, (time.monotonic() - t0) * 1000))
    print("    | " + status, flush=True)
    for h in headers:
        print("    | " + h, flush=True)
    for line in body.decode("utf-8", "replace").splitlines():
        print("    | " + line, flush=True)
    if not status.startswith("HTTP/1.0 200") or b"'GET /hello HTTP/1.0'" not in body:
        raise DemoFailure("the reply is not what the service sent")
    say("the page came through the tunnel: public port -> tunnel-server -> "
        "WebSocket -> agent -> 127.0.0.1:%d" % service.port)

    refused = su.http_upgrade(srv.port, AGENT_ID, "not-the-token")
    refused[2].close()
    say("an agent with a wrong token gets HTTP %d before any upgrade" % refused[0])
    if refused[0] != 401:
        raise DemoFailure("wrong token answered %d, expected 401" % refused[0])

    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait(STEP)
    if rc is None:
        raise DemoFailure("tunnel-server did not exit within %.0fs of SIGTERM" % STEP)
    took = time.monotonic() - t0
    saw = su.wait_until(lambda: "runner sent close code=1001" in a.log(), STEP)
    say("sent SIGTERM to tunnel-server: exit code %d after %.2fs; the agent %s"
        % (rc, took, "saw close code 1001" if saw else "saw NO close 1001"))
    if rc != 0:
        raise DemoFailure("tunnel-server exit code %d, expected 0" % rc)
    if not saw:
        raise DemoFailure("the agent did not get close code 1001")

    a.signal(signal.SIGTERM)
    rc = a.wait(STEP)
    if rc is None:
        raise DemoFailure("the agent did not exit within %.0fs of SIGTERM" % STEP)
    say("sent SIGTERM to the agent: exit code %d" % rc)
    if rc != 0:
        raise DemoFailure("agent exit code %d, expected 0" % rc)
    log = srv.log() + a.log()
    if TOKEN in log:
        raise DemoFailure("the token appeared in a log")


def cleanup(state, show_log=False):
    for key, name in (("server", "tunnel-server"), ("agent", "agent")):
        p = state.get(key)
        if p is None:
            continue
        p.stop()
        if show_log:
            print("demo-server: %s log:\n%s" % (name, su.tail(p.log(), 25)), file=sys.stderr)
    svc = state.get("service")
    if svc is not None:
        try:
            svc.close()
        except Exception:
            pass


def main():
    state = {}

    def timeout(*_):
        print("demo-server: FAILED: took longer than %ds" % DEADLINE, file=sys.stderr,
              flush=True)
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
        print("demo-server: FAILED: %s" % e, file=sys.stderr, flush=True)
    except (OSError, AssertionError) as e:
        print("demo-server: FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
    except Exception as e:  # a bug in the demo itself, still a clean failure
        print("demo-server: FAILED: %s: %s" % (type(e).__name__, e), file=sys.stderr, flush=True)
    finally:
        signal.alarm(0)
        cleanup(state, show_log=not ok)
    if ok:
        say("success in %.1fs" % (time.monotonic() - t0))
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
