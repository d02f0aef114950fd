"""Resource exhaustion: what the agent does when the system says no.

Descriptors (a low RLIMIT_NOFILE) are covered in test_session.py
(test_out_of_descriptors_gets_error_and_tunnel_stays: ERROR with the
system's reason, live connections and the tunnel go on, a freed descriptor
serves again) and, for tunnel-server, test_server_admin.py. This file takes
memory: an address-space limit (RLIMIT_AS) lowered on the running agent to
what it has mapped already, then raised back.
"""
import os
import resource
import socket
import time

import pytest

from agent import RUN_PREFIX, SANITIZED, T
from fake_runner import CONNECT, CONNECTED, DATA, ERROR, TCP, describe_full


needs_plain_process = pytest.mark.skipif(
    bool(RUN_PREFIX) or SANITIZED,
    reason="the address space of an emulator, valgrind or an ASan build is not the agent's own")


def _vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


class Backlog:
    """A listener that never accepts: connects to it complete in the
    kernel (up to the backlog) without a thread per connection."""

    def __init__(self, backlog=4096):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(backlog)
        self.port = self.s.getsockname()[1]

    def close(self):
        self.s.close()


def _echo_ok(s, cid, data, timeout):
    s.send_msg(DATA, TCP, cid, 0, data)
    return s.recv_data(cid, len(data), timeout) == data


@needs_plain_process
def test_out_of_memory_gets_error_and_tunnel_stays(runner, start_agent, services):
    """With its address space capped at what it has mapped (prlimit on the
    running agent), a CONNECT the agent cannot allocate for gets ERROR;
    the connections it has keep carrying data both ways and the tunnel
    answers; once the limit is lifted, CONNECT works again."""
    a = start_agent(runner.url)
    s = runner.accept(T(5))
    echo = services.echo()
    # A live connection, with bulk both ways first: the buffers on the
    # data path reach their working size before memory runs out.
    s.open_tcp(1, echo.port, T(5))
    bulk = os.urandom(3 << 20)
    s.send_data(1, bulk, timeout=T(30))
    assert s.recv_data(1, len(bulk), T(30)) == bulk
    backlog = Backlog()
    old = resource.prlimit(a.pid, resource.RLIMIT_AS)
    try:
        mapped = _vm_kib(a.pid, "VmSize") * 1024
        resource.prlimit(a.pid, resource.RLIMIT_AS, (mapped, old[1]))
        refused = None
        opened = []
        for cid in range(100, 3100):
            s.send_msg(CONNECT, TCP, cid, backlog.port)
            m = s.recv_msg(cid, T(5))
            if m.type == ERROR:
                refused = m
                break
            assert (m.type, m.proto) == (CONNECTED, TCP), describe_full(m)
            opened.append(cid)
        assert refused is not None, (
            "3000 CONNECTs under an address-space limit of %d KiB all succeeded" % (mapped >> 10))
        assert b"memory" in refused.payload.lower(), describe_full(refused)
        # What was open still works, and so does the tunnel.
        a.assert_alive()
        assert _echo_ok(s, 1, b"still here", T(5))
        assert _echo_ok(s, 1, os.urandom(200000), T(10))
        s.pingpong(timeout=T(5))
        assert s.ping(T(5)), "no WebSocket pong under the limit"
        assert runner.try_accept(0) is None, "the tunnel was dropped"
    finally:
        resource.prlimit(a.pid, resource.RLIMIT_AS, old)
        backlog.close()
    # Memory is back: a new connection opens and carries data.
    s.open_tcp(5000, echo.port, T(5))
    assert _echo_ok(s, 5000, b"recovered", T(5))
    assert _echo_ok(s, 1, b"and the old one", T(5))
    a.assert_alive()


@needs_plain_process
def test_memory_limit_at_start_of_a_session(runner, start_agent, services):
    """A limit set while no tunnel is up: the agent dials anyway (or retries
    with backoff), never crashes, and serves once the limit is lifted."""
    a = start_agent(runner.url)
    s = runner.accept(T(5))
    old = resource.prlimit(a.pid, resource.RLIMIT_AS)
    try:
        mapped = _vm_kib(a.pid, "VmSize") * 1024
        resource.prlimit(a.pid, resource.RLIMIT_AS, (mapped, old[1]))
        s.drop()  # the next session must be set up under the limit
        time.sleep(T(2))
        a.assert_alive()
    finally:
        resource.prlimit(a.pid, resource.RLIMIT_AS, old)
    deadline = time.monotonic() + T(10)
    while True:
        s2 = runner.try_accept(0.2)
        if s2 is not None and not s2.closed.is_set():
            break
        assert time.monotonic() < deadline, "no working session after the limit was lifted"
    echo = services.echo()
    s2.open_tcp(1, echo.port, T(5))
    assert _echo_ok(s2, 1, b"after", T(5))
