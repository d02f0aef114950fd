#!/usr/bin/python3
"""Throughput benchmark: prints figures, asserts nothing.

Starts a stand-in runner (python3-websockets) and local TCP services on
loopback, runs the agent between them and measures, for each scenario, the
wall time, MiB/s, the agent's CPU seconds (utime+stime from /proc) and its
peak RSS (VmHWM):
  upload    runner -> agent -> local sink      (DATA of 64 KiB)
  download  local source -> agent -> runner
  echo      runner -> agent -> local echo -> agent -> runner
  many      N parallel connections, each echoing a small request

usage: tests/bench/throughput.py [--mib N] [--conns N] [--binary PATH]
The binary defaults to $TUNNEL_CLIENT or build/x86_64-linux-musl/tunnel-client.
"""
import argparse
import asyncio
import os
import socket
import struct
import subprocess
import sys
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONNECT, CONNECTED, DATA, CLOSE, ERROR = 1, 2, 3, 4, 5
CHUNK = 65536


def pack(t, cid, port=0, payload=b""):
    return struct.pack(">BBIH", t, 0, cid, port) + payload


def proc_stats(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return cpu, hwm


class Bench:
    def __init__(self, binary, mib, conns):
        self.binary, self.total, self.conns = binary, mib << 20, conns
        self.session = asyncio.get_event_loop().create_future()

    async def handler(self, ws, path):
        if not self.session.done():
            self.session.set_result(ws)
        await ws.wait_closed()

    async def run(self):
        server = await websockets.serve(self.handler, "127.0.0.1", 0, max_size=None,
                                        ping_interval=None)
        port = server.sockets[0].getsockname()[1]
        agent = subprocess.Popen([self.binary, "-r", "ws://127.0.0.1:%d" % port,
                                  "-c", "bench", "--log-level", "warn"])
        try:
            ws = await asyncio.wait_for(self.session, 10)
            for name in ("upload", "download", "echo", "many"):
                cpu0, _ = proc_stats(agent.pid)
                t0 = time.monotonic()
                moved = await asyncio.wait_for(getattr(self, name)(ws), 300)
                dt = time.monotonic() - t0
                cpu1, hwm = proc_stats(agent.pid)
                print("%-9s %8.1f MiB %7.2f s %8.1f MiB/s  agent cpu %5.2f s  peak rss %5d KiB"
                      % (name, moved / 1048576, dt, moved / 1048576 / dt, cpu1 - cpu0, hwm))
        finally:
            agent.terminate()
            agent.wait(5)
            server.close()

    async def local_server(self, on_conn):
        srv = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        return srv, srv.sockets[0].getsockname()[1]

    async def open(self, ws, cid, port):
        await ws.send(pack(CONNECT, cid, port))
        while True:
            m = await ws.recv()
            if m[0] == CONNECTED and struct.unpack(">I", m[2:6])[0] == cid:
                return
            assert m[0] != ERROR, m

    async def upload(self, ws):
        done = asyncio.get_event_loop().create_future()

        async def sink(r, w):
            n = 0
            while n < self.total:
                d = await r.read(1 << 20)
                if not d:
                    break
                n += len(d)
            done.set_result(n)
            w.close()
        srv, port = await self.local_server(sink)
        await self.open(ws, 1, port)
        block = os.urandom(CHUNK)
        for _ in range(self.total // CHUNK):
            await ws.send(pack(DATA, 1, 0, block))
        n = await done
        await ws.send(pack(CLOSE, 1))
        srv.close()
        return n

    async def download(self, ws):
        async def source(r, w):
            block = os.urandom(1 << 20)
            for _ in range(self.total >> 20):
                w.write(block)
                await w.drain()
            w.close()
        srv, port = await self.local_server(source)
        await self.open(ws, 2, port)
        n = 0
        while True:
            m = await ws.recv()
            if m[0] == DATA:
                n += len(m) - 8
            elif m[0] == CLOSE:
                break
        srv.close()
        return n

    async def echo(self, ws):
        async def echo(r, w):
            while True:
                d = await r.read(1 << 20)
                if not d:
                    break
                w.write(d)
                await w.drain()
            w.close()
        srv, port = await self.local_server(echo)
        await self.open(ws, 3, port)
        block = os.urandom(CHUNK)

        async def sender():
            for _ in range(self.total // CHUNK):
                await ws.send(pack(DATA, 3, 0, block))
        task = asyncio.ensure_future(sender())
        n = 0
        while n < self.total:
            m = await ws.recv()
            if m[0] == DATA:
                n += len(m) - 8
        await task
        await ws.send(pack(CLOSE, 3))
        srv.close()
        return n * 2

    async def many(self, ws):
        async def echo(r, w):
            d = await r.read(100)
            w.write(d)
            await w.drain()
            w.close()
        srv, port = await self.local_server(echo)
        ids = range(100, 100 + self.conns)
        for cid in ids:
            await ws.send(pack(CONNECT, cid, port))
        pending, n = set(ids), 0
        while pending:
            m = await ws.recv()
            cid = struct.unpack(">I", m[2:6])[0]
            if m[0] == CONNECTED:
                await ws.send(pack(DATA, cid, 0, b"x" * 64))
            elif m[0] == DATA:
                n += len(m) - 8
                pending.discard(cid)
        for cid in ids:
            await ws.send(pack(CLOSE, cid))
        srv.close()
        return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--binary", default=os.environ.get(
        "TUNNEL_CLIENT", os.path.join(ROOT, "build", "x86_64-linux-musl", "tunnel-client")))
    a = ap.parse_args()
    print("agent %s (%d bytes)" % (a.binary, os.path.getsize(a.binary)))
    asyncio.get_event_loop().run_until_complete(Bench(a.binary, a.mib, a.conns).run())


if __name__ == "__main__":
    sys.exit(main())
