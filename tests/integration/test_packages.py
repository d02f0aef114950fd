"""Release packages (scripts/package.sh, ./build.sh package) checked with the
tools their users have: tar and readelf for the OpenWrt .ipk files, dpkg,
dpkg-deb and lintian for the .deb files, skopeo, umoci and podman (runc,
cgroupfs, a test-only CONTAINERS_CONF) for the OCI archives, and
scripts/tunnel-client-inject.sh with DOCKER=podman in both of its forms.

The packages come from TUNNEL_DIST (a dist/ made by ./build.sh package, as
CI's package step does: every target must be in it), else scripts/package.sh
makes them in a temporary folder from the targets built in build/. Checks of
a target that is not built are skipped and say so. The module runs with the
host target's build only (not under qemu or valgrind): the packages do not
depend on the binary under test.

dpkg -i really installs tunnel-client and tunnel-server on this machine (the
tests purge them again); they refuse to start when one is installed already.
"""
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess

import pytest

import agent as agent_mod
import server_util
from agent import ROOT, T
from pkg_util import (EXPECT, HOST_TARGET, PROGRAMS, TARGETS, Podman, build_idle, built_targets,
                      control_fields, elf_problems, make_dist, run, tar_entries, tar_read,
                      wait_until)

HOST_BINARY = os.path.join(ROOT, "build", HOST_TARGET, "tunnel-client")
NATIVE = not agent_mod.RUN_PREFIX and os.path.realpath(agent_mod.BINARY) == os.path.realpath(HOST_BINARY)
if not NATIVE:
    pytest.skip("packages are checked once, with the host target's build (TUNNEL_CLIENT=%s, "
                "runner %r)" % (agent_mod.BINARY, " ".join(agent_mod.RUN_PREFIX)), allow_module_level=True)

with open(os.path.join(ROOT, "VERSION")) as _f:
    VERSION = _f.read().strip()
PKG_VERSION = VERSION + "-1"
INJECT = os.path.join(ROOT, "scripts", "tunnel-client-inject.sh")
OPENWRT = os.path.join(ROOT, "scripts", "openwrt")
IN_CI = os.environ.get("CI") == "true"


class Dist:
    def __init__(self, path, targets):
        self.path = str(path)
        self.targets = targets

    def file(self, name):
        p = os.path.join(self.path, name)
        assert os.path.isfile(p), "%s is not in %s: %s" % (name, self.path, sorted(os.listdir(self.path)))
        return p

    def ipk(self, target):
        return self.file("tunnel-client_%s_%s.ipk" % (PKG_VERSION, EXPECT[target]["ipk"]))

    def deb(self, prog, target):
        return self.file("%s_%s_%s.deb" % (prog, PKG_VERSION, EXPECT[target]["deb"]))

    def oci(self, prog):
        return self.file(prog + "-oci.tar")

    def need(self, target):
        if target not in self.targets:
            pytest.skip("build/%s is not built (./build.sh cross); CI's package step "
                        "checks every target" % target)


@pytest.fixture(scope="session")
def dist(tmp_path_factory):
    given = os.environ.get("TUNNEL_DIST")
    if given:
        return Dist(given, TARGETS)
    targets = built_targets()
    assert HOST_TARGET in targets, "build/%s is not built" % HOST_TARGET
    out = tmp_path_factory.mktemp("dist")
    make_dist(out, targets)
    return Dist(out, targets)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def build_file(target, prog):
    return read_bytes(os.path.join(ROOT, "build", target, prog))


def repo_file(*parts):
    return read_bytes(os.path.join(ROOT, *parts))


def mode(info):
    return stat.S_IMODE(info.mode)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---- every package ------------------------------------------------------------

def test_sha256sums_cover_every_file(dist):
    names = sorted(n for n in os.listdir(dist.path) if n != "SHA256SUMS")
    with open(dist.file("SHA256SUMS")) as f:
        listed = [line.split(None, 1)[1].strip() for line in f if line.strip()]
    assert listed == names
    r = run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=dist.path)
    assert r.stdout.count(": OK") == len(names), r.stdout


