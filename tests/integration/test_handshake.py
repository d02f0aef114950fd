"""The opening handshake against hand-written runner responses."""
import time

import pytest

from agent import T
from fake_runner import PING, PONG, TCP, pack, server_frame, unpack

PING_FRAME = server_frame(0x2, pack(PING, TCP, 0x1234))


def is_pong(op, payload):
    return op == 0x2 and len(payload) >= 8 and unpack(payload)[:3] == (PONG, TCP, 0x1234)


@pytest.mark.core
def test_first_message_in_the_same_segment_as_101(start_agent, services):
    """Bytes after the 101 response's blank line, in the same TCP segment,
    are the first WebSocket frame and must not be lost."""
    def up(sock, idx, response):
        sock.sendall(response + PING_FRAME)
    raw = services.raw("upgrade_silent")
    raw.on_upgrade = up
    start_agent(raw.url)
    raw.wait_connections(1, T(5))
    raw.wait_frame(0, is_pong, T(5))


def test_101_trickled_byte_by_byte(start_agent, services):
    """A 101 response (and the next frame) arriving a byte at a time."""
    def up(sock, idx, response):
        for i in range(len(response)):
            sock.sendall(response[i:i + 1])
            time.sleep(0.002)
        sock.sendall(PING_FRAME[:3])
        time.sleep(0.05)
        sock.sendall(PING_FRAME[3:])
    raw = services.raw("upgrade_silent")
    raw.on_upgrade = up
    start_agent(raw.url)
    raw.wait_connections(1, T(5))
    raw.wait_frame(0, is_pong, T(5))


def test_101_header_case_and_extra_headers(start_agent, services):
    """Header names are case-insensitive, values like "WebSocket" too, and
    extra headers (as uvicorn sends) are fine."""
    def up(sock, idx, response):
        accept = [l for l in response.decode().split("\r\n")
                  if l.lower().startswith("sec-websocket-accept")][0].split(":", 1)[1].strip()
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nserver: uvicorn\r\n"
                      "date: Sat, 22 Nov 2026 04:00:00 GMT\r\nupgrade: WebSocket\r\n"
                      "CONNECTION: upgrade\r\nsec-websocket-accept: %s\r\n"
                      "x-extra: %s\r\n\r\n" % (accept, "y" * 300)).encode() + PING_FRAME)
    raw = services.raw("upgrade_silent")
    raw.on_upgrade = up
    start_agent(raw.url)
    raw.wait_connections(1, T(5))
    raw.wait_frame(0, is_pong, T(5))


@pytest.mark.core
def test_wrong_accept_key_is_refused(start_agent, services):
    """A 101 with a wrong Sec-WebSocket-Accept is not a tunnel: the agent
    does not answer frames on it and tries again."""
    def up(sock, idx, response):
        bad = response.replace(b"Sec-WebSocket-Accept: ", b"Sec-WebSocket-Accept: x")
        sock.sendall(bad + PING_FRAME)
    raw = services.raw("upgrade_silent")
    raw.on_upgrade = up
    a = start_agent(raw.url)
    raw.wait_connections(2, T(5))
    assert not [f for f in raw.frames[0] if f[0] == 0x2], raw.frames[0]
    a.assert_alive()


def test_reserved_opcode_ends_session(start_agent, services):
    """A frame with a reserved opcode is a protocol error: the session ends
    (close frame 1002 expected) and the agent reconnects."""
    def up(sock, idx, response):
        sock.sendall(response + server_frame(0x3, b"??"))
    raw = services.raw("upgrade_silent")
    raw.on_upgrade = up
    a = start_agent(raw.url)
    raw.wait_connections(2, T(5))
    closes = [p for op, p in raw.frames[0] if op == 0x8]
    if closes and len(closes[0]) >= 2:
        assert int.from_bytes(closes[0][:2], "big") == 1002, closes
    a.assert_alive()
