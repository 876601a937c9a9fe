"""The parts authentication is made of: name table, requestorName text, proxy header, signatures."""

from __future__ import annotations

import base64
import datetime as dt
from urllib.parse import quote

import pytest
from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from certstatus.access.header import BadCertificateHeader, decode_certificate_header
from certstatus.access.names import NameTable, general_name_text
from certstatus.access.signatures import SignatureRejected, verify_signature
from certstatus.clock import ManualClock
from certstatus.signing.algorithms import ALGORITHMS
from certstatus.signing.lifecycle import generate_file_key
from certstatus.access.trust import ChainVerifier, NotAuthenticated


def _name(text: str) -> x509.Name:
    return x509.Name.from_rfc4514_string(text)


def test_exact_names_match_attribute_by_attribute_ignoring_case_and_spacing():
    table = NameTable.parse(["CN=App One,O=Example"])
    assert table.match(_name("CN=app   one,O=EXAMPLE")) == "CN=App One,O=Example"
    assert table.match(_name("CN=App One,O=Example,C=DE")) is None
    assert table.match(_name("CN=App One,O=Other")) is None


@pytest.mark.parametrize("entry", ["CN=app1,OU=Payments,O=Example", "O=Example,OU=Payments,CN=app1"])
def test_exact_names_match_in_rfc4514_order_and_in_the_order_openssl_prints(entry):
    """RFC 4514 writes the last RDN first; `openssl x509 -subject` prints the first first: both name one subject."""
    subject = x509.Name([
        x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Example"),
        x509.NameAttribute(x509.NameOID.ORGANIZATIONAL_UNIT_NAME, "Payments"),
        x509.NameAttribute(x509.NameOID.COMMON_NAME, "app1"),
    ])  # the certificate's order: O, OU, CN
    table = NameTable.parse([entry])
    assert table.match(subject) == entry
    assert table.match(_name("CN=app1,OU=Payments,O=Example")) == entry
    assert table.match(_name("O=Example,CN=app1,OU=Payments")) == entry  # any order of the same RDNs


def test_exact_names_compare_rdns_as_a_multiset_and_keep_multivalued_rdns_whole():
    table = NameTable.parse(["CN=app1,OU=a,OU=a,O=Example", "CN=app2+UID=7,O=Example"])
    assert table.match(_name("OU=a,CN=app1,O=Example,OU=a")) == "CN=app1,OU=a,OU=a,O=Example"
    assert table.match(_name("CN=app1,OU=a,O=Example")) is None  # one OU=a less: another subject
    assert table.match(_name("O=Example,UID=7+CN=app2")) == "CN=app2+UID=7,O=Example"
    assert table.match(_name("CN=app2,UID=7,O=Example")) is None  # two RDNs are not one multi-valued RDN


@pytest.mark.parametrize("nameopt", [None, "compat", "RFC2253"])
def test_a_subject_copied_from_openssl_x509_subject_matches_the_certificate(tmp_path, nameopt):
    """What `openssl x509 -subject` prints (OpenSSL 3's default one-line form with spaces, quotes and
    `+`; the older compat form with slashes; RFC 2253), pasted into authorized_names, names the certificate."""
    import subprocess

    subject = x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "DE")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Example, Inc.")]),
        x509.RelativeDistinguishedName([
            x509.NameAttribute(x509.NameOID.COMMON_NAME, "app 1"), x509.NameAttribute(x509.NameOID.USER_ID, "7"),
        ]),
        x509.RelativeDistinguishedName([x509.NameAttribute(x509.NameOID.EMAIL_ADDRESS, "ops@example.com")]),
    ])  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    path = tmp_path / "client.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    command = ["openssl", "x509", "-noout", "-subject", "-in", str(path)] + (["-nameopt", nameopt] if nameopt else [])
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().removeprefix("subject=")
    table = NameTable.parse([printed])
    assert table.match(subject) == printed, printed
    other = x509.Name([*subject.rdns[:-1], x509.RelativeDistinguishedName([x509.NameAttribute(x509.NameOID.EMAIL_ADDRESS, "x@example.com")])])
    assert table.match(other) is None


def test_a_dn_in_no_known_form_is_refused_naming_the_entry():
    from certstatus.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        NameTable.parse(["app1 of Example"])
    assert "'app1 of Example' does not parse" in str(refused.value)


def test_glob_and_regular_expression_entries_match_the_rfc4514_string():
    table = NameTable.parse(["glob:CN=*,OU=Payments,O=Example", r"re:^CN=app[0-9]+,O=Example$"])
    assert table.match(_name("CN=gateway,OU=Payments,O=Example")) == "glob:CN=*,OU=Payments,O=Example"
    assert table.match(_name("CN=app42,O=Example")) == r"re:^CN=app[0-9]+,O=Example$"
    assert table.match(_name("CN=app42x,O=Example")) is None


