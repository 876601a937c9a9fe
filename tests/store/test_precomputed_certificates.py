"""The certificates pre-signed responses carry, and dropping the responses of one signer (both stores)."""

from __future__ import annotations

import datetime as dt

from certstatus.der import certificates_element
from certstatus.model import serial_key
from certstatus.store.base import SignedBatch, SourceState

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
RESPONDER_A = certificates_element([b"\x30\x03\x02\x01\x0a"])  # stand-ins for DER certificates: stored as bytes
RESPONDER_B = certificates_element([b"\x30\x03\x02\x01\x0b"])


def _issuer(store, name: str, serials: list[int]) -> int:
    issuer_id = store.register_issuer(name, name.encode())
    store.replace_source(issuer_id, SourceState("index", "index.txt", T0, len(serials)), issued=serials, revoked=[])
    return issuer_id


def _sign(store, issuer_id: int, element: bytes, serials: list[int]) -> None:
    rows = [(serial_key(serial), b"sha1-%d" % serial, b"sha256-%d" % serial) for serial in serials]
    batch = SignedBatch(element, T0, T0 + DAY, T0 + DAY / 2, rows)
    store.store_signed(issuer_id, batch, change_counter=store.change_counters()[issuer_id])


def test_the_responses_of_one_signer_are_dropped_and_pending_again(store) -> None:
    demo = _issuer(store, "demo", [1, 2, 3])
    other = _issuer(store, "other", [1])
    _sign(store, demo, RESPONDER_A, [1, 2])
    _sign(store, demo, RESPONDER_B, [3])
    _sign(store, other, RESPONDER_A, [1])
    ids = {element: certs_id for certs_id, element in store.precomputed_certificates().items()}
    assert set(ids) == {RESPONDER_A, RESPONDER_B}
    assert RESPONDER_A in store.precomputed(demo, 1, "sha1").der  # the certificates the response carries

    assert store.drop_precomputed(demo, ids[RESPONDER_A]) == 2
    assert store.precomputed(demo, 1, "sha1") is None and store.precomputed(demo, 2, "sha256") is None
    assert store.precomputed(demo, 3, "sha1") is not None  # another signer's
    assert store.precomputed(other, 1, "sha1") is not None  # another issuer's
    assert [serial for batch in store.pending_precomputed(demo, "missing", now=T0) for serial in batch] == [1, 2]
    assert store.drop_precomputed(demo, ids[RESPONDER_A]) == 0
