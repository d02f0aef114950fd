"""Fixtures for the integration suite.

runner        a started FakeRunner (ws://127.0.0.1:PORT); at teardown the test
              fails if the agent broke a protocol rule in any session
start_agent   start_agent(url, *extra_args, cid=CID, env=None, fast=True,
              nofile=None) -> agent.Agent; fast=True adds short reconnect
              delays and debug logging; nofile=(soft, hard) open-file limit; every agent is killed at teardown and its log tail is
              printed when the test failed
tunnel        runner + agent + the accepted session, as .runner .agent .session
services      factory for local services, closed at teardown:
              services.echo(held=False), .sink(**kw), .send_close(data, reset=False),
              .udp_echo(), .raw(mode)
"""
import collections
import faulthandler
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import agent as agent_mod  # noqa: E402
from agent import SLOW, T  # noqa: E402
import fake_runner as fr  # noqa: E402

CID = "c0ffee42"
FAST = ["--reconnect-delay", "0.1", "--max-reconnect-delay", "0.5", "--log-level", "debug"]


def pytest_configure(config):
    config.addinivalue_line("markers", "core: fast essential protocol tests (run under qemu)")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _watchdog():
    # A hung test dumps every thread's stack and ends the run; agents die
    # with pytest (setpriv --pdeathsig).
    faulthandler.dump_traceback_later(120 * SLOW, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def runner():
    r = fr.FakeRunner()
    try:
        yield r
    finally:
        r.close()
    bad = r.violations()
    assert not bad, "protocol violations by the agent:\n" + "\n".join(bad)


@pytest.fixture
def start_agent(request):
    agents = []

    def start(url, *extra, cid=CID, env=None, fast=True, nofile=None):
        args = []
        if url is not None:
            args += ["--runner-url", url]
        if cid is not None:
            args += ["--container-id", cid]
        if fast:
            args += FAST
        a = agent_mod.spawn(*(args + [str(x) for x in extra]), env=env, nofile=nofile)
        agents.append(a)
        return a

    yield start
    problems = []
    for a in agents:
        rc = a.stop()
        if rc is not None and rc < 0 and -rc not in (signal.SIGKILL, a.signalled or 0):
            problems.append("agent died by signal %d" % -rc)
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed or problems:
        for i, a in enumerate(agents):
            print("---- agent %d %s: log tail" % (i, " ".join(a.args)))
            print(agent_mod.tail(a.log(), 60))
    assert not problems, "; ".join(problems)


Tunnel = collections.namedtuple("Tunnel", "runner agent session")


@pytest.fixture
def tunnel(runner, start_agent):
    a = start_agent(runner.url)
    s = runner.accept(T(5))
    return Tunnel(runner, a, s)


class Services:
    def __init__(self):
        self.items = []

    def _add(self, x):
        self.items.append(x)
        return x

    def echo(self, held=False):
        return self._add(fr.TcpEcho(held))

    def sink(self, **kw):
        return self._add(fr.TcpSink(**kw))

    def send_close(self, data=b"", reset=False):
        return self._add(fr.TcpSendClose(data, reset))

    def udp_echo(self):
        return self._add(fr.UdpEcho())

    def udp_ticker(self, count=8, interval=0.2):
        return self._add(fr.UdpTicker(count, interval))

    def raw(self, mode):
        return self._add(fr.RawServer(mode))

    def close(self):
        for x in self.items:
            try:
                x.close()
            except Exception:
                pass


@pytest.fixture
def services():
    s = Services()
    yield s
    s.close()


# ---------------------------------------------------------------------------
# tunnel-server (server_util.py)
#
# start_server  start_server(*args, listen_port=None, listen_host="127.0.0.1",
#               log_level="debug", env=None, ready=True, listen=True)
#               -> server_util.Server, started and (ready=True) listening; every
#               server is killed at teardown, its log tail printed when the test
#               failed, and the test fails if one died by a signal it was not
#               sent or exited while nobody asked it to
# py_agents     py_agents(url, agent_id, token=None, ssl=None) ->
#               server_util.PyAgent (the Rust client stand-in), closed at teardown


@pytest.fixture
def start_server(request):
    import server_util

    servers = []

    def start(*args, **kw):
        s = server_util.Server(args, **kw)
        servers.append(s)
        return s

    yield start
    problems = []
    for s in servers:
        exited = s.proc.poll()
        rc = s.stop()
        if rc is not None and rc < 0 and -rc not in (signal.SIGKILL, s.signalled or 0):
            problems.append("tunnel-server died by signal %d" % -rc)
        elif exited is not None and s.signalled is None and not s.expect_exit:
            problems.append("tunnel-server exited by itself with code %d" % exited)
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed or problems:
        for i, s in enumerate(servers):
            print("---- tunnel-server %d %s: log tail" % (i, " ".join(s.args)))
            print(server_util.tail(s.log(), 60))
    assert not problems, "; ".join(problems)


@pytest.fixture
def py_agents():
    import server_util

    agents = []

    def start(url, agent_id, token=None, ssl=None):
        a = server_util.PyAgent(url, agent_id, token, ssl)
        agents.append(a)
        return a

    yield start
    for a in agents:
        a.close()
