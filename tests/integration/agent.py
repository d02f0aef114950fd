"""How the integration tests find and start the agent under test.

TUNNEL_CLIENT names the binary (default: the host build), TUNNEL_CLIENT_RUN
an optional runner prefix such as "qemu-mipsel-static" for cross builds.
"""
import os
import shlex
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get(
    "TUNNEL_CLIENT", os.path.join(ROOT, "build", "x86_64-linux-musl", "tunnel-client")
)
RUN_PREFIX = shlex.split(os.environ.get("TUNNEL_CLIENT_RUN", ""))


def _sanitized():
    try:
        with open(BINARY, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# An ASan build: its allocator keeps freed memory (quarantine) and its
# shadow is address space, so memory figures are not the agent's own.
SANITIZED = _sanitized()
# Emulated targets are slower; tests scale their waits by this factor.
SLOW = 4.0 if RUN_PREFIX and "valgrind" not in RUN_PREFIX[0] else (6.0 if RUN_PREFIX else 1.0)

# Variables of the agent that must not leak in from the caller's environment.
AGENT_ENV_VARS = (
    "RUNNER_URL", "CONTAINER_ID", "RECONNECT_DELAY", "MAX_RECONNECT_DELAY",
    "MAX_RECONNECT", "LOG_LEVEL", "CONNECT_TIMEOUT", "PING_INTERVAL",
    "PING_TIMEOUT", "UDP_IDLE_TIMEOUT", "STALL_TIMEOUT", "MAX_CONNECTIONS",
    "MAX_UDP", "MAX_MESSAGE", "SSL_CERT_FILE", "TLS_SERVER_NAME", "TLS_PIN",
    "TLS_CERT", "TLS_KEY", "TLS_INSECURE", "TUNNEL_TOKEN", "TUNNEL_HEADERS",
    "ALLOW_PORTS", "STATUS_PORT", "LOG_RING", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
    "https_proxy", "NO_PROXY", "no_proxy", "RESOLV_CONF", "HOSTS_FILE",
)


def command(*args):
    return RUN_PREFIX + [BINARY] + [str(a) for a in args]


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in AGENT_ENV_VARS}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(*args, env=None, timeout=10):
    """Run the agent to completion; returns CompletedProcess (text)."""
    return subprocess.run(
        command(*args), env=env if env is not None else clean_env(),
        capture_output=True, text=True, timeout=timeout * SLOW,
    )


def start(*args, env=None):
    """Start the agent in the background (stderr captured to a pipe)."""
    return subprocess.Popen(
        command(*args), env=env if env is not None else clean_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


# ---------------------------------------------------------------------------
# Long-running agents for the protocol tests: stderr goes to a file (a pipe
# could fill up with trace logs and block the agent), the process is killed
# if the test process dies (setpriv --pdeathsig) and at teardown.

import resource
import shutil
import signal
import tempfile
import time

_PDEATHSIG = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []


class Agent:
    """A running agent. .proc is the Popen, .log() its stderr so far."""

    def __init__(self, args, env=None, nofile=None):
        self.args = [str(a) for a in args]
        self._log = tempfile.TemporaryFile(mode="w+b")
        self.started_at = time.monotonic()
        limit = None
        if nofile is not None:
            # (soft, hard) open-file limit of the agent (of qemu under qemu)
            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)
        self.proc = subprocess.Popen(
            _PDEATHSIG + command(*self.args),
            env=env if env is not None else clean_env(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
            preexec_fn=limit)
        self.signalled = None

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        """Wait for exit; returns the exit code, None if still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        self.signalled = sig
        if self.alive():
            self.proc.send_signal(sig)

    def assert_alive(self):
        rc = self.proc.poll()
        assert rc is None, "agent exited with %s; log tail:\n%s" % (rc, tail(self.log()))

    def stop(self):
        """Kill if still running (teardown); returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(10)

    def vm_kib(self, field="VmHWM"):
        """VmHWM/VmRSS of the agent process in KiB (of the emulator under qemu)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return None


    def cpu_seconds(self):
        """User + system CPU time the agent process has used so far."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def spawn(*args, env=None, nofile=None):
    """Start the agent in the background with stderr to a file; see Agent."""
    return Agent(args, env=env, nofile=nofile)


def T(seconds):
    """A wait of `seconds` on the host, scaled for emulated/valgrind runs."""
    return seconds * SLOW
