"""Backpressure: slow and stuck local services (DESIGN.md, principle 3)."""
import hashlib
import os
import struct
import time

import pytest

from agent import BINARY, RUN_PREFIX, SANITIZED, SLOW, T
import fake_runner as fr
from fake_runner import CLOSE, CONNECT, CONNECTED, DATA, ERROR, TCP, describe_full, pack

MEM_BOUND_KIB = 16 * 1024


def memory_unmeasurable():
    """Why the agent's RSS cannot be judged here, or None."""
    if RUN_PREFIX:
        return "the pid is %s's, not the agent's" % RUN_PREFIX[0]
    if os.environ.get("ASAN_OPTIONS") or "sanitize" in BINARY:
        return "ASan shadow memory inflates RSS"
    return None


def chunks(total, seed_block, sha):
    """DATA payloads of 64 KiB for `total` bytes: a sequence number plus a
    slice of a random block; updates sha with every payload byte."""
    n = 0
    i = 0
    while n < total:
        size = min(65536, total - n)
        off = (i * 4099) % (len(seed_block) - 65536)
        payload = struct.pack(">I", i) + seed_block[off:off + size - 4]
        sha.update(payload)
        yield payload
        n += size
        i += 1


def test_slow_reader_gets_every_byte_with_bounded_memory(tunnel, services):
    """The runner pushes 64 MiB to a local service that reads slowly: every
    byte arrives intact and in order, and the agent's peak RSS stays small
    (it stops reading the WebSocket instead of queueing)."""
    s, a = tunnel.session, tunnel.agent
    total = (64 if not RUN_PREFIX else 16) << 20  # MiB
    sink = services.sink(read_size=65536, delay=0.002, rcvbuf=65536, keep=False,
                         pauses={4 << 20: 0.5, 24 << 20: 0.5})
    s.open_tcp(1, sink.port, T(5))
    want = hashlib.sha256()
    block = os.urandom(1 << 20)
    msgs = (pack(DATA, TCP, 1, 0, p) for p in chunks(total, block, want))
    fut = s.send_background(msgs)
    peak = 0
    deadline = time.monotonic() + T(90)
    while not fut.done():
        assert time.monotonic() < deadline, "push of %d MiB did not finish" % (total >> 20)
        rss = a.vm_kib("VmRSS") or 0
        peak = max(peak, rss)
        time.sleep(0.1)
    fut.result(0)
    s.send_msg(CLOSE, TCP, 1)
    assert sink.eof[0].wait(T(30)), "sink got %d of %d bytes" % (sink.count[0], total)
    assert sink.count[0] == total
    assert sink.sha[0].hexdigest() == want.hexdigest(), "bytes corrupted or reordered"
    hwm = max(a.vm_kib("VmHWM"), peak)
    print("agent VmHWM %d KiB, sampled VmRSS peak %d KiB" % (hwm, peak))
    why = memory_unmeasurable()
    if why:
        print("memory bound not checked: " + why)
    else:
        assert hwm < MEM_BOUND_KIB, "agent peak RSS %d KiB for a %d MiB push" % (
            hwm, total >> 20)
    s.pingpong(timeout=T(5))


def test_slow_runner_bounded_memory(tunnel, services):
    """A local service pushes 64 MiB while the runner stops reading for a
    while: the agent stops reading the local socket instead of queueing, all
    bytes reach the runner intact, peak RSS stays small."""
    s, a = tunnel.session, tunnel.agent
    total = (64 if not RUN_PREFIX else 16) << 20  # MiB
    block = os.urandom(1 << 20)
    data = block * (total >> 20)
    want = hashlib.sha256(data).hexdigest()
    svc = services.send_close(data)
    del data
    s.pause_reading()
    s.send_msg(CONNECT, TCP, 3, svc.port)
    time.sleep(T(1.5))
    peak = a.vm_kib("VmRSS") or 0
    s.resume_reading()
    m = s.recv_msg(3, T(5))
    assert m.type == CONNECTED, describe_full(m)
    got = hashlib.sha256()
    n = 0
    paused_again = False
    deadline = time.monotonic() + T(60)
    while True:
        m = s.recv_msg(3, max(0.1, deadline - time.monotonic()))
        if m.type == CLOSE:
            break
        assert m.type == DATA, describe_full(m)
        got.update(m.payload)
        n += len(m.payload)
        if not paused_again and n >= total // 4:
            paused_again = True  # a second stall, mid-stream
            s.pause_reading()
            time.sleep(0.5)
            peak = max(peak, a.vm_kib("VmRSS") or 0)
            s.resume_reading()
    assert n == total
    assert got.hexdigest() == want, "bytes corrupted or reordered"
    hwm = max(a.vm_kib("VmHWM"), peak)
    print("agent VmHWM %d KiB" % hwm)
    why = memory_unmeasurable()
    if why:
        print("memory bound not checked: " + why)
    else:
        assert hwm < MEM_BOUND_KIB, "agent peak RSS %d KiB while the runner was slow" % hwm


