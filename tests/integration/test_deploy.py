"""Deployment helpers: scripts/tunnel-client-inject.sh against a fake docker,
the OpenWrt procd init script against stand-ins for OpenWrt's shell API, and
the option names the deploy files hand to the agent."""
import json
import os
import re
import shlex
import stat
import subprocess
import textwrap

import pytest

from agent import AGENT_ENV_VARS, ROOT, run

INJECT = os.path.join(ROOT, "scripts", "tunnel-client-inject.sh")
OPENWRT = os.path.join(ROOT, "scripts", "openwrt")
ENV_EXAMPLE = os.path.join(ROOT, "scripts", "systemd", "tunnel-client.env.example")

FAKE_DOCKER = """#!/usr/bin/python3
# Records its arguments; FAKE_DOCKER_FAIL=<subcommand> makes that call fail
# with FAKE_DOCKER_MSG on stderr and exit status FAKE_DOCKER_RC.
import json, os, sys
with open(os.environ["FAKE_DOCKER_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == [os.environ.get("FAKE_DOCKER_FAIL")]:
    sys.stderr.write(os.environ.get("FAKE_DOCKER_MSG", "") + "\\n")
    sys.exit(int(os.environ.get("FAKE_DOCKER_RC", "1")))
if sys.argv[1:2] == ["run"]:
    print("0123456789ab")
"""