def test_requestor_names_are_rendered_for_logs_and_billing():
    directory = asn1_x509.GeneralName(name="directory_name", value=asn1_x509.Name.build(
        {"organization_name": "Example", "common_name": "relying party"}))
    assert general_name_text(directory.dump()) == "CN=relying party,O=Example"
    email = asn1_x509.GeneralName(name="rfc822_name", value="ops@example.net")
    assert general_name_text(email.dump()) == "email:ops@example.net"
    assert general_name_text(b"\x01\x02").startswith("undecodable:")


def test_proxy_certificate_header_forms_all_decode_to_the_same_der(demo_pki):
    pem = demo_pki.leaves["good"].read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    forms = [
        quote(pem.decode(), safe="").encode(),                      # nginx $ssl_client_escaped_cert
        pem.replace(b"\n", b" "),                                   # Apache, newlines as spaces
        pem.replace(b"\n", b"\n\t"),                                # header continuation with tabs
        base64.b64encode(der),                                      # HAProxy ssl_c_der,base64
        b":" + base64.b64encode(der) + b":",                        # RFC 9440 Client-Cert
    ]
    for value in forms:
        assert decode_certificate_header(value) == (der,)
    chain = decode_certificate_header(pem + demo_pki.ca_cert.read_bytes())
    assert len(chain) == 2 and chain[0] == der
    with pytest.raises(BadCertificateHeader):
        decode_certificate_header(b"(null)")


@pytest.mark.parametrize("kind", ["rsa-pkcs1", "rsa-pss", "ecdsa", "ed25519", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87"])
def test_signatures_verify_with_the_algorithm_they_name(kind):
    data = b"tbsRequest bytes"
    if kind.startswith("rsa"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa-pkcs1":
            signature, algorithm = key.sign(data, padding.PKCS1v15(), hashes.SHA256()), {"algorithm": "sha256_rsa"}
        else:
            signature = key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
            algorithm = {"algorithm": "rsassa_pss", "parameters": {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
                "salt_length": 32}}
    elif kind == "ecdsa":
        key = ec.generate_private_key(ec.SECP384R1())
        signature, algorithm = key.sign(data, ec.ECDSA(hashes.SHA384())), {"algorithm": "sha384_ecdsa"}
    elif kind.startswith("ml-dsa"):  # a requestor with a post-quantum key (RFC 9881 identifiers)
        key = generate_file_key(kind)
        signature, algorithm = key.sign(data), {"algorithm": ALGORITHMS[kind].oid}
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        signature, algorithm = key.sign(data), {"algorithm": "ed25519"}
    algorithm_der = algos.SignedDigestAlgorithm(algorithm).dump()
    verify_signature(key.public_key(), algorithm_der, signature, data)
    with pytest.raises(SignatureRejected, match="does not verify"):
        verify_signature(key.public_key(), algorithm_der, signature, data + b"!")


def test_sha1_signatures_and_mismatched_keys_are_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"tbsRequest bytes"
    sha1 = algos.SignedDigestAlgorithm({"algorithm": "sha1_ecdsa"}).dump()
    with pytest.raises(SignatureRejected, match="sha1 is not accepted"):
        verify_signature(key.public_key(), sha1, key.sign(data, ec.ECDSA(hashes.SHA1())), data)
    rsa_alg = algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}).dump()
    with pytest.raises(SignatureRejected, match="does not fit"):
        verify_signature(key.public_key(), rsa_alg, key.sign(data, ec.ECDSA(hashes.SHA256())), data)


def test_ml_dsa_signatures_of_another_parameter_set_or_with_parameters_are_refused():
    data = b"tbsRequest bytes"
    key = generate_file_key("ml-dsa-65")
    signature = key.sign(data)
    with pytest.raises(SignatureRejected, match="a ml-dsa-44 signature does not fit"):
        verify_signature(key.public_key(), ALGORITHMS["ml-dsa-44"].der, signature, data)
    with_null = bytes.fromhex("300d0609608648016503040312" + "0500")  # RFC 9881 §2: parameters absent
    with pytest.raises(SignatureRejected, match="unsupported signature algorithm.*with parameters"):
        verify_signature(key.public_key(), with_null, signature, data)
    with pytest.raises(SignatureRejected, match="does not fit"):
        verify_signature(ec.generate_private_key(ec.SECP256R1()).public_key(), ALGORITHMS["ml-dsa-65"].der, signature, data)


def test_chain_verifier_accepts_a_chain_to_an_anchor_and_refuses_at_expiry(demo_pki):
    root = x509.load_pem_x509_certificate(demo_pki.root_cert.read_bytes())
    ca = x509.load_pem_x509_certificate(demo_pki.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(demo_pki.leaves["good"].read_bytes())
    clock = ManualClock(dt.datetime.now(dt.timezone.utc))
    verifier = ChainVerifier([root], clock)
    assert [c.subject for c in verifier.verify(leaf, [ca])] == [leaf.subject, ca.subject, root.subject]
    with pytest.raises(NotAuthenticated):
        verifier.verify(leaf, [])  # no path without the intermediate
    clock.set(leaf.not_valid_after_utc + dt.timedelta(days=1))
    with pytest.raises(NotAuthenticated):
        verifier.verify(leaf, [ca])  # the cached verdict ends with the leaf's validity