@pytest.mark.core
def test_stall_timeout_errors_stuck_connection(runner, start_agent, services):
    """A service that never reads, --stall-timeout 1: the agent sends ERROR for
    that id within a few seconds, discards its bytes, and keeps serving the
    other ids."""
    start_agent(runner.url, "--stall-timeout", "1")
    s = runner.accept(T(5))
    stuck = services.sink(never_read=True, rcvbuf=4096)
    echo = services.echo()
    s.open_tcp(1, stuck.port, T(5))
    s.open_tcp(2, echo.port, T(5))
    total = 24 << 20
    fut = s.send_background(fr.data_messages(1, b"\x5a" * total))
    t0 = time.monotonic()
    m = s.recv_msg(1, T(8))
    took = time.monotonic() - t0
    assert (m.type, m.proto, m.cid) == (ERROR, TCP, 1), describe_full(m)
    print("ERROR after %.2fs: %r" % (took, m.payload))
    fut.result(T(30))  # the rest of the push is drained (dropped), not stuck
    s.send_msg(DATA, TCP, 2, 0, b"others still served")
    assert s.recv_data(2, 19, T(5)) == b"others still served"
    s.pingpong(timeout=T(5))
    for x in s.pending(1):
        assert x.type == CLOSE, describe_full(x)


def test_slow_but_steady_reader_is_not_stalled(runner, start_agent, services):
    """--stall-timeout is about a service that blocks: one that keeps reading,
    slowly, while the runner keeps its queue full for several stall periods,
    is not closed with ERROR."""
    start_agent(runner.url, "--stall-timeout", "1")
    s = runner.accept(T(5))
    sink = services.sink(read_size=16384, delay=0.004, rcvbuf=16384, keep=False)
    s.open_tcp(1, sink.port, T(5))
    total = 10 << 20  # about 3 s at the sink's pace
    want = hashlib.sha256()
    block = os.urandom(1 << 20)
    fut = s.send_background(pack(DATA, TCP, 1, 0, p) for p in chunks(total, block, want))
    deadline = time.monotonic() + T(60)
    while not fut.done():
        assert time.monotonic() < deadline, "push did not finish"
        bad = [m for m in s.pending(1) if m.type != DATA]
        assert not bad, "steady reader closed: %s" % describe_full(bad[0])
        time.sleep(0.1)
    fut.result(0)
    s.send_msg(CLOSE, TCP, 1)
    assert sink.eof[0].wait(T(30))
    assert sink.count[0] == total and sink.sha[0].hexdigest() == want.hexdigest()
    assert not s.pending(1), [describe_full(m) for m in s.pending(1)]


def test_no_busy_loop_while_tunnel_is_full_and_service_closed(tunnel, services):
    """A service sends bytes and closes while the runner is not reading: the
    agent cannot take the input yet and must sleep in poll (its hang-up must
    not wake it again and again), then deliver everything and one CLOSE."""
    s, a = tunnel.session, tunnel.agent
    total = (64 if not RUN_PREFIX else 16) << 20  # more than the kernel buffers
    data = os.urandom(1 << 20) * (total >> 20)
    svc = services.send_close(data)
    s.pause_reading()
    s.send_msg(CONNECT, TCP, 5, svc.port)
    time.sleep(T(1))
    cpu0 = a.cpu_seconds()
    time.sleep(1.5)
    used = a.cpu_seconds() - cpu0
    s.resume_reading()
    assert used < 0.1 * SLOW, "agent used %.2fs CPU in 1.5s while waiting" % used
    assert s.recv_msg(5, T(5)).type == CONNECTED
    got = bytearray()
    while True:
        m = s.recv_msg(5, T(30))
        if m.type == CLOSE:
            break
        got += m.payload
    assert len(got) == total and bytes(got) == data


def burst_is_given_back(a, s, services):
    """A burst grows the tunnel's buffers; soon after it they are given
    back (RSS falls by at least half the growth), and the tunnel still
    carries data after that."""
    echo = services.echo()
    s.open_tcp(1, echo.port, T(5))
    base = a.vm_kib("VmRSS")
    bulk = os.urandom(8 << 20)
    s.send_data(1, bulk, timeout=T(30))
    assert s.recv_data(1, len(bulk), T(30)) == bulk
    grown = a.vm_kib("VmRSS")
    if RUN_PREFIX or SANITIZED or not base or not grown:
        pytest.skip("the RSS is the emulator's, valgrind's or ASan's")
    assert grown > base + 256, "no growth to give back (%d -> %d KiB)" % (base, grown)
    # The tunnel's buffers are most of the growth; what the allocator
    # keeps of the connection's queue chunks is not counted on.
    limit = base + (grown - base) // 2
    deadline = time.monotonic() + T(15)
    while a.vm_kib("VmRSS") > limit:
        assert time.monotonic() < deadline, (
            "RSS still %d KiB %ds after the burst (%d before it, %d after)" % (
                a.vm_kib("VmRSS"), T(15), base, grown))
        time.sleep(0.2)
    small = os.urandom(100000)
    s.send_data(1, small, timeout=T(10))
    assert s.recv_data(1, len(small), T(10)) == small


def test_memory_given_back_when_the_runner_goes_quiet(runner, start_agent, services):
    a = start_agent(runner.url, "--ping-interval", "1")
    burst_is_given_back(a, runner.accept(T(5)), services)


def test_memory_given_back_while_the_runner_pings(start_agent, services):
    """The real runner pings every 20 s, more often than the agent's own
    30 s, so the agent never goes quiet long enough to ping: the buffers
    must be given back all the same."""
    runner = fr.FakeRunner(ping_interval=1)
    try:
        a = start_agent(runner.url)
        burst_is_given_back(a, runner.accept(T(5)), services)
    finally:
        runner.close()
