"""Helpers for test_packages.py: what each target's packages must be, the
packages made by scripts/package.sh, archive and ELF inspection, and podman
with a test-only configuration.

EXPECT[target]      the OpenWrt and Debian architecture names, the OCI
                    platform and the ELF facts (readelf -hA) of its binary
make_dist(out, targets)       run scripts/package.sh --out OUT --target ...
elf_problems(path, target)    what is wrong with a binary for that target
tar_entries(path)             [(name, TarInfo)] in archive order
Podman(tmpdir)      podman as root with runc, cgroupfs, no default ulimits,
                    storage and run state in tmpdir (never /etc/containers):
                    .run(*args), .usable() -> reason it cannot run or None,
                    .cleanup() removes every container and image it made
"""
import gzip
import io
import os
import shutil
import subprocess
import tarfile
import textwrap
import time

from agent import ROOT

TARGETS = sorted(os.listdir(os.path.join(ROOT, "toolchains")))
HOST_TARGET = "x86_64-linux-musl"
PROGRAMS = ("tunnel-client", "tunnel-server")


def _target(ipk, deb, platform, elf_class, machine, endian, expect=(), reject=()):
    return {"ipk": ipk, "deb": deb, "platform": platform, "class": elf_class,
            "machine": machine, "endian": endian, "expect": expect, "reject": reject}


# What a router, a Debian port and an OCI engine expect of each target's
# binary, written down here independently of scripts/package.sh.
EXPECT = {
    "x86_64-linux-musl": _target("x86_64", "amd64", ("linux", "amd64", None),
                                 "ELF64", "X86-64", "little"),
    "aarch64-linux-musl": _target("aarch64_generic", "arm64", ("linux", "arm64", "v8"),
                                  "ELF64", "AArch64", "little"),
    # Cortex-A7 routers and Debian armhf: ARMv7 with the hard-float ABI.
    "armv7-linux-musleabihf": _target("arm_cortex-a7_neon-vfpv4", "armhf", ("linux", "arm", "v7"),
                                      "ELF32", "ARM", "little",
                                      expect=("hard-float ABI", "Tag_CPU_arch: v7")),
    # ARM926EJ-S and Debian armel: ARMv5TE, soft-float, no VFP at all.
    "armv5-linux-musleabi": _target("arm_arm926ej-s", "armel", ("linux", "arm", "v5"),
                                    "ELF32", "ARM", "little",
                                    expect=("soft-float ABI", "Tag_CPU_arch: v5TE"),
                                    reject=("Tag_FP_arch", "hard-float ABI")),
    # MIPS 24Kc routers have no FPU: soft-float, MIPS32r2, either byte order.
    "mips-linux-musl": _target("mips_24kc", None, ("linux", "mips", None),
                               "ELF32", "MIPS R3000", "big",
                               expect=("FP ABI: Soft float", "mips32r2")),
    "mipsel-linux-musl": _target("mipsel_24kc", "mipsel", ("linux", "mipsle", None),
                                 "ELF32", "MIPS R3000", "little",
                                 expect=("FP ABI: Soft float", "mips32r2")),
}