def test_packaging_is_deterministic(dist, tmp_path):
    """The same binaries give the same bytes, whatever the umask and the
    temporary folder; and the same bytes as dist/."""
    targets = [t for t in (HOST_TARGET, "mipsel-linux-musl") if t in dist.targets]
    outs = []
    for name, umask in (("a", "022"), ("b-other", "077")):
        out = tmp_path / name
        tmp = tmp_path / ("tmp-" + name)
        tmp.mkdir()
        cmd = "umask %s && exec %s --out %s %s" % (
            umask, os.path.join(ROOT, "scripts", "package.sh"), out,
            " ".join("--target " + t for t in targets))
        run(["sh", "-c", cmd], timeout=300, env=dict(os.environ, TMPDIR=str(tmp)))
        outs.append(out)
    a, b = (sorted(os.listdir(o)) for o in outs)
    assert a == b
    for name in a:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
        if name.endswith((".ipk", ".deb")):
            assert (outs[0] / name).read_bytes() == read_bytes(dist.file(name)), \
                "%s differs from the one in %s" % (name, dist.path)


# ---- OpenWrt .ipk ---------------------------------------------------------------

IPK_DATA = {  # name in data.tar.gz -> mode (directories: 0o755)
    ".": None, "./etc": None, "./etc/config": None, "./etc/init.d": None,
    "./usr": None, "./usr/bin": None,
    "./usr/bin/tunnel-client": 0o755,
    "./etc/init.d/tunnel-client": 0o755,
    "./etc/config/tunnel-client": 0o600,
}


def unpack_ipk(path, dest):
    """Unpack with tar, as opkg does: the outer archive, then both inner ones."""
    for d in ("outer", "control", "data"):
        (dest / d).mkdir(parents=True)
    run(["tar", "-xzf", path, "-C", dest / "outer"])
    run(["tar", "-xzf", dest / "outer" / "control.tar.gz", "-C", dest / "control"])
    run(["tar", "-xzf", dest / "outer" / "data.tar.gz", "-C", dest / "data"])
    return dest


@pytest.mark.parametrize("target", TARGETS)
def test_ipk(dist, target, tmp_path):
    dist.need(target)
    path = dist.ipk(target)
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b", "an .ipk is a gzip'd tar (what OpenWrt's ipkg-build writes)"
    outer = tar_entries(path)
    assert [n for n, _ in outer] == ["./debian-binary", "./data.tar.gz", "./control.tar.gz"]
    d = unpack_ipk(path, tmp_path)
    assert (d / "outer" / "debian-binary").read_text() == "2.0\n"

    ctl = control_fields((d / "control" / "control").read_text())
    data_gz = (d / "outer" / "data.tar.gz").read_bytes()
    epoch = int(ctl["SourceDateEpoch"])
    assert ctl["Package"] == "tunnel-client"
    assert ctl["Version"] == PKG_VERSION
    assert ctl["Architecture"] == EXPECT[target]["ipk"]
    assert ctl["Installed-Size"] == str(len(gzip.decompress(data_gz)))
    assert ctl["Depends"] == "ca-bundle"
    assert ctl["Section"] == "net"
    assert "@" in ctl["Maintainer"]
    assert len(ctl["Description"].splitlines()) >= 2
    assert (d / "control" / "conffiles").read_text() == "/etc/config/tunnel-client\n"

    ctl_entries = dict(tar_entries(d / "outer" / "control.tar.gz"))
    assert sorted(ctl_entries) == [".", "./conffiles", "./control", "./postinst", "./prerm"]
    assert {n: mode(i) for n, i in ctl_entries.items() if i.isfile()} == {
        "./conffiles": 0o644, "./control": 0o644, "./postinst": 0o755, "./prerm": 0o755}

    data = tar_entries(data_gz)
    assert [n for n, _ in data] == sorted(IPK_DATA)
    for name, info in data + list(ctl_entries.items()) + outer:
        assert (info.uid, info.gid, info.mtime) == (0, 0, epoch), name
        assert not info.pax_headers, name
        want = IPK_DATA.get(name) or 0o755
        if name in IPK_DATA:
            assert mode(info) == want and info.isdir() == (IPK_DATA[name] is None), name
            # tar as root restores the modes
            assert stat.S_IMODE(os.stat(d / "data" / name).st_mode) == want, name

    files = d / "data"
    assert (files / "usr/bin/tunnel-client").read_bytes() == build_file(target, "tunnel-client")
    assert (files / "etc/init.d/tunnel-client").read_bytes() == repo_file("scripts/openwrt/tunnel-client.init")
    assert (files / "etc/config/tunnel-client").read_bytes() == repo_file("scripts/openwrt/tunnel-client.config")
    assert elf_problems(files / "usr/bin/tunnel-client", target) == []


