#!/usr/bin/python3
"""Write an OCI image layout archive without a container engine.

    oci.py --name tunnel-client --version 0.1.0 --revision COMMIT --source URL \\
           --epoch SOURCE_DATE_EPOCH --out dist/tunnel-client-oci.tar \\
           --image linux/amd64=build/x86_64-linux-musl/tunnel-client \\
           --image linux/arm/v7=build/armv7-linux-musleabihf/tunnel-client ... \\
           [--entrypoint-arg ARG]... [--expose 8001/tcp]

Every --image becomes one image: a single layer holding only /NAME (the
static binary, mode 0755, owner 0), run as user 65532 with /NAME as its
entrypoint; no shell, no other file. One image index lists them by
platform, and the layout's index.json names that index NAME:VERSION. The
archive is reproducible: sorted ustar entries (no pax headers), every mtime
the epoch, owner 0, gzip without a name or time, JSON with sorted keys.
"""
import argparse
import gzip
import hashlib
import io
import json
import tarfile
import time

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
USER = "65532:65532"  # distroless "nonroot"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def tar_bytes(entries, epoch):
    """entries: [(name, data or None for a directory, mode)] -> tar bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in sorted(entries):
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            info.mode = mode
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write(data)
    return buf.getvalue()


class Layout:
    def __init__(self):
        self.blobs = {}

    def add(self, media_type, data, **extra):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return dict(extra, mediaType=media_type, digest=digest, size=len(data))


def parse_platform(text):
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SystemExit("oci.py: platform '%s' is not OS/ARCH[/VARIANT]" % text)
    platform = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--revision", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--epoch", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--image", action="append", required=True, metavar="PLATFORM=BINARY")
    ap.add_argument("--entrypoint-arg", action="append", default=[])
    ap.add_argument("--expose", action="append", default=[])
    args = ap.parse_args()

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(args.epoch))
    labels = {
        "org.opencontainers.image.title": args.name,
        "org.opencontainers.image.version": args.version,
        "org.opencontainers.image.revision": args.revision,
        "org.opencontainers.image.source": args.source,
        "org.opencontainers.image.created": created,
    }
    layout = Layout()
    manifests = []
    for item in args.image:
        platform_text, sep, path = item.partition("=")
        if not sep:
            raise SystemExit("oci.py: --image wants PLATFORM=BINARY, got '%s'" % item)
        platform = parse_platform(platform_text)
        with open(path, "rb") as f:
            binary = f.read()
        layer_tar = tar_bytes([(args.name, binary, 0o755)], args.epoch)
        layer = layout.add(LAYER, gzip_bytes(layer_tar))
        config = {
            "created": created,
            "architecture": platform["architecture"],
            "os": platform["os"],
            "config": {
                "User": USER,
                "Entrypoint": ["/" + args.name] + args.entrypoint_arg,
                "WorkingDir": "/",
                "Labels": labels,
            },
            "rootfs": {"type": "layers",
                       "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
            "history": [{"created": created,
                         "created_by": "scripts/package/oci.py: /%s only" % args.name}],
        }
        if "variant" in platform:
            config["variant"] = platform["variant"]
        if args.expose:
            config["config"]["ExposedPorts"] = {p: {} for p in args.expose}
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": layout.add(CONFIG, canonical(config)),
            "layers": [layer],
            "annotations": {"org.opencontainers.image.created": created},
        }
        manifests.append(layout.add(MANIFEST, canonical(manifest), platform=platform))

    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests,
             "annotations": dict(labels)}
    ref = layout.add(INDEX, canonical(index), annotations={
        # The tag (OCI), and the whole name for engines that read it (containerd, docker).
        "org.opencontainers.image.ref.name": args.version,
        "io.containerd.image.name": "docker.io/library/%s:%s" % (args.name, args.version),
    })
    top = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [ref]}

    entries = [("blobs", None, 0o755), ("blobs/sha256", None, 0o755),
               ("oci-layout", canonical({"imageLayoutVersion": "1.0.0"}), 0o644),
               ("index.json", canonical(top), 0o644)]
    for digest, data in layout.blobs.items():
        entries.append(("blobs/sha256/" + digest.split(":", 1)[1], data, 0o644))
    with open(args.out, "wb") as f:
        f.write(tar_bytes(entries, args.epoch))


if __name__ == "__main__":
    main()
