"""CertHash (Common PKI / ISIS-MTT, 1.3.36.8.3.13): the hash of the certificate in the SingleResponse.

German qualified CAs require it: ``good`` with CertHash is a positive statement that the responder
knows the certificate (it was issued and is available). A CA with ``cert_hash = true`` takes the
certificates from its issued list; an issued serial whose certificate it does not hold (a line of
``index.txt``) is answered ``unknown`` (no positive statement without it), and a revoked
one stays revoked, with CertHash when the certificate is known. Live and pre-signed alike; the
extension is read back with cryptography and an independent ASN.1 definition.
"""

from __future__ import annotations

import pytest
from asn1crypto import algos, core
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certstatus.config import ConfigError
from certstatus.config import ca_settings as parse_ca_settings
from tests.precomputed_helpers import certificate, copy_pki, parse, request_der
from tests.unit.test_modes import Responder

CERT_HASH_OID = "1.3.36.8.3.13"
KNOWN = ("good", "expired", "revoked-keycompromise")  # in the issued list as certificates


class CertHashSyntax(core.Sequence):
    """CertHash ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, certificateHash OCTET STRING }."""

    _fields = [("hash_algorithm", algos.DigestAlgorithm), ("certificate_hash", core.OctetString)]


def cert_hash_of(response: ocsp.OCSPResponse) -> tuple[str, bytes] | None:
    """(hash algorithm, hash) of the CertHash singleExtension, None without one."""
    for extension in response.single_extensions:
        if extension.oid.dotted_string == CERT_HASH_OID:
            assert not extension.critical
            parsed = CertHashSyntax.load(extension.value.value)
            return parsed["hash_algorithm"]["algorithm"].native, parsed["certificate_hash"].native
    return None


@pytest.fixture
def hashing(demo_pki, tmp_path):
    made = []

    def make(mode: str) -> Responder:
        folder = tmp_path / f"r{len(made)}"
        folder.mkdir()
        pki = copy_pki(demo_pki, folder / "pki")
        issued = folder / "issued.pem"
        issued.write_bytes(b"".join(pki.leaves[name].read_bytes() for name in KNOWN))
        made.append(Responder(pki, folder, mode, issued=issued, cert_hash=True))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.mark.parametrize("mode", ["live", "precomputed"])
def test_a_known_certificate_is_answered_with_its_hash_and_an_unknown_one_never_good(hashing, mode):
    responder = hashing(mode)
    responder.generate()
    for name in KNOWN:
        got = responder.ask(request_der(responder.pki, name))
        assert got.source == ("precomputed" if mode == "precomputed" else "live")
        response = parse(got.der)
        leaf_der = certificate(responder.pki.leaves[name]).public_bytes(serialization.Encoding.DER)
        digest = hashes.Hash(hashes.SHA256())
        digest.update(leaf_der)
        assert cert_hash_of(response) == ("sha256", digest.finalize()), name
        expected = ocsp.OCSPCertStatus.REVOKED if name.startswith("revoked") else ocsp.OCSPCertStatus.GOOD
        assert response.certificate_status is expected
    # good2 is issued (index.txt) but its certificate is not in the issued list: no positive statement.
    unknown = parse(responder.ask(request_der(responder.pki, "good2")).der)
    assert unknown.certificate_status is ocsp.OCSPCertStatus.UNKNOWN and cert_hash_of(unknown) is None
    # Revoked without the certificate: still revoked, without CertHash.
    revoked = parse(responder.ask(request_der(responder.pki, "revoked-superseded")).der)
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED and cert_hash_of(revoked) is None


def test_without_cert_hash_no_extension_and_issued_serials_are_good(demo_pki, tmp_path):
    responder = Responder(copy_pki(demo_pki, tmp_path / "pki"), tmp_path, "live")
    try:
        response = parse(responder.ask(request_der(responder.pki, "good2")).der)
        assert response.certificate_status is ocsp.OCSPCertStatus.GOOD and cert_hash_of(response) is None
    finally:
        responder.close()


def test_cert_hash_needs_an_issued_list(tmp_path):
    table = {"certificate": "ca.pem", "signer_certificate": "o.pem", "signer_key": "o.key", "index": "index.txt", "cert_hash": True}
    with pytest.raises(ConfigError, match="needs the certificates themselves") as error:
        parse_ca_settings("ca1", table, where="t.toml", base=tmp_path)
    assert error.value.key == "ca.ca1.cert_hash" and "issued" in error.value.fix
    assert parse_ca_settings("ca1", {**table, "issued": "issued.d"}, where="t.toml", base=tmp_path).cert_hash
