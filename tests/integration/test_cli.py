"""Command line and environment: compatibility with the replaced client."""
import re

from agent import clean_env, run


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"tunnel-client \d+\.\d+\.\d+\n", r.stdout)


def test_help_lists_every_compat_option():
    r = run("--help")
    assert r.returncode == 0
    for name in ("--runner-url", "--container-id", "--reconnect-delay",
                 "--max-reconnect", "--log-level", "RUNNER_URL", "CONTAINER_ID",
                 "RECONNECT_DELAY", "MAX_RECONNECT", "LOG_LEVEL"):
        assert name in r.stdout


def test_missing_runner_url_is_one_line_exit_2():
    r = run("--container-id", "abc")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "--runner-url" in r.stderr


def test_missing_container_id_is_one_line_exit_2():
    r = run("-r", "ws://127.0.0.1:1")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert "--container-id" in r.stderr


def test_unknown_option_exit_2():
    r = run("--bogus")
    assert r.returncode == 2
    assert "--bogus" in r.stderr


def test_bad_numbers_name_the_option():
    for args, name in ((["--reconnect-delay", "abc"], "--reconnect-delay"),
                       (["--max-reconnect", "-1"], "--max-reconnect"),
                       (["--log-level", "loud"], "--log-level"),
                       (["--reconnect-delay", "1.2345"], "--reconnect-delay")):
        r = run("-r", "ws://127.0.0.1:1", "-c", "x", *args)
        assert r.returncode == 2, args
        assert name in r.stderr and r.stderr.count("\n") == 1


def test_bad_env_names_the_variable():
    r = run(env=clean_env(RUNNER_URL="ws://127.0.0.1:1", CONTAINER_ID="x",
                          MAX_RECONNECT="many"))
    assert r.returncode == 2
    assert "MAX_RECONNECT" in r.stderr


def test_flag_beats_environment():
    # The environment's bad level would be an error; the flag's good one wins
    # only if flags are applied after the environment... a bad flag must fail
    # even when the environment is fine.
    env = clean_env(RUNNER_URL="ws://127.0.0.1:1", CONTAINER_ID="x", LOG_LEVEL="info")
    r = run("--log-level", "nonsense", env=env)
    assert r.returncode == 2 and "--log-level" in r.stderr


def test_bad_urls_exit_2():
    for url in ("http//nope", "ftp://host", "ws://", "ws://[::1", "ws://host:0",
                "ws://host:70000", "ws://host:12ab", "ws://ho st", "ws://host/?q=1"):
        r = run("-r", url, "-c", "x", "--max-reconnect", "1")
        assert r.returncode == 2, url
        assert "runner URL" in r.stderr and r.stderr.count("\n") == 1, (url, r.stderr)
