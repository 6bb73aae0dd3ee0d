"""Real X.509 certificates for the TLS tests: a CA, server and client certificates, bad ones too.

Everything is made with ``cryptography`` on the fly (ECDSA P-256, seconds of CPU in total), the way
cert-manager's CA issuer would: a self-signed CA, then leaf certificates signed by it with the key
usages and extended key usages a TLS stack checks. :func:`make_pki` writes the usual file names of
a ``kubernetes.io/tls`` Secret (``tls.crt``, ``tls.key``, ``ca.crt``) so tests mount what the
chart mounts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """One certificate and its key, PEM encoded."""

    cert: bytes
    key: bytes

    def write(self, directory: Path, cert_name: str = "tls.crt", key_name: str = "tls.key") -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / cert_name).write_bytes(self.cert)
        (directory / key_name).write_bytes(self.key)
        return directory

    @property
    def serial(self) -> int:
        return x509.load_pem_x509_certificate(self.cert).serial_number


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, name: str = "modelship test CA") -> None:
        self.key = _key()
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - DAY)
            .not_valid_after(now + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        dns_names: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        client: bool = False,
        valid_days: float = 10,
        expired: bool = False,
    ) -> Issued:
        """A leaf certificate: for a server (``dns_names``/``ips`` as SANs) or a client."""
        key = _key()
        now = dt.datetime.now(dt.UTC)
        start, end = (now - 10 * DAY, now - DAY) if expired else (now - DAY, now + valid_days * DAY)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))

    def server(self, **kwargs: object) -> Issued:
        """A server certificate for ``localhost`` and ``127.0.0.1`` (what the tests connect to)."""
        return self.issue("localhost", dns_names=("localhost",), ips=("127.0.0.1",), **kwargs)  # type: ignore[arg-type]

    def client(self, name: str = "modelship-test-client", **kwargs: object) -> Issued:
        return self.issue(name, client=True, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Pki:
    """A CA and what it issued, written under one directory the way a Secret is mounted."""

    ca: CertificateAuthority
    server: Issued
    client: Issued
    server_dir: Path  # tls.crt, tls.key, ca.crt
    client_dir: Path  # tls.crt, tls.key, ca.crt
    ca_file: Path


def make_pki(root: Path) -> Pki:
    """A CA, a server certificate for localhost and a client certificate, as Secret files."""
    ca = CertificateAuthority()
    server, client = ca.server(), ca.client()
    server_dir, client_dir = server.write(root / "server"), client.write(root / "client")
    for directory in (server_dir, client_dir):
        (directory / "ca.crt").write_bytes(ca.pem)
    ca_file = root / "ca.crt"
    ca_file.write_bytes(ca.pem)
    return Pki(ca, server, client, server_dir, client_dir, ca_file)


class SecretVolume:
    """A directory updated the way the kubelet updates a mounted Secret: atomically, by symlink.

    Files are ``<dir>/<name> -> ..data/<name>``, and ``..data`` points at a timestamped directory
    that an update replaces with one ``rename`` (what ``AtomicWriter`` does), so a reader sees
    either every old file or every new one, yet may read one of each if it reads twice.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.updates = 0

    def write(self, files: dict[str, bytes]) -> None:
        self.updates += 1
        version = self.directory / f"..{self.updates}_{dt.datetime.now(dt.UTC):%H_%M_%S.%f}"
        version.mkdir()
        for name, data in files.items():
            (version / name).write_bytes(data)
        link = self.directory / "..data_tmp"
        link.symlink_to(version.name)
        link.replace(self.directory / "..data")
        for name in files:
            target = self.directory / name
            if not target.is_symlink():
                target.symlink_to(f"..data/{name}")

    def tls(self, issued: Issued, ca: bytes) -> None:
        """The files of a kubernetes.io/tls Secret with ``ca.crt`` (cert-manager's layout)."""
        self.write({"tls.crt": issued.cert, "tls.key": issued.key, "ca.crt": ca})