def run(cmd, timeout=60, check=True, **kw):
    """subprocess.run with text output captured; a failure shows both streams."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\nstdout: %s\nstderr: %s" % (
            " ".join(map(str, cmd)), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return r


def make_dist(out, targets, env=None):
    cmd = [os.path.join(ROOT, "scripts", "package.sh"), "--out", out]
    for t in targets:
        cmd += ["--target", t]
    return run(cmd, timeout=300, env=env)


def built_targets():
    """Targets whose two programs exist in build/."""
    return [t for t in TARGETS
            if all(os.path.exists(os.path.join(ROOT, "build", t, p)) for p in PROGRAMS)]


def elf_problems(path, target):
    """Everything wrong with the binary at path for target, [] when none."""
    want = EXPECT[target]
    hdr = run(["readelf", "-hAW", path]).stdout
    prog = run(["readelf", "-lW", path]).stdout
    dyn = run(["readelf", "-dW", path], check=False).stdout
    problems = []

    def field(name):
        for line in hdr.splitlines():
            if line.strip().startswith(name + ":"):
                return line.split(":", 1)[1].strip()
        return ""

    if field("Class") != want["class"]:
        problems.append("class %r, want %s" % (field("Class"), want["class"]))
    if not field("Data").endswith(want["endian"] + " endian"):
        problems.append("data %r, want %s endian" % (field("Data"), want["endian"]))
    if want["machine"] not in field("Machine"):
        problems.append("machine %r, want %s" % (field("Machine"), want["machine"]))
    problems += ["readelf -hA lacks %r" % s for s in want["expect"] if s not in hdr]
    problems += ["readelf -hA shows %r" % s for s in want["reject"] if s in hdr]
    if "Requesting program interpreter" in prog:
        problems.append("has a program interpreter (not static)")
    if "(NEEDED)" in dyn:
        problems.append("needs shared libraries")
    return problems


def _tar_bytes(path_or_bytes):
    """The bytes of a tar given as a path or bytes, gunzipped if gzip'd."""
    data = path_or_bytes
    if not isinstance(data, bytes):
        with open(data, "rb") as f:
            data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def tar_entries(path_or_bytes):
    """[(name, TarInfo)] of a (gzip'd) tar, in archive order."""
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(path_or_bytes))) as tar:
        return [(m.name, m) for m in tar.getmembers()]


def tar_read(path_or_bytes, name):
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(path_or_bytes))) as tar:
        return tar.extractfile(name).read()


def control_fields(text):
    """Debian-style control text -> {field: value} (continuation lines joined)."""
    fields, key = {}, None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line[1:]
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def wait_until(pred, timeout, what, step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.1fs" % (what, timeout))
        time.sleep(step)


# ---------------------------------------------------------------------------
# podman

IDLE_C = textwrap.dedent("""\
    /* A container's only process: waits, exits 0 on SIGTERM or SIGINT. */
    #include <signal.h>
    #include <unistd.h>
    static void on_signal(int sig) { (void)sig; _exit(0); }
    int main(void)
    {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        for (;;) {
            pause();
        }
    }
""")


def build_idle(workdir):
    """A static do-nothing program (musl-gcc): the entrypoint of a rootfs
    without a shell."""
    src = os.path.join(workdir, "idle.c")
    exe = os.path.join(workdir, "idle")
    with open(src, "w") as f:
        f.write(IDLE_C)
    run(["musl-gcc", "-static", "-Os", "-s", "-o", exe, src])
    return exe


class Podman:
    """podman with a configuration of its own (see the module doc)."""

    def __init__(self, workdir):
        self.dir = workdir
        paths = {k: os.path.join(workdir, k) for k in ("graph", "run", "tmp", "net")}
        for p in paths.values():
            os.makedirs(p, exist_ok=True)
        self.conf = os.path.join(workdir, "containers.conf")
        self.storage = os.path.join(workdir, "storage.conf")
        with open(self.conf, "w") as f:
            f.write(textwrap.dedent("""\
                [containers]
                default_ulimits = []
                [engine]
                cgroup_manager = "cgroupfs"
                runtime = "runc"
                events_logger = "none"
                tmp_dir = "%(tmp)s"
                [network]
                network_config_dir = "%(net)s"
                """ % paths))
        with open(self.storage, "w") as f:
            f.write(textwrap.dedent("""\
                [storage]
                driver = "vfs"
                graphroot = "%(graph)s"
                runroot = "%(run)s"
                """ % paths))
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf,
                        CONTAINERS_STORAGE_CONF=self.storage)
        self.env.pop("CONTAINER_HOST", None)
        self.env.pop("DOCKER_HOST", None)

    def run(self, *args, timeout=120, check=True):
        return run(["podman", *args], timeout=timeout, check=check, env=self.env)

    def usable(self):
        """None when podman runs containers here, else the reason it cannot."""
        if shutil.which("podman") is None:
            return "podman is not installed (scripts/install-build-deps.sh installs it)"
        if os.geteuid() != 0:
            return "the podman tests run podman as root"
        r = self.run("info", timeout=60, check=False)
        if r.returncode != 0:
            return "podman info failed: " + (r.stderr.strip() or r.stdout.strip())[-500:]
        return None

    def cleanup(self):
        self.run("rm", "--all", "--force", "--time", "0", timeout=120, check=False)
        self.run("rmi", "--all", "--force", timeout=120, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