class Docker:
    """A fake `docker` first on PATH; .calls lists each call's arguments."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "bin"
        self.dir.mkdir()
        exe = self.dir / "docker"
        exe.write_text(FAKE_DOCKER)
        exe.chmod(0o755)
        self.log = tmp_path / "docker.log"
        self.fail = {}

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items()
               if k not in AGENT_ENV_VARS and k not in ("DOCKER", "TUNNEL_CLIENT_BINARY")}
        env["PATH"] = f"{self.dir}:{env.get('PATH', '/usr/bin:/bin')}"
        env["FAKE_DOCKER_LOG"] = str(self.log)
        env.update(self.fail)
        env.update(extra)
        return env

    def fail_on(self, subcommand, message, rc):
        self.fail = {"FAKE_DOCKER_FAIL": subcommand, "FAKE_DOCKER_MSG": message,
                     "FAKE_DOCKER_RC": str(rc)}

    @property
    def calls(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def docker(tmp_path):
    return Docker(tmp_path)


@pytest.fixture
def binary(tmp_path):
    """A stand-in for the static binary (the helper only copies or mounts it)."""
    b = tmp_path / "out" / "tunnel-client"
    b.parent.mkdir()
    b.write_bytes(b"\x7fELF stand-in")
    b.chmod(0o755)
    return b


def inject(docker, *args, **env):
    return subprocess.run([INJECT, *map(str, args)], env=docker.env(**env),
                          capture_output=True, text=True, timeout=30)


# ---- mount form --------------------------------------------------------

def test_mount_prints_docker_run_options(docker, binary):
    r = inject(docker, "mount", "-b", binary, "-r", "ws://runner:8001", "-c", "abc123")
    assert r.returncode == 0, r.stderr
    assert shlex.split(r.stdout) == [
        "-v", f"{binary}:/tunnel-client:ro", "-e", "RUNNER_URL=ws://runner:8001",
        "-e", "CONTAINER_ID=abc123", "-e", "LOG_LEVEL=info"]
    assert docker.calls == []


def test_mount_output_is_shell_quoted(docker, binary):
    r = inject(docker, "mount", "--binary", binary, "--runner-url", "ws://r:1/a b",
               "--container-id", "id;x", "--log-level", "debug")
    assert r.returncode == 0, r.stderr
    words = shlex.split(r.stdout)
    assert "RUNNER_URL=ws://r:1/a b" in words and "CONTAINER_ID=id;x" in words
    assert "LOG_LEVEL=debug" in words


def test_mount_runs_docker_run(docker, binary):
    r = inject(docker, "mount", "-b", binary, "-r", "wss://runner", "-c", "web",
               "--", "-d", "--name", "web", "nginx:alpine", "/tunnel-client")
    assert r.returncode == 0, r.stderr
    assert docker.calls == [[
        "run", "-v", f"{binary}:/tunnel-client:ro", "-e", "RUNNER_URL=wss://runner",
        "-e", "CONTAINER_ID=web", "-e", "LOG_LEVEL=info",
        "-d", "--name", "web", "nginx:alpine", "/tunnel-client"]]
    assert r.stdout.strip() == "0123456789ab"  # docker's output passes through


def test_mount_reports_docker_failure(docker, binary):
    docker.fail_on("run", "Unable to find image 'nope:latest' locally", 125)
    r = inject(docker, "mount", "-b", binary, "-r", "ws://r", "-c", "x", "--", "nope")
    assert r.returncode == 125
    assert "Unable to find image 'nope:latest' locally" in r.stderr
    assert "docker run failed" in r.stderr


def test_mount_takes_settings_from_environment(docker, binary):
    r = inject(docker, "mount", RUNNER_URL="ws://env:8001", CONTAINER_ID="from-env",
               TUNNEL_CLIENT_BINARY=str(binary))
    assert r.returncode == 0, r.stderr
    words = shlex.split(r.stdout)
    assert "RUNNER_URL=ws://env:8001" in words and "CONTAINER_ID=from-env" in words
    assert f"{binary}:/tunnel-client:ro" in words


def test_mount_relative_binary_is_made_absolute(docker, binary):
    env = docker.env()
    r = subprocess.run([INJECT, "mount", "-b", "out/tunnel-client", "-r", "ws://r", "-c", "x"],
                       env=env, cwd=binary.parent.parent, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{binary}:/tunnel-client:ro" in shlex.split(r.stdout)


def test_mount_refuses_a_path_docker_cannot_mount(docker, tmp_path):
    b = tmp_path / "a:b"
    b.mkdir()
    exe = b / "tunnel-client"
    exe.write_bytes(b"x")
    exe.chmod(0o755)
    r = inject(docker, "mount", "-b", exe, "-r", "ws://r", "-c", "x")
    assert r.returncode == 1
    assert "':'" in r.stderr
    assert docker.calls == []


# ---- copy form ---------------------------------------------------------

def test_copy_copies_then_starts_the_binary(docker, binary):
    r = inject(docker, "copy", "-b", binary, "-r", "wss://runner:8001", "-c", "c0ffee", "app")
    assert r.returncode == 0, r.stderr
    assert docker.calls == [
        ["cp", str(binary), "app:/tunnel-client"],
        ["exec", "-d", "app", "/tunnel-client", "--runner-url", "wss://runner:8001",
         "--container-id", "c0ffee", "--log-level", "info"],
    ]


def test_copy_passes_agent_arguments(docker, binary):
    r = inject(docker, "copy", "app", "-b", binary, "-r", "wss://r", "-c", "c", "-l", "warn",
               "--", "--tls-pin", "sha256:AAAA", "--insecure")
    assert r.returncode == 0, r.stderr
    assert docker.calls[1] == [
        "exec", "-d", "app", "/tunnel-client", "--runner-url", "wss://r",
        "--container-id", "c", "--log-level", "warn", "--tls-pin", "sha256:AAAA", "--insecure"]


def test_copy_reports_cp_failure_and_does_not_exec(docker, binary):
    docker.fail_on("cp", "Error response from daemon: No such container: ghost", 1)
    r = inject(docker, "copy", "-b", binary, "-r", "ws://r", "-c", "x", "ghost")
    assert r.returncode == 1
    assert "Error response from daemon: No such container: ghost" in r.stderr
    assert "docker cp failed" in r.stderr
    assert [c[0] for c in docker.calls] == ["cp"]


def test_copy_reports_exec_failure(docker, binary):
    msg = "Error response from daemon: container 1a2b is not running"
    docker.fail_on("exec", msg, 126)
    r = inject(docker, "copy", "-b", binary, "-r", "ws://r", "-c", "x", "stopped")
    assert r.returncode == 126
    assert msg in r.stderr and "docker exec failed" in r.stderr
    assert [c[0] for c in docker.calls] == ["cp", "exec"]


def test_docker_missing_is_an_error(docker, binary):
    r = inject(docker, "copy", "-b", binary, "-r", "ws://r", "-c", "x", "app",
               DOCKER=str(docker.dir / "no-such-docker"))
    assert r.returncode != 0
    assert "docker cp failed" in r.stderr


# ---- usage and local errors --------------------------------------------

@pytest.mark.parametrize("args", [
    [],
    ["launch"],
    ["mount", "--bogus"],
    ["mount", "-c", "x"],                          # no runner URL
    ["mount", "-r", "ws://r"],                     # no container id
    ["mount", "-r", "ws://r", "-c", "x", "extra"],  # stray argument
    ["copy", "-r", "ws://r", "-c", "x"],           # no container
    ["copy", "-r", "ws://r", "-c", "x", "a", "b"],  # two containers
    ["copy", "-r"],                                # option without value
])
def test_bad_usage_exits_2_without_calling_docker(docker, binary, args):
    r = inject(docker, *args, TUNNEL_CLIENT_BINARY=str(binary))
    assert r.returncode == 2, (args, r.stderr)
    assert r.stderr.strip()
    assert docker.calls == []


def test_help_prints_usage_exit_2(docker):
    r = inject(docker, "--help")
    assert r.returncode == 2
    assert "mount [OPTIONS]" in r.stderr and "copy [OPTIONS] CONTAINER" in r.stderr


def test_missing_binary_is_an_error(docker, tmp_path):
    r = inject(docker, "copy", "-b", tmp_path / "nope", "-r", "ws://r", "-c", "x", "app")
    assert r.returncode == 1
    assert "not found" in r.stderr
    assert docker.calls == []


# ---- OpenWrt procd init script -----------------------------------------

# Stand-ins for OpenWrt's /lib/functions.sh (config_*) and procd.sh
# (procd_*): they print what the init script asks procd to run.
OPENWRT_API = textwrap.dedent(r"""
    config_load() { [ "$1" = tunnel-client ] || { echo "config_load $1"; exit 99; }; }
    config_foreach() { _fn=$1; [ "$2" = agent ] || exit 98; for _s in $SECTIONS; do "$_fn" "$_s"; done; }
    config_get() {
        eval "_x=\${CFG_$2_$3-}"
        [ -n "$_x" ] || _x=$4
        eval "$1=\$_x"
    }
    config_get_bool() {
        config_get "$@"
        eval "_x=\$$1"
        case $_x in 1|on|true|yes|enabled) _x=1 ;; *) _x=0 ;; esac
        eval "$1=\$_x"
    }
    procd_open_instance() { echo "open $1"; }
    procd_set_param() { printf 'set'; for a; do printf '\t%s' "$a"; done; echo; }
    procd_append_param() { printf 'append'; for a; do printf '\t%s' "$a"; done; echo; }
    procd_close_instance() { echo close; }
    procd_add_reload_trigger() { echo "trigger $*"; }
    logger() { echo "logger $*"; }
    . "$INIT"
    start_service
    service_triggers