def test_ipk_init_script_runs_the_packaged_binary(dist, tmp_path):
    """The packaged init script passes sh -n and the stand-in procd check of
    test_deploy.py: with the packaged config it starts nothing until enabled,
    enabled it runs the packaged binary."""
    from test_deploy import OPENWRT_API

    d = unpack_ipk(dist.ipk(HOST_TARGET), tmp_path)
    init = d / "data" / "etc/init.d/tunnel-client"
    run(["sh", "-n", init])
    opts = dict(re.findall(r"^\s*option\s+(\w+)\s+'([^']*)'",
                           (d / "data" / "etc/config/tunnel-client").read_text(), re.M))

    def procd(cfg):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "INIT": str(init), "SECTIONS": "main"}
        env.update({"CFG_main_" + k: v for k, v in cfg.items()})
        return run(["sh", "-c", OPENWRT_API], env=env).stdout

    shipped = procd(opts)
    assert "open main" not in shipped and "trigger tunnel-client" in shipped
    enabled = procd(dict(opts, enabled="1"))
    cmd = next(line.split("\t") for line in enabled.splitlines() if line.startswith("set\tcommand\t"))
    assert cmd[2] == "/usr/bin/tunnel-client"
    assert (d / "data" / cmd[2].lstrip("/")).is_file()
    r = subprocess.run([str(d / "data" / cmd[2].lstrip("/"))] + cmd[3:] + ["--help"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "usage" in r.stdout.lower(), r.stderr


def test_ipk_maintainer_scripts_call_openwrt_defaults(dist, tmp_path):
    """postinst and prerm are OpenWrt's own: they hand over to
    default_postinst/default_prerm of /lib/functions.sh (enable and start,
    stop and disable the package's init scripts) with the script's path, so
    the package name comes out right; IPKG_NO_SCRIPT=1 skips postinst."""
    d = unpack_ipk(dist.ipk(HOST_TARGET), tmp_path / "pkg")
    root = tmp_path / "root"
    info = root / "usr/lib/opkg/info"
    info.mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "lib/functions.sh").write_text(
        'default_postinst() { echo "postinst $(basename "${1%.*}") $2" >>"$IPKG_INSTROOT/calls"; }\n'
        'default_prerm() { echo "prerm $(basename "${1%.*}") $2" >>"$IPKG_INSTROOT/calls"; }\n')
    for s in ("postinst", "prerm"):
        shutil.copy(d / "control" / s, info / ("tunnel-client." + s))
        run(["sh", "-n", info / ("tunnel-client." + s)])
    env = dict(os.environ, IPKG_INSTROOT=str(root))
    run([info / "tunnel-client.postinst", "configure"], env=env)
    run([info / "tunnel-client.prerm", "remove"], env=env)
    run([info / "tunnel-client.postinst", "configure"], env=dict(env, IPKG_NO_SCRIPT="1"))
    assert (root / "calls").read_text().splitlines() == [
        "postinst tunnel-client configure", "prerm tunnel-client remove"]


OPENWRT_STUB_RULES = """\
INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:={work}/build_dir
DL_DIR:={work}/dl
TAR:=tar
CP:=cp -fpR
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_CONF:=install -m0600
"""
# Only the package's install step (the compile step is tests/openwrt/check-package.sh's).
OPENWRT_STUB_PACKAGE = """\
PKG_BUILD_DIR:=$(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
define Download
endef
define BuildPackage
$$(file >$(BUILD_DIR)/conffiles,$$(Package/$(1)/conffiles))
all:
\tmkdir -p $(BUILD_DIR)/ipkg-$(1)
\t$(call Package/$(1)/install,$(BUILD_DIR)/ipkg-$(1))
endef
"""


def test_openwrt_makefile_installs_the_same_files(dist, tmp_path):
    """scripts/openwrt/Makefile (for SDK users) installs the same files with
    the same modes and conffiles as the .ipk made here."""
    work = tmp_path
    (work / "sdk/include").mkdir(parents=True)
    (work / "sdk/rules.mk").write_text(OPENWRT_STUB_RULES.format(work=work))
    (work / "sdk/include/package.mk").write_text(OPENWRT_STUB_PACKAGE)
    out = work / "build_dir" / ("tunnel-client-" + VERSION) / "out"
    out.mkdir(parents=True)
    shutil.copy(HOST_BINARY, out / "tunnel-client")
    run(["make", "-s", "-C", OPENWRT, "TOPDIR=%s" % (work / "sdk")])

    pkg = work / "build_dir" / "ipkg-tunnel-client"
    sdk = {}
    for dirpath, dirnames, filenames in os.walk(pkg):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            sdk["./" + os.path.relpath(p, pkg)] = (os.path.isdir(p), stat.S_IMODE(os.stat(p).st_mode))
    ipk_data = gzip.decompress(tar_read(dist.ipk(HOST_TARGET), "./data.tar.gz"))
    ours = {n: (i.isdir(), mode(i)) for n, i in tar_entries(ipk_data) if n != "."}
    assert sdk == ours
    control_tar = tar_read(dist.ipk(HOST_TARGET), "./control.tar.gz")
    assert (work / "build_dir/conffiles").read_text().split() == \
        tar_read(control_tar, "./conffiles").decode().split() == ["/etc/config/tunnel-client"]


# ---- Debian .deb ----------------------------------------------------------------

DEB_TARGETS = [t for t in TARGETS if EXPECT[t]["deb"]]


def deb_expected(prog):
    """name -> mode (None: a directory) of the files in prog's .deb."""
    dirs = [".", "./etc", "./etc/default", "./lib", "./lib/systemd", "./lib/systemd/system",
            "./usr", "./usr/bin", "./usr/share", "./usr/share/doc", "./usr/share/doc/" + prog,
            "./usr/share/lintian", "./usr/share/lintian/overrides"]
    files = {"./usr/bin/" + prog: 0o755,
             "./lib/systemd/system/%s.service" % prog: 0o644,
             "./etc/default/" + prog: 0o600,
             "./usr/share/doc/%s/copyright" % prog: 0o644,
             "./usr/share/doc/%s/changelog.Debian.gz" % prog: 0o644,
             "./usr/share/lintian/overrides/" + prog: 0o644}
    if prog == "tunnel-server":
        dirs.append("./etc/tunnel-server")
        files["./etc/tunnel-server/tunnel-server.conf"] = 0o644
    return dict(dict.fromkeys(dirs), **files)


def deb_conffiles(prog):
    extra = ["/etc/tunnel-server/tunnel-server.conf"] if prog == "tunnel-server" else []
    return ["/etc/default/" + prog] + extra


@pytest.mark.parametrize("prog", PROGRAMS)
@pytest.mark.parametrize("target", DEB_TARGETS)
def test_deb(dist, prog, target, tmp_path):
    dist.need(target)
    path = dist.deb(prog, target)
    ctl = control_fields(run(["dpkg-deb", "--field", path]).stdout)
    assert ctl["Package"] == prog
    assert ctl["Version"] == PKG_VERSION
    assert ctl["Architecture"] == EXPECT[target]["deb"]
    assert "Depends" not in ctl  # static: needs nothing
    assert ctl["Section"] == "net" and ctl["Priority"] == "optional"
    assert "@" in ctl["Maintainer"] and len(ctl["Description"].splitlines()) >= 2

    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", path], capture_output=True, timeout=30,
                          check=True).stdout
    entries = tar_entries(fsys)
    want = deb_expected(prog)
    assert sorted(n for n, _ in entries) == sorted(want)
    epochs = {i.mtime for _, i in entries}
    assert len(epochs) == 1, "mtimes: %s" % epochs
    for name, info in entries:
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "root", "root"), name
        assert info.isdir() == (want[name] is None), name
        assert mode(info) == (want[name] or 0o755), name

    run(["dpkg-deb", "--extract", path, tmp_path / "root"])
    run(["dpkg-deb", "--control", path, tmp_path / "DEBIAN"])
    root = tmp_path / "root"
    assert (root / "usr/bin" / prog).read_bytes() == build_file(target, prog)
    assert elf_problems(root / "usr/bin" / prog, target) == []
    assert (tmp_path / "DEBIAN/conffiles").read_text().split() == deb_conffiles(prog)
    run(["md5sum", "--check", "--strict", "--quiet", tmp_path / "DEBIAN/md5sums"], cwd=root)
    unit = (root / ("lib/systemd/system/%s.service" % prog)).read_text()
    assert re.search(r"^ExecStart=/usr/bin/%s( |$)" % prog, unit, re.M), unit
    assert re.search(r"^EnvironmentFile=/etc/default/%s$" % prog, unit, re.M)
    assert re.search(r"^DynamicUser=yes$", unit, re.M)
    for script in ("postinst", "prerm", "postrm"):
        run(["sh", "-n", tmp_path / "DEBIAN" / script])


