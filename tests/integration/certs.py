"""Test PKI made with the openssl CLI at test time (nothing is committed).

    pki = Pki(tmpdir)
    root = pki.ca("root")                       # self-signed CA (RSA by default)
    inter = root.sub_ca("inter", key="ec")      # intermediate CA
    leaf = inter.issue("srv", dns=["localhost"], ips=["127.0.0.1"])
    leaf.cert   PEM: the certificate, then its issuers up to (not incl.) the root
    leaf.key    PEM private key
    leaf.only   PEM: the end-entity certificate alone
    leaf.above  PEM: the intermediates alone (None under a root)
    pki.self_signed("ss", dns=["localhost"])
    pin_of(leaf.only) -> "sha256:<base64>" computed by openssl

Keys: "rsa" (2048), "rsa4096", "ec" (P-256), "ec384" (P-384). Dates: valid for
a year by default; start/end ("YYYYMMDDHHMMSSZ") make expired or not-yet-valid
certificates (through `openssl ca`, which accepts explicit dates).
"""
import base64
import hashlib
import os
import ssl
import subprocess


def _run(*args, stdin=None):
    r = subprocess.run(["openssl"] + list(args), input=stdin, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout


def genkey(path, key="rsa"):
    if key == "rsa":
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    elif key == "rsa4096":
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096", "-out", path)
    elif key == "ec":
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    elif key == "ec384":
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", path)
    else:
        raise ValueError(key)
    return path


def traditional(key_path, out_path, kind):
    """The same key as "RSA PRIVATE KEY" or "EC PRIVATE KEY" (not PKCS#8);
    kind is "rsa" or "ec"."""
    if kind == "rsa":
        _run("rsa", "-in", key_path, "-traditional", "-out", out_path)
    else:
        _run("ec", "-in", key_path, "-out", out_path)
    return out_path


def pin_of(cert_path):
    """sha256:<base64> of the certificate's SPKI, the way the README says."""
    pub = _run("x509", "-in", cert_path, "-pubkey", "-noout")
    der = _run("pkey", "-pubin", "-outform", "der", stdin=pub)
    digest = _run("dgst", "-sha256", "-binary", stdin=der)
    assert digest == hashlib.sha256(der).digest()
    return "sha256:" + base64.b64encode(digest).decode()


CA_CONF = """
[ca]
default_ca = this
[this]
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[anything]
commonName = supplied
"""


class Leaf:
    def __init__(self, cert, key, only, above=None):
        self.cert = cert
        self.key = key
        self.only = only
        self.above = above  # PEM file of the intermediates alone, or None


class CA:
    def __init__(self, pki, name, cert, key, chain_above=""):
        self.pki = pki
        self.name = name
        self.cert = cert            # this CA's certificate alone
        self.key = key
        self.chain_above = chain_above  # PEM of the CAs above, not the root
        self.dir = os.path.join(pki.dir, name + ".db")
        os.makedirs(self.dir, exist_ok=True)
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("%x\n" % (0x1000 + len(os.listdir(pki.dir))))
        self.conf = os.path.join(self.dir, "ca.cnf")
        with open(self.conf, "w") as f:
            f.write(CA_CONF.format(d=self.dir))

    def _sign(self, name, key, ext, start=None, end=None):
        p = self.pki.path
        csr = p(name + ".csr")
        _run("req", "-new", "-key", key, "-subj", "/CN=" + name, "-out", csr)
        extfile = p(name + ".ext")
        with open(extfile, "w") as f:
            f.write("[ext]\n" + ext)
        out = p(name + ".crt")
        args = ["ca", "-batch", "-config", self.conf, "-cert", self.cert, "-keyfile", self.key,
                "-in", csr, "-out", out, "-notext", "-extfile", extfile, "-extensions", "ext"]
        if start or end:
            args += ["-startdate", start or "20200101000000Z", "-enddate", end or "20300101000000Z"]
        else:
            args += ["-days", "365"]
        _run(*args)
        return out

    def sub_ca(self, name, key="rsa"):
        k = genkey(self.pki.path(name + ".key"), key)
        ext = ("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
               "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        crt = self._sign(name, k, ext)
        above = open(crt).read() + self.chain_above
        return CA(self.pki, name, crt, k, above)

    def issue(self, name, dns=(), ips=(), key="rsa", client=False, start=None, end=None):
        k = genkey(self.pki.path(name + ".key"), key)
        sans = ["DNS:" + d for d in dns] + ["IP:" + i for i in ips]
        ext = "basicConstraints=CA:FALSE\n"
        ext += "keyUsage=critical,digitalSignature%s\n" % (",keyEncipherment" if key.startswith("rsa") else "")
        ext += "extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth")
        if sans:
            ext += "subjectAltName=" + ",".join(sans) + "\n"
        only = self._sign(name, k, ext, start, end)
        full = self.pki.path(name + ".chain.pem")
        with open(full, "w") as f:
            f.write(open(only).read() + self.chain_above)
        above = None
        if self.chain_above:
            above = self.pki.path(name + ".above.pem")
            with open(above, "w") as f:
                f.write(self.chain_above)
        return Leaf(full, k, only, above)


class Pki:
    def __init__(self, directory):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def ca(self, name, key="rsa"):
        k = genkey(self.path(name + ".key"), key)
        crt = self.path(name + ".crt")
        _run("req", "-x509", "-new", "-key", k, "-subj", "/CN=" + name, "-days", "3650",
             "-out", crt, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return CA(self, name, crt, k)

    def self_signed(self, name, dns=(), ips=(), key="rsa"):
        k = genkey(self.path(name + ".key"), key)
        crt = self.path(name + ".crt")
        sans = ",".join(["DNS:" + d for d in dns] + ["IP:" + i for i in ips])
        args = ["req", "-x509", "-new", "-key", k, "-subj", "/CN=" + name, "-days", "365",
                "-out", crt]
        if sans:
            args += ["-addext", "subjectAltName=" + sans]
        _run(*args)
        return Leaf(crt, k, crt)


def server_context(leaf, client_ca=None):
    """A TLS server context for FakeRunner presenting leaf; with client_ca,
    it requires a client certificate issued by that CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf.cert, leaf.key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca.cert)
    return ctx
