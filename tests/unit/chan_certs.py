#!/usr/bin/env python3
"""Writes the identity folders test_channel needs into DIR.

Python's cryptography package (Debian 12: python3-cryptography) is used
instead of the openssl command line because the cases need certificates
with arbitrary validity (an expired one) and a CRL, which `openssl x509`
in 3.0 cannot make without an `openssl ca` database.

Each folder holds key.pem (plain PKCS#8, mode 0600), cert.pem (leaf) and
ca.pem (the anchor that side trusts); the server folders also hold crl.pem.
"""
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.utcnow().replace(microsecond=0)
DAY = datetime.timedelta(days=1)


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(ca, cn, ekus, sans=None, before=None, after=None):
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    b = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before or NOW - DAY)
        .not_valid_after(after or NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def pem_key(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def write_id(root, sub, leaf, anchor, crl=None):
    d = os.path.join(root, sub)
    os.makedirs(d, exist_ok=True)
    key, cert = leaf
    fd = os.open(os.path.join(d, "key.pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem_key(key))
    with open(os.path.join(d, "cert.pem"), "wb") as f:
        f.write(pem_cert(cert))
    with open(os.path.join(d, "ca.pem"), "wb") as f:
        f.write(pem_cert(anchor[1]))
    if crl is not None:
        with open(os.path.join(d, "crl.pem"), "wb") as f:
            f.write(crl.public_bytes(serialization.Encoding.PEM))


def main(root):
    ca = make_ca("sxfer test CA")
    other = make_ca("sxfer other CA")
    srv_eku = [ExtendedKeyUsageOID.SERVER_AUTH]
    cli_eku = [ExtendedKeyUsageOID.CLIENT_AUTH]
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]

    revoked = make_leaf(ca, "mallory", cli_eku)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca[1].subject)
        .last_update(NOW - DAY)
        .next_update(NOW + 7 * DAY)
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revoked[1].serial_number)
            .revocation_date(NOW - DAY)
            .build()
        )
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(ca[0], hashes.SHA256())
    )

    write_id(root, "server", make_leaf(ca, "server", srv_eku, sans), ca, crl)
    stale = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca[1].subject)
        .last_update(NOW - 8 * DAY)
        .next_update(NOW - DAY)
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(ca[0], hashes.SHA256())
    )
    write_id(root, "server_stale_crl", make_leaf(ca, "server", srv_eku, sans), ca, stale)
    write_id(root, "client", make_leaf(ca, "alice", cli_eku), ca)
    write_id(root, "client_revoked", revoked, ca)
    write_id(root, "client_wrong_eku", make_leaf(ca, "bob", srv_eku), ca)
    code_eku = [ExtendedKeyUsageOID.CODE_SIGNING]
    write_id(root, "client_no_tls_eku", make_leaf(ca, "dave", code_eku), ca)
    write_id(root, "client_other_ca", make_leaf(other, "eve", cli_eku), ca)
    write_id(root, "server_other_ca", make_leaf(other, "server", srv_eku, sans), ca, crl)
    write_id(
        root,
        "client_expired",
        make_leaf(ca, "carol", cli_eku, None, NOW - 30 * DAY, NOW - DAY),
        ca,
    )
    write_id(
        root,
        "server_expired",
        make_leaf(ca, "server", srv_eku, sans, NOW - 30 * DAY, NOW - DAY),
        ca,
        crl,
    )


if __name__ == "__main__":
    main(sys.argv[1])
