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
# Emulated targets are slower; tests scale their waits by this factor.
SLOW = 4.0 if RUN_PREFIX and "valgrind" not in RUN_PREFIX[0] else (6.0 if RUN_PREFIX else 1.0)

# Variables of the agent that must not leak in from the caller's environment.
AGENT_ENV_VARS = (
    "RUNNER_URL", "CONTAINER_ID", "RECONNECT_DELAY", "MAX_RECONNECT_DELAY",
    "MAX_RECONNECT", "LOG_LEVEL", "CONNECT_TIMEOUT", "PING_INTERVAL",
    "PING_TIMEOUT", "UDP_IDLE_TIMEOUT", "STALL_TIMEOUT", "MAX_CONNECTIONS",
    "MAX_UDP", "MAX_MESSAGE", "SSL_CERT_FILE", "TLS_SERVER_NAME", "TLS_PIN",
    "TLS_CERT", "TLS_KEY", "TLS_INSECURE",
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