""")


def shipped_config():
    """The options of scripts/openwrt/tunnel-client.config ('main' section)."""
    opts = {}
    with open(os.path.join(OPENWRT, "tunnel-client.config")) as f:
        for line in f:
            m = re.match(r"\s*option\s+(\w+)\s+'([^']*)'", line)
            if m:
                opts[m.group(1)] = m.group(2)
    return opts


def procd(sections):
    """Run the init script; sections: {name: {option: value}} -> instances
    {name: {"command": [...], param: [...]}} and the other lines."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "INIT": os.path.join(OPENWRT, "tunnel-client.init"),
           "SECTIONS": " ".join(sections)}
    for s, opts in sections.items():
        for k, v in opts.items():
            env[f"CFG_{s}_{k}"] = v
    r = subprocess.run(["sh", "-c", OPENWRT_API], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    instances, other, cur = {}, [], None
    for line in r.stdout.splitlines():
        if line.startswith("open "):
            cur = instances.setdefault(line[5:], {})
        elif line == "close":
            cur = None
        elif line.startswith(("set\t", "append\t")):
            verb, name, *vals = line.split("\t")
            assert cur is not None, line
            if verb == "set":
                cur[name] = vals
            else:
                cur[name] += vals
        else:
            other.append(line)
    return instances, other


def test_openwrt_shipped_config_starts_nothing_until_enabled():
    instances, other = procd({"main": shipped_config()})
    assert instances == {}
    assert "trigger tunnel-client" in other


def test_openwrt_enabled_agent_runs_with_respawn():
    cfg = dict(shipped_config(), enabled="1")
    instances, _ = procd({"main": cfg})
    main = instances["main"]
    assert main["command"] == [
        "/usr/bin/tunnel-client", "--runner-url", cfg["runner_url"],
        "--container-id", cfg["container_id"], "--log-level", "info", "--max-reconnect", "0"]
    assert main["respawn"] == ["3600", "5", "0"]  # retry 0: never give up
    assert main["user"] == ["nobody"]
    assert main["stderr"] == ["1"]


def test_openwrt_tls_options_become_flags():
    cfg = {"enabled": "1", "runner_url": "wss://r", "container_id": "c", "log_level": "debug",
           "ca_file": "/etc/ssl/certs/ca-certificates.crt", "tls_pin": "sha256:AAAA",
           "tls_server_name": "runner.lan", "reconnect_delay": "2", "insecure": "1",
           "user": "root"}
    instances, _ = procd({"vpn": cfg})
    cmd = instances["vpn"]["command"]
    for flag, value in (("--ca-file", cfg["ca_file"]), ("--tls-pin", "sha256:AAAA"),
                        ("--tls-server-name", "runner.lan"), ("--reconnect-delay", "2"),
                        ("--log-level", "debug")):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--insecure" in cmd
    assert "user" not in instances["vpn"]  # root: procd's default


def test_openwrt_incomplete_section_is_logged_not_started():
    instances, other = procd({"a": {"enabled": "1", "runner_url": "ws://r"},
                              "b": {"enabled": "1", "runner_url": "ws://r", "container_id": "b"}})
    assert list(instances) == ["b"]
    assert any(line.startswith("logger ") and "'a'" in line for line in other)


def test_openwrt_flags_are_agent_options():
    cfg = {"enabled": "1", "runner_url": "wss://r", "container_id": "c", "ca_file": "f",
           "tls_pin": "p", "tls_server_name": "n", "tls_cert": "c", "tls_key": "k",
           "reconnect_delay": "1", "max_reconnect_delay": "9", "insecure": "1"}
    cmd = procd({"s": cfg})[0]["s"]["command"]
    helptext = run("--help").stdout
    for flag in (a for a in cmd if a.startswith("--")):
        assert flag in helptext, flag


# ---- systemd ------------------------------------------------------------

def test_systemd_env_example_names_agent_variables():
    names = set()
    with open(ENV_EXAMPLE) as f:
        for line in f:
            m = re.match(r"#?([A-Z_]+)=", line.strip())
            if m:
                names.add(m.group(1))
    assert {"RUNNER_URL", "CONTAINER_ID"} <= names
    assert names <= set(AGENT_ENV_VARS), names - set(AGENT_ENV_VARS)


def test_inject_script_is_executable():
    assert os.stat(INJECT).st_mode & stat.S_IXUSR
