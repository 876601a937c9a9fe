"""Property tests: every parser of outside bytes either works or refuses with its documented error.

Inputs are structure-aware: valid requests written by ``cryptography`` and
``openssl ocsp`` mutated at the byte level and rebuilt from random parts
(CertIDs with odd hashes and serials, nonces of every size, unknown critical
extensions, versions, signatures); CRLs signed by the real CA with random
entries and extensions, and real CRLs mutated; index.txt and issued lists
mutated line by line; admin push batches as random JSON; configuration TOML
mutated. The outcomes allowed per target are in tests/fuzz_world.py; a
finding of the coverage-guided fuzzer (bench/fuzz.py) becomes a test at the end.
Speed per input is measured by ``bench/fuzz.py`` (never a timed test here).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.ocsp import OCSPResponseStatus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certstatus.demo_pki import DemoPki
from certstatus.model import HASH_ALGORITHM_OIDS
from certstatus.protocol import extensions
from certstatus.protocol.certid import issuer_hashes
from certstatus.sources.records import CrlData, IndexData
from tests.fuzz_world import OCSP_REQUEST, FuzzWorld

FUZZ = settings(max_examples=int(os.environ.get("CERTSTATUS_FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def world(demo_pki: DemoPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzWorld]:
    built = FuzzWorld.build(tmp_path_factory.mktemp("fuzz"), demo_pki)
    yield built
    built.close()


# --- byte-level mutation of valid inputs -----------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with 1-4 edits: flip, set, insert, delete, truncate, duplicate a slice, splice another seed."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("flip", "set", "insert", "delete", "truncate", "duplicate", "splice")))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from((0x00, 0x7F, 0x80, 0x81, 0x82, 0xFF, 0x30, 0x04, 0x02, 0xA0)))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate" and data:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
        elif kind == "splice":
            other = draw(st.sampled_from(seeds))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


def _seeds(kind: str) -> st.SearchStrategy[bytes]:
    return st.shared(st.just(kind), key=kind)


# --- OCSP requests built from random parts (RFC 6960 §4.1.1) ----------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a definite length."""
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + content


def der_integer(value: int) -> bytes:
    return tlv(0x02, value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True))


HASH_OIDS = [core.ObjectIdentifier(oid).dump() for oid in HASH_ALGORITHM_OIDS.values()] + [
    core.ObjectIdentifier("1.2.840.113549.2.5").dump(),  # MD5
    core.ObjectIdentifier("1.2.3.4.5").dump(),
]
EXTENSION_OIDS = [
    core.ObjectIdentifier(extensions.NONCE).dump(),
    core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.8").dump(),  # preferred signature algorithms
    core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.4").dump(),  # acceptable responses
    core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.7").dump(),  # service locator
    core.ObjectIdentifier("1.2.3.4").dump(),
]


@st.composite
def cert_ids(draw: st.DrawFn, hashes_by_alg: dict[str, tuple[bytes, bytes]]) -> bytes:
    algorithm = draw(st.sampled_from(HASH_OIDS))
    params = draw(st.sampled_from((b"\x05\x00", b"", b"\x05\x01\x00", b"\x04\x00")))
    real = draw(st.sampled_from(sorted(hashes_by_alg)))
    name_hash, key_hash = hashes_by_alg[real]
    if draw(st.booleans()):
        name_hash = draw(st.binary(max_size=70))
    if draw(st.booleans()):
        key_hash = draw(st.binary(max_size=70))
    serial = draw(st.one_of(st.integers(-(2**64), 2**64), st.integers(-(2**1200), 2**1200), st.sampled_from((0, 1, -1))))
    return tlv(0x30, tlv(0x30, algorithm + params) + tlv(0x04, name_hash) + tlv(0x04, key_hash) + der_integer(serial))


@st.composite
def request_extensions(draw: st.DrawFn) -> bytes:
    items = []
    for _ in range(draw(st.integers(0, 3))):
        oid = draw(st.sampled_from(EXTENSION_OIDS))
        critical = draw(st.sampled_from((b"", b"\x01\x01\xff", b"\x01\x01\x00", b"\x01\x02\xff\xff")))
        size = draw(st.sampled_from((0, 1, 16, 32, 128, 129, 400)))
        value = draw(st.one_of(st.just(tlv(0x04, bytes(size))), st.binary(max_size=40)))
        items.append(tlv(0x30, oid + critical + tlv(0x04, value)))
    return tlv(0x30, b"".join(items))


