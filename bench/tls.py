"""A private CA and a server certificate for the TLS upstream, made fresh for each run.

The TLS scenarios put the same nginx answers behind ``listen ... ssl``; each gateway
has to trust the upstream the way an operator would set it up for a private CA (fkllm
through its provider's ``ca_file``, Portkey through ``NODE_EXTRA_CA_CERTS``, LiteLLM
through ``SSL_CERT_FILE``), so the harness makes that CA itself. Nothing is written
outside the run's directory and nothing is added to the system's trust store.

The keys are ECDSA P-256 (what most public endpoints now present first); the server
certificate names ``127.0.0.1`` (IP address) and ``localhost``. It is made with the
``cryptography`` package (fkllm depends on it for OIDC, and the bench virtualenv has it
through PyJWT), or, where that is not importable, with the ``openssl`` command.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerCertificate", "make_certificates"]

_HOST = "127.0.0.1"
_DAYS = 2


@dataclass(frozen=True)
class ServerCertificate:
    """The files of one run's TLS setup: what clients trust and what nginx serves."""

    ca_file: Path  # the CA certificate (PEM): what a gateway is told to trust
    cert_file: Path  # the server certificate (PEM)
    key_file: Path  # the server's private key (PEM, unencrypted, mode 0600)
    made_with: str  # "cryptography" or "openssl"


def make_certificates(directory: Path, *, use_openssl: bool = False) -> ServerCertificate:
    """A CA and a server certificate for 127.0.0.1 in ``directory``.

    ``RuntimeError`` when neither ``cryptography`` nor ``openssl`` is there (the TLS
    scenarios are then skipped with that reason).
    """
    directory.mkdir(parents=True, exist_ok=True)
    files = ServerCertificate(
        directory / "ca.pem", directory / "server.pem", directory / "server.key", ""
    )
    if not use_openssl:
        try:
            _with_cryptography(files)
            return _made(files, "cryptography")
        except ImportError:
            pass
    _with_openssl(files, directory)
    return _made(files, "openssl")


def _made(files: ServerCertificate, tool: str) -> ServerCertificate:
    files.key_file.chmod(0o600)
    return ServerCertificate(files.ca_file, files.cert_file, files.key_file, tool)


def _with_cryptography(files: ServerCertificate) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fkllm bench CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address(_HOST)), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    files.ca_file.write_bytes(ca_cert.public_bytes(pem))
    files.cert_file.write_bytes(cert.public_bytes(pem))
    files.key_file.touch(mode=0o600)
    files.key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _with_openssl(files: ServerCertificate, directory: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError(
            "no way to make a certificate: neither the cryptography package nor openssl"
        )
    ca_key, csr, ext = directory / "ca.key", directory / "server.csr", directory / "server.ext"
    ext.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        f"subjectAltName = IP:{_HOST}, DNS:localhost\n"
        "extendedKeyUsage = serverAuth\n"
    )
    days = str(_DAYS)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [binary, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(files.ca_file)],
        [binary, "req", *ec, "-keyout", str(files.key_file), "-out", str(csr)],
        [binary, "x509", "-req", "-in", str(csr), "-CA", str(files.ca_file), "-out"],
    ]
    steps[0] += ["-days", days, "-subj", "/CN=fkllm bench CA"]
    steps[0] += ["-addext", "basicConstraints=critical,CA:TRUE,pathlen:0"]
    steps[0] += ["-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"]
    steps[1] += ["-subj", f"/CN={_HOST}"]
    steps[2] += [str(files.cert_file), "-CAkey", str(ca_key), "-CAcreateserial"]
    steps[2] += ["-days", days, "-sha256", "-extfile", str(ext)]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"openssl failed ({' '.join(step[1:3])}): {done.stderr.strip()}")