def test_lintian_is_clean(dist):
    """No error or warning from lintian for any .deb (overrides, each with its
    reason, are in scripts/package/debian/lintian-overrides)."""
    debs = sorted(os.path.join(dist.path, n) for n in os.listdir(dist.path) if n.endswith(".deb"))
    assert len(debs) == 2 * len([t for t in DEB_TARGETS if t in dist.targets])
    r = run(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", *debs],
            timeout=600, check=False)
    tags = [line for line in r.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr


# ---- dpkg -i, run, dpkg -r, dpkg -P -------------------------------------------

def dpkg_status(prog):
    r = run(["dpkg-query", "-W", "-f=${Status}", prog], check=False)
    return r.stdout.strip() if r.returncode == 0 else "not known"


def traces(prog):
    """Paths on this machine whose name mentions prog, where a package and
    its maintainer scripts put things."""
    found = set()
    for top in ("/etc", "/lib/systemd", "/usr/lib/systemd", "/var/lib/systemd", "/usr/bin",
                "/usr/share/doc", "/usr/share/lintian/overrides", "/var/lib/dpkg/info"):
        for dirpath, dirnames, filenames in os.walk(top):
            for n in dirnames + filenames:
                if prog in n:
                    found.add(os.path.join(dirpath, n))
    return found


def env_file(path):
    """KEY=VALUE lines of an EnvironmentFile, as systemd reads them."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";")) and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


@pytest.fixture
def installed(dist):
    """install(prog) -> dpkg -L list; whatever was installed is purged at teardown."""
    done = []

    def install(prog):
        status = dpkg_status(prog)
        assert status in ("not known", "unknown ok not-installed", "deinstall ok not-installed"), \
            "%s is on this machine already (%s): the test would remove it; dpkg -P %s first" % (
                prog, status, prog)
        done.append(prog)
        run(["dpkg", "-i", dist.deb(prog, HOST_TARGET)], timeout=120)
        assert dpkg_status(prog) == "install ok installed"
        return run(["dpkg", "-L", prog]).stdout.split()

    yield install
    for prog in done:
        run(["dpkg", "-P", prog], timeout=120, check=False)


def check_remove_and_purge(prog, listed, before):
    conffiles = deb_conffiles(prog)
    run(["dpkg", "-r", prog], timeout=120)
    assert dpkg_status(prog) == "deinstall ok config-files"
    for p in listed:
        if p in conffiles:
            assert os.path.isfile(p), "dpkg -r removed the conffile %s" % p
        elif not os.path.isdir(p):
            assert not os.path.lexists(p), "dpkg -r left %s" % p
    run(["dpkg", "-P", prog], timeout=120)
    assert dpkg_status(prog) in ("not known", "unknown ok not-installed")
    left = [p for p in listed if os.path.lexists(p) and not os.path.isdir(p)]
    left += [p for p in listed if os.path.isdir(p) and prog in p]
    assert not left, "dpkg -P left %s" % left
    assert traces(prog) == before, "dpkg -P left %s" % (traces(prog) - before)


def test_deb_client_installs_serves_and_purges(dist, installed, runner, services, tmp_path):
    before = traces("tunnel-client")
    listed = installed("tunnel-client")
    assert "/usr/bin/tunnel-client" in listed
    assert stat.S_IMODE(os.stat("/etc/default/tunnel-client").st_mode) == 0o600
    run(["systemd-analyze", "verify", "/lib/systemd/system/tunnel-client.service"])

    # The installed binary, with the installed settings as systemd would
    # pass them, pointed at the test runner.
    env = dict(env_file("/etc/default/tunnel-client"), RUNNER_URL=runner.url,
               CONTAINER_ID="deb-test", LOG_LEVEL="debug", PATH="/usr/bin:/bin")
    log = open(tmp_path / "agent.log", "w+")
    proc = subprocess.Popen(["/usr/bin/tunnel-client"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        session = runner.accept(T(10))
        assert session.path == "/ws/tunnel/deb-test"
        echo = services.echo()
        session.open_tcp(1, echo.port)
        session.send_data(1, b"through the installed package")
        assert session.recv_data(1, 29) == b"through the installed package"
        proc.send_signal(signal.SIGTERM)
        assert session.wait_closed(T(5)) == 1001
        assert proc.wait(T(5)) == 0
    except AssertionError:
        log.seek(0)
        print("---- installed tunnel-client's log\n" + agent_mod.tail(log.read(), 40))
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()

    # Installing again (what an upgrade does) keeps a changed conffile.
    with open("/etc/default/tunnel-client", "a") as f:
        f.write("LOG_LEVEL=warn\n")
    run(["dpkg", "-i", dist.deb("tunnel-client", HOST_TARGET)], timeout=120)
    assert env_file("/etc/default/tunnel-client")["LOG_LEVEL"] == "warn"
    check_remove_and_purge("tunnel-client", listed, before)


def test_deb_server_installs_serves_and_purges(dist, installed, services):
    """The installed tunnel-server, with its installed token, relays a public
    port on loopback to an agent's echo service."""
    before = traces("tunnel-server")
    listed = installed("tunnel-server")
    assert "/usr/bin/tunnel-server" in listed
    assert os.path.isfile("/etc/tunnel-server/tunnel-server.conf")
    run(["systemd-analyze", "verify", "/lib/systemd/system/tunnel-server.service"])

    token = env_file("/etc/default/tunnel-server")["TUNNEL_TOKEN"]
    listen, public = server_util.free_port(), server_util.free_port()
    echo = services.echo()
    server = subprocess.Popen(
        ["/usr/bin/tunnel-server", "--listen", "127.0.0.1:%d" % listen,
         "--expose", "tcp:127.0.0.1:%d=deb-agent:%d" % (public, echo.port)],
        env={"PATH": "/usr/bin:/bin", "TUNNEL_TOKEN": token, "LOG_LEVEL": "debug"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent = None
    try:
        wait_until(lambda: _connects(listen), T(10), "tunnel-server listening")
        agent = agent_mod.start("--runner-url", "ws://127.0.0.1:%d" % listen, "--container-id",
                                "deb-agent", "--token", token, "--reconnect-delay", "0.1")

        def relayed():
            try:
                server_util.echo_check(public, b"via the packaged server", timeout=T(2))
                return True
            except (AssertionError, OSError):
                return False
        wait_until(relayed, T(15), "an echo through the installed tunnel-server")
        server.send_signal(signal.SIGTERM)
        assert server.wait(T(5)) == 0
    finally:
        for p in (agent, server):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
    check_remove_and_purge("tunnel-server", listed, before)


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


# ---- OCI image layout archives --------------------------------------------------

def oci_blob(files, digest, size=None, media_type=None):
    algo, hexdigest = digest.split(":", 1)
    assert algo == "sha256"
    data = files["blobs/sha256/" + hexdigest]
    assert sha256(data) == hexdigest, digest
    if size is not None:
        assert len(data) == size, digest
    return data


@pytest.mark.parametrize("prog", PROGRAMS)
def test_oci_layout_digests_sizes_and_configs(dist, prog):
    """Every digest and size in index.json, the image index, the manifests and
    the configs is right; every image holds only /PROG, as user 65532, with
    the platform the index says."""
    path = dist.oci(prog)
    entries = tar_entries(path)
    names = [n for n, _ in entries]
    assert names == sorted(names)
    epoch = entries[0][1].mtime
    for name, info in entries:
        assert (info.uid, info.gid, info.mtime) == (0, 0, epoch) and not info.pax_headers, name
    files = {n: tar_read(path, n) for n, i in entries if i.isfile()}
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    top = json.loads(files["index.json"])
    assert top["schemaVersion"] == 2 and len(top["manifests"]) == 1
    ref = top["manifests"][0]
    assert ref["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert ref["annotations"]["org.opencontainers.image.ref.name"] == VERSION
    used = {ref["digest"]}
    index = json.loads(oci_blob(files, ref["digest"], ref["size"]))
    assert index["mediaType"] == ref["mediaType"]
    platforms = {}
    for m in index["manifests"]:
        assert m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        manifest = json.loads(oci_blob(files, m["digest"], m["size"]))
        config_desc = manifest["config"]
        assert config_desc["mediaType"] == "application/vnd.oci.image.config.v1+json"
        config = json.loads(oci_blob(files, config_desc["digest"], config_desc["size"]))
        (layer_desc,) = manifest["layers"]
        assert layer_desc["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        layer = gzip.decompress(oci_blob(files, layer_desc["digest"], layer_desc["size"]))
        assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + sha256(layer)]}
        used |= {m["digest"], config_desc["digest"], layer_desc["digest"]}

        p = m["platform"]
        key = (p["os"], p["architecture"], p.get("variant"))
        assert (config["os"], config["architecture"], config.get("variant")) == key
        target = next(t for t in TARGETS if EXPECT[t]["platform"] == key)
        platforms[target] = key
        layer_entries = tar_entries(layer)
        assert [(n, mode(i), i.uid, i.gid) for n, i in layer_entries] == [(prog, 0o755, 0, 0)]
        assert tar_read(layer, prog) == build_file(target, prog)
        c = config["config"]
        assert c["User"] == "65532:65532"
        assert c["Entrypoint"][0] == "/" + prog
        assert "Cmd" not in c and "Env" not in c
        assert c["Labels"]["org.opencontainers.image.version"] == VERSION
        assert c["Labels"]["org.opencontainers.image.source"].startswith("https://")
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", c["Labels"]["org.opencontainers.image.revision"])
    assert sorted(platforms) == sorted(dist.targets)
    assert {"sha256:" + n.rsplit("/", 1)[1] for n in files if n.startswith("blobs/")} == used


@pytest.mark.parametrize("prog", PROGRAMS)
def test_oci_skopeo_inspect(dist, prog):
    path = dist.oci(prog)
    r = run(["skopeo", "inspect", "oci-archive:" + path])
    info = json.loads(r.stdout)
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")
    assert info["Labels"]["org.opencontainers.image.version"] == VERSION
    raw = json.loads(run(["skopeo", "inspect", "--raw", "oci-archive:" + path]).stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    for t in dist.targets:
        os_, arch, variant = EXPECT[t]["platform"]
        cmd = ["skopeo", "inspect", "--config", "--override-os", os_, "--override-arch", arch]
        if variant:
            cmd += ["--override-variant", variant]
        config = json.loads(run(cmd + ["oci-archive:" + path]).stdout)
        assert (config["architecture"], config.get("variant")) == (arch, variant), t
        assert config["config"]["User"] == "65532:65532"


@pytest.mark.parametrize("prog", PROGRAMS)
def test_oci_umoci_unpack(dist, prog, tmp_path):
    """umoci unpacks every platform's image (the index is multi-platform, so
    each manifest gets a tag of its own in a copy of index.json first)."""
    layout = tmp_path / "layout"
    layout.mkdir()
    run(["tar", "-xf", dist.oci(prog), "-C", layout])
    top = json.loads((layout / "index.json").read_text())
    index_digest = top["manifests"][0]["digest"].split(":", 1)[1]
    index = json.loads((layout / "blobs/sha256" / index_digest).read_text())
    for m in index["manifests"]:
        p = m["platform"]
        tag = "-".join(x for x in (p["architecture"], p.get("variant")) if x)
        top["manifests"].append(dict(m, annotations={"org.opencontainers.image.ref.name": tag}))
    (layout / "index.json").write_text(json.dumps(top))
    for t in dist.targets:
        _, arch, variant = EXPECT[t]["platform"]
        tag = "-".join(x for x in (arch, variant) if x)
        bundle = tmp_path / ("bundle-" + tag)
        run(["umoci", "unpack", "--image", "%s:%s" % (layout, tag), bundle], timeout=120)
        rootfs = bundle / "rootfs"
        assert sorted(os.listdir(rootfs)) == [prog], t
        assert (rootfs / prog).read_bytes() == build_file(t, prog)
        spec = json.loads((bundle / "config.json").read_text())
        assert spec["process"]["args"][0] == "/" + prog
        assert (spec["process"]["user"]["uid"], spec["process"]["user"]["gid"]) == (65532, 65532)


# ---- podman -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    p = Podman(str(tmp_path_factory.mktemp("podman")))
    reason = p.usable()
    if reason:
        if IN_CI:
            pytest.fail("podman must run in CI: " + reason)
        pytest.skip(reason)
    yield p
    p.cleanup()


@pytest.fixture(scope="module")
def idle_image(podman, tmp_path_factory):
    """An image whose rootfs has no shell at all: only /idle, a static program
    that waits (podman import of a rootfs tarball)."""
    work = tmp_path_factory.mktemp("idle")
    rootfs = work / "rootfs"
    rootfs.mkdir()
    shutil.copy(build_idle(str(work)), rootfs / "idle")
    run(["tar", "-C", rootfs, "--owner=0", "--group=0", "-cf", work / "rootfs.tar", "."])
    podman.run("import", "--change", 'CMD ["/idle"]', work / "rootfs.tar", "localhost/tc-idle:test")
    return "localhost/tc-idle:test"


@pytest.fixture(scope="module")
def client_image(podman, dist):
    """podman load of dist's tunnel-client archive -> the image's name."""
    r = podman.run("load", "--input", dist.oci("tunnel-client"))
    image = re.search(r"Loaded image(?:\(s\))?: (\S+)", r.stdout + r.stderr).group(1)
    assert image == "docker.io/library/tunnel-client:" + VERSION
    return image


def serve_echo(session, services, cid=1):
    echo = services.echo()
    session.open_tcp(cid, echo.port)
    payload = b"through a container %d" % cid
    session.send_data(cid, payload)
    assert session.recv_data(cid, len(payload)) == payload


def container_uid(podman, name):
    pid = podman.run("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    with open("/proc/%s/status" % pid) as f:
        return next(line.split()[1] for line in f if line.startswith("Uid:"))


def test_podman_runs_the_image(podman, client_image, runner, services):
    """podman load of the archive, then the agent in its container on the
    host network serves the test runner; podman stop (SIGTERM) gives close
    1001 and exit 0."""
    image = client_image
    info = json.loads(podman.run("image", "inspect", image).stdout)[0]
    assert (info["Architecture"], info["Config"]["User"]) == ("amd64", "65532:65532")
    podman.run("run", "--detach", "--name", "tc-image", "--network", "host", image,
               "--runner-url", runner.url, "--container-id", "podman-image", "--log-level", "debug")
    session = runner.accept(T(20))
    assert session.path == "/ws/tunnel/podman-image"
    assert container_uid(podman, "tc-image") == "65532"
    serve_echo(session, services)
    podman.run("stop", "--time", "10", "tc-image", timeout=60)
    assert session.wait_closed(T(5)) == 1001
    state = podman.run("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "tc-image").stdout.split()
    assert state == ["exited", "0"]
    podman.run("rm", "tc-image")


def inject(podman, *args):
    env = dict(podman.env, DOCKER="podman")
    for k in agent_mod.AGENT_ENV_VARS + ("TUNNEL_CLIENT_BINARY",):
        env.pop(k, None)
    return run([INJECT, *args], env=env, timeout=120)


def test_inject_mount_with_podman(podman, idle_image, runner, services):
    inject(podman, "mount", "--binary", HOST_BINARY, "--runner-url", runner.url,
           "--container-id", "podman-mount", "--log-level", "debug", "--",
           "--detach", "--name", "tc-mount", "--network", "host", idle_image, "/tunnel-client")
    session = runner.accept(T(20))
    assert session.path == "/ws/tunnel/podman-mount"
    serve_echo(session, services)
    podman.run("stop", "--time", "10", "tc-mount", timeout=60)
    assert session.wait_closed(T(5)) == 1001
    podman.run("rm", "tc-mount")


def test_inject_copy_into_a_container_without_shell(podman, idle_image, runner, services):
    podman.run("run", "--detach", "--name", "tc-noshell", "--network", "host", idle_image)
    r = podman.run("exec", "tc-noshell", "/bin/sh", "-c", "true", check=False)
    assert r.returncode != 0, "the container has a shell"
    inject(podman, "copy", "--binary", HOST_BINARY, "--runner-url", runner.url,
           "--container-id", "podman-copy", "--log-level", "debug", "tc-noshell")
    session = runner.accept(T(20))
    assert session.path == "/ws/tunnel/podman-copy"
    serve_echo(session, services)
    # The agent is not the container's first process: SIGTERM it from the
    # host (no shell or kill inside), then stop the container.
    procs = [line.split(None, 1) for line in
             podman.run("top", "tc-noshell", "hpid", "args").stdout.splitlines()[1:]]
    assert sorted(args.split()[0] for _, args in procs) == ["/idle", "/tunnel-client"], procs
    os.kill(int(next(pid for pid, args in procs if args.startswith("/tunnel-client"))), signal.SIGTERM)
    assert session.wait_closed(T(5)) == 1001
    podman.run("stop", "--time", "10", "tc-noshell", timeout=60)
    assert podman.run("inspect", "--format", "{{.State.ExitCode}}", "tc-noshell").stdout.strip() == "0"
    podman.run("rm", "tc-noshell")


def test_copy_from_the_image_in_a_build(podman, client_image, idle_image, tmp_path):
    """The README's COPY --from: an image build takes the agent out of the
    loaded image (by the short name the README uses)."""
    (tmp_path / "Containerfile").write_text(
        "FROM tunnel-client:%s AS tunnel\nFROM %s\n"
        "COPY --from=tunnel /tunnel-client /usr/local/bin/tunnel-client\n" % (VERSION, idle_image))
    podman.run("build", "--pull=never", "--network", "none", "--tag", "localhost/tc-copy-from:test",
               tmp_path, timeout=300)
    r = podman.run("run", "--rm", "--network", "none", "localhost/tc-copy-from:test",
                   "/usr/local/bin/tunnel-client", "--version")
    assert r.stdout.strip() == "tunnel-client " + VERSION