@st.composite
def built_requests(draw: st.DrawFn, hashes_by_alg: dict[str, tuple[bytes, bytes]]) -> bytes:
    version = draw(st.sampled_from((b"", tlv(0xA0, der_integer(0)), tlv(0xA0, der_integer(1)), tlv(0xA0, b""), tlv(0xA0, der_integer(2**70)))))
    requestor = draw(st.sampled_from((b"", tlv(0xA1, tlv(0xA4, tlv(0x30, b""))), tlv(0xA1, b"\x00"))))
    singles = []
    for _ in range(draw(st.integers(0, 4))):
        single = draw(cert_ids(hashes_by_alg))
        if draw(st.integers(0, 5)) == 0:
            single += tlv(0xA0, draw(request_extensions()))
        singles.append(tlv(0x30, single))
    body = version + requestor + tlv(0x30, b"".join(singles))
    if draw(st.booleans()):
        body += tlv(0xA2, draw(request_extensions()))
    request = tlv(0x30, body)
    if draw(st.integers(0, 4)) == 0:  # optionalSignature [0] EXPLICIT Signature
        algorithm = tlv(0x30, core.ObjectIdentifier("1.2.840.10045.4.3.2").dump())
        request += tlv(0xA0, tlv(0x30, algorithm + tlv(0x03, b"\x00" + draw(st.binary(max_size=72)))))
    return tlv(0x30, request)


def _hashes(world: FuzzWorld) -> dict[str, tuple[bytes, bytes]]:
    return {alg: issuer_hashes(world.issuer, alg) for alg in HASH_ALGORITHM_OIDS}


def _is_ocsp(response) -> bool:
    return dict(response.headers).get(b"content-type") == b"application/ocsp-response"


@FUZZ
@given(data=st.data())
def test_mutated_requests_get_an_ocsp_answer_never_a_5xx(world: FuzzWorld, data: st.DataObject) -> None:
    der = data.draw(mutated(world.seeds["request"]))
    response = world.feed_request(der, data.draw(st.integers(0, 1)))
    assert response.status in (200, 413, 503) and (response.status == 413 or _is_ocsp(response))
    status = x509_ocsp.load_der_ocsp_response(response.body).response_status if response.status != 413 else None
    assert status is not OCSPResponseStatus.INTERNAL_ERROR


@FUZZ
@given(data=st.data())
def test_requests_built_from_random_parts_get_an_ocsp_answer(world: FuzzWorld, data: st.DataObject) -> None:
    der = data.draw(built_requests(_hashes(world)))
    response = world.feed_request(der)
    assert response.status in (200, 503) and _is_ocsp(response)
    assert x509_ocsp.load_der_ocsp_response(response.body).response_status is not OCSPResponseStatus.INTERNAL_ERROR


@FUZZ
@given(data=st.data())
def test_get_paths_answer_ocsp_or_404_never_a_5xx(world: FuzzWorld, data: st.DataObject) -> None:
    raw = data.draw(st.one_of(
        mutated(world.seeds["get"]),
        mutated(world.seeds["request"]).map(base64.urlsafe_b64encode),
        mutated(world.seeds["request"]).map(lambda der: base64.b64encode(der).replace(b"/", b"%2F").replace(b"+", b"%2B")),
        st.binary(max_size=300),
    ))  # fmt: skip
    response = world.feed_get(raw, data.draw(st.integers(0, 7)))
    assert response.status in (200, 304, 404, 413, 503)
    assert response.status in (404, 413) or _is_ocsp(response)


@FUZZ
@given(body=st.binary(max_size=40), method=st.sampled_from(("PUT", "DELETE", "OPTIONS", "PATCH", "get", "")))
def test_other_methods_and_empty_bodies_never_reach_the_pipeline(world: FuzzWorld, body: bytes, method: str) -> None:
    response = world.app.http.handle(method, b"/", OCSP_REQUEST, body, "127.0.0.1")
    assert response.status == 405


