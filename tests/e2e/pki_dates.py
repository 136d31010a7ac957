#!/usr/bin/env python3
"""Certificates and CRLs of an `sxfer ca` CA with dates sxfer will not make:
a CRL whose nextUpdate is seconds away (or past), and an identity whose
certificate was issued days ago. Python's cryptography package (Debian:
python3-cryptography) signs with the CA's key (passphrase from
SXFER_PASSPHRASE), as chan_certs.py does for test_channel.

  pki_dates.py crl CADIR OUT --number N --next-in S [--this-ago S] [--revoke CERT]...
  pki_dates.py identity CADIR OUTDIR --name NAME --role client|server
                         --born-ago DAYS --life DAYS
"""
import argparse
import datetime
import ipaddress
import os
import shutil

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def load_ca(cadir):
    with open(os.path.join(cadir, "ca.pem"), "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(cadir, "ca.key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(
            f.read(), os.environ["SXFER_PASSPHRASE"].encode()
        )
    return cert, key


def write_atomic(path, data, mode=0o644):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def make_crl(a):
    ca, key = load_ca(a.cadir)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(NOW - datetime.timedelta(seconds=a.this_ago))
        .next_update(NOW + datetime.timedelta(seconds=a.next_in))
        .add_extension(x509.CRLNumber(a.number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False
        )
    )
    for path in a.revoke:
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(NOW - datetime.timedelta(seconds=a.this_ago))
            .build()
        )
    crl = b.sign(key, hashes.SHA256())
    write_atomic(a.out, crl.public_bytes(serialization.Encoding.PEM))


def make_identity(a):
    ca, ca_key = load_ca(a.cadir)
    key = ec.generate_private_key(ec.SECP256R1())
    born = NOW - datetime.timedelta(days=a.born_ago)
    server = a.role == "server"
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, a.name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(born)
        .not_valid_after(born + datetime.timedelta(days=a.life))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = b.sign(ca_key, hashes.SHA256())
    os.makedirs(a.outdir, mode=0o700, exist_ok=True)
    write_atomic(
        os.path.join(a.outdir, "key.pem"),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    write_atomic(os.path.join(a.outdir, "cert.pem"), cert.public_bytes(serialization.Encoding.PEM))
    shutil.copyfile(os.path.join(a.cadir, "ca.pem"), os.path.join(a.outdir, "ca.pem"))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("crl")
    c.add_argument("cadir")
    c.add_argument("out")
    c.add_argument("--number", type=int, required=True)
    c.add_argument("--next-in", type=int, required=True)
    c.add_argument("--this-ago", type=int, default=60)
    c.add_argument("--revoke", action="append", default=[])
    i = sub.add_parser("identity")
    i.add_argument("cadir")
    i.add_argument("outdir")
    i.add_argument("--name", required=True)
    i.add_argument("--role", choices=["client", "server"], required=True)
    i.add_argument("--born-ago", type=int, required=True)
    i.add_argument("--life", type=int, required=True)
    a = p.parse_args()
    make_crl(a) if a.cmd == "crl" else make_identity(a)


if __name__ == "__main__":
    main()