# --- CRLs: mutated real ones, and validly signed ones with random contents --------------------


@FUZZ
@given(data=st.data())
def test_mutated_crls_load_or_raise_source_error(world: FuzzWorld, data: st.DataObject) -> None:
    outcome = world.feed_crl(data.draw(mutated(world.seeds["crl"])))
    assert isinstance(outcome, CrlData) or type(outcome).__name__ == "SourceError"


REASONS = [None, *[r for r in x509.ReasonFlags]]


@st.composite
def signed_crls(draw: st.DrawFn, pki: DemoPki) -> bytes:
    """A CRL the real CA key signed, as a compromised CA feed could: odd serials, dates, duplicate entries, extensions."""
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = load_pem_private_key(pki.ca_key.read_bytes(), None)
    epoch = dt.datetime(1950, 1, 1, tzinfo=dt.timezone.utc)
    times = st.integers(0, 150 * 365 * 86400).map(lambda s: epoch + dt.timedelta(seconds=s))
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(last := draw(times))
    builder = builder.next_update(last + dt.timedelta(seconds=draw(st.integers(1, 400 * 86400))))
    if draw(st.booleans()):
        builder = builder.add_extension(x509.CRLNumber(draw(st.integers(0, 2**159))), False)
    if draw(st.integers(0, 3)) == 0:
        builder = builder.add_extension(x509.DeltaCRLIndicator(draw(st.integers(0, 2**64))), True)
    if draw(st.integers(0, 4)) == 0:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), draw(st.booleans()))
    if draw(st.integers(0, 4)) == 0:
        user_certs = draw(st.booleans())
        idp = x509.IssuingDistributionPoint(None, None, user_certs, False, None, not user_certs, False)
        builder = builder.add_extension(idp, True)
    serials = draw(st.lists(st.integers(1, 2**159 - 1), max_size=6))
    for serial in serials + serials[: draw(st.integers(0, 1))]:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(draw(times))
        reason = draw(st.sampled_from(REASONS))
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), False)
        if draw(st.integers(0, 3)) == 0:
            entry = entry.add_extension(x509.InvalidityDate(draw(times).replace(tzinfo=None)), False)
        if draw(st.integers(0, 5)) == 0:
            entry = entry.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.5"), b"\x05\x00"), draw(st.booleans()))
        builder = builder.add_revoked_certificate(entry.build())
    crl = builder.sign(key, hashes.SHA256())
    return crl.public_bytes(draw(st.sampled_from((serialization.Encoding.DER, serialization.Encoding.PEM))))


@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_crls_signed_by_the_ca_with_random_contents_load_or_raise_source_error(world: FuzzWorld, data: st.DataObject) -> None:
    outcome = world.feed_crl(data.draw(signed_crls(world.pki)))
    assert isinstance(outcome, CrlData) or type(outcome).__name__ == "SourceError"


# --- index.txt and issued lists ---------------------------------------------------------------

INDEX_FIELDS = st.sampled_from(
    ("V", "R", "E", "X", "", "270219113010Z", "20270219113010Z", "991332256161Z", "261121113010Z,keyTime,20240102030405Z",
     "261121113010Z,holdInstruction,1.2.3", "261121113010Z,bogus", "261121113010Z,keyTime", "261121113010Z,keyTime,99999999999999Z",
     "1000", "-1", "0x1", "ff" * 40, "unknown", "/CN=x", "\x00", "\t")
)  # fmt: skip


@st.composite
def index_files(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    lines = draw(st.sampled_from(seeds)).decode().split("\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        fields = lines[at].split("\t")
        fields[draw(st.integers(0, len(fields) - 1))] = draw(st.one_of(INDEX_FIELDS, st.text(max_size=20)))
        if draw(st.integers(0, 3)) == 0:
            fields = fields[: draw(st.integers(0, len(fields)))]
        lines[at] = "\t".join(fields)
        if draw(st.integers(0, 4)) == 0:
            lines.append(lines[at])  # a repeated serial
    return "\n".join(lines).encode("utf-8", errors="surrogatepass")


@FUZZ
@given(data=st.data())
def test_mutated_index_files_parse_or_raise_source_error(world: FuzzWorld, data: st.DataObject) -> None:
    raw = data.draw(st.one_of(index_files(world.seeds["index"]), mutated(world.seeds["index"])))
    outcome = world.feed_index(raw)
    assert isinstance(outcome, IndexData) or type(outcome).__name__ == "SourceError"


@FUZZ
@given(data=st.data())
def test_mutated_issued_lists_parse_or_raise_source_error(world: FuzzWorld, data: st.DataObject) -> None:
    lines = st.lists(st.one_of(st.sampled_from(("serial=1a", "0x", "0x1A2B", "1a:2b", "1a::2b", ":", "# c", " ", "ff" * 100)), st.text(max_size=12)), max_size=8)
    raw = data.draw(st.one_of(mutated(world.seeds["issued"]), lines.map(lambda ls: "\n".join(ls).encode("utf-8", errors="surrogatepass"))))
    outcome = world.feed_issued(raw)
    assert isinstance(outcome, tuple) or type(outcome).__name__ == "SourceError"


# --- pushed batches (admin API JSON) ----------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=12),
    st.sampled_from(("1a2b", "0x1A", "1a:2b", "", "-1", "keyCompromise", "2026-01-02T03:04:05Z", "2026-01-02", "9999-12-31T23:59:59+14:00",
                     "0001-01-01T00:00:00-14:00", "removeFromCRL", "certificate_hold")),
)  # fmt: skip
FIELDS = st.sampled_from(("action", "serial", "serials", "changes", "reason", "revocation_time", "invalidity_date", "x"))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FIELDS, inner, max_size=5), max_leaves=12)


@FUZZ
@given(data=st.data())
def test_pushed_batches_are_applied_or_refused_with_a_4xx(world: FuzzWorld, data: st.DataObject) -> None:
    payload = data.draw(st.one_of(
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(FIELDS, JSON_VALUES, max_size=5).map(lambda v: json.dumps(v).encode()),
        mutated(world.seeds["push"]),
    ))  # fmt: skip
    answer = world.feed_push(payload, data.draw(st.integers(0, 4)))
    assert answer.status in (200, 400, 404, 413)


# --- configuration ----------------------------------------------------------------------------

TOML_VALUES = st.sampled_from(
    ('""', "0", "-1", "1e400", "true", "[]", "{}", '"/"', '"x"', '"0s"', '"99999999999d"', '"127.0.0.1:0"', '"[::1]:99999"',
     "[1, 2]", '"/dev/null"', '"../../etc/passwd"', "2026-01-02T03:04:05Z", '"\\u0000"', "9223372036854775807")
)  # fmt: skip


@st.composite
def config_files(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    lines = draw(st.sampled_from(seeds)).decode().split("\n")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        key, sep, _value = lines[at].partition(" = ")
        choice = draw(st.integers(0, 3))
        if sep and choice < 2:
            lines[at] = f"{key} = {draw(TOML_VALUES)}"
        elif choice == 2:
            del lines[at]
        else:
            lines.insert(at, draw(st.sampled_from(("[ca.x]", "[server]", "[ops]", "[audit]", "workers = 2", "ca_dir = \".\"", "path = \"/\""))))
    return "\n".join(lines).encode()


@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_mutated_configs_load_or_raise_config_error(world: FuzzWorld, data: st.DataObject) -> None:
    outcome = world.feed_config(data.draw(st.one_of(config_files(world.seeds["config"]), mutated(world.seeds["config"]))))
    assert type(outcome).__name__ in ("Settings", "ConfigError")


# --- seed corpus of the coverage-guided fuzzer --------------------------------------------------

CORPUS = Path(__file__).resolve().parents[1] / "vectors" / "fuzz"


@pytest.mark.parametrize("target", sorted(p.name for p in CORPUS.iterdir() if p.is_dir()) if CORPUS.is_dir() else [])
def test_every_corpus_file_is_handled(world: FuzzWorld, target: str) -> None:
    """The committed seed corpus (and the regressions the fuzzer found) run through their targets."""
    files = sorted((CORPUS / target).iterdir())
    assert files
    for file in files:
        world.feed(target, file.read_bytes())
