"""The generator's compact rows: byte for byte what the asn1crypto reference encoder and signer give.

The generator stores each response without the delegated responder
certificates (once per signer in ``precomputed_certs``) and one row per
serial; :meth:`SQLiteStore.precomputed` splices the certificates back. With
an RSA-2048 responder (PKCS#1 v1.5 signatures are deterministic) every
stored response must equal the reference: ResponseData encoded by
the asn1crypto reference (tests/ocsp_reference.py) and signed by
:meth:`ResponseSigner.sign` (the live path's encoder of BasicOCSPResponse).
And a schema version 3 file (complete DER, one row per hash algorithm) keeps
serving its rows after the upgrade to the compact table.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from certstatus.app import prepare
from certstatus.clock import ManualClock
from certstatus.generator import signing
from certstatus.generator.run import Generator
from certstatus.pipeline.status import decide
from certstatus.protocol import fast_response as fast
from certstatus.signing.keys import load_certificates
from certstatus.store import migrations
from certstatus.store.base import PRECOMPUTED_HASH_ALGORITHMS, StatusChange
from certstatus.store.sqlite import SQLiteStore, _statements
from tests.ocsp_reference import SingleAnswer, encode_basic_response, encode_response_data
from tests.precomputed_helpers import ca_settings, copy_pki, settings_for

INVALIDITY = dt.datetime(2026, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)


def test_stored_rsa_responses_equal_the_reference_encoder_and_signer(demo_pki_rsa, tmp_path):
    pki = copy_pki(demo_pki_rsa, tmp_path / "pki")
    clock = ManualClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    settings = settings_for(tmp_path / "store.sqlite3", ca_settings(pki, "precomputed"))
    prepare(settings, clock)
    store = SQLiteStore(settings.server.database)
    try:
        with Generator(settings, store, clock=clock, processes=0) as generator:
            issuer_id = generator.issuer_ids["demo"]
            # A pushed revocation with an invalidityDate: the singleExtensions path of the templates.
            pushed = pki.serials["good"]
            store.apply_changes(
                issuer_id,
                [StatusChange("revoke", pushed, clock.now() - dt.timedelta(days=1), x509.ReasonFlags.superseded, INVALIDITY)],
                at=clock.now(),
            )
            summary = generator.run_pass()
            ca_signer = signing._worker.cas["demo"]  # processes=0: the worker state lives in this process
        signer = ca_signer.served.signers.select(now=clock.now())
        serials = [serial for serial, _ in store.stored_responses(issuer_id, "sha1")]
        assert summary.signed == 2 * len(serials) and pushed in serials and len(serials) >= 4
        statuses = set()
        for serial in serials:
            record = store.lookup(issuer_id, serial)
            decision = decide(record, ca_signer.settings, serial)
            statuses.add(decision.status)
            for algorithm in PRECOMPUTED_HASH_ALGORITHMS:
                stored = store.precomputed(issuer_id, serial, algorithm)
                revoked = decision.revoked
                cert_id = fast.encode_cert_id(ca_signer.prefixes[algorithm], serial)
                data = encode_response_data(
                    responder_id=signer.responder_id,
                    produced_at=stored.this_update,
                    answers=[
                        SingleAnswer(
                            cert_id, decision.status, stored.this_update, stored.next_update,
                            revoked.revocation_time if revoked else None, revoked.reason if revoked else None,
                            revoked.invalidity_date if revoked else None,
                        )
                    ],
                )  # fmt: skip
                assert stored.der == signer.sign(data), (hex(serial), algorithm)
        assert statuses == {ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED}
        pushed_response = ocsp.load_der_ocsp_response(store.precomputed(issuer_id, pushed, "sha256").der)
        assert pushed_response.certificates == [signer.certificate]  # the delegated certificate is back
        with sqlite3.connect(settings.server.database) as db:
            # The certificates are stored once, not in each of the rows.
            assert db.execute("SELECT count(*) FROM precomputed_certs").fetchone()[0] == 1
            certs = db.execute("SELECT der FROM precomputed_certs").fetchone()[0]
            assert certs == fast.certificates_element(signer.certificates_der)
            longest = db.execute("SELECT max(length(sha1)) FROM precomputed").fetchone()[0]
            assert longest + len(certs) < len(pushed_response.public_bytes(serialization.Encoding.DER))
    finally:
        store.close()


def test_assembled_body_equals_the_wrapped_response(demo_pki):
    """ResponseAssembler over a stored body: the same bytes as ResponseWrapper.wrap, with and without certificates."""
    certs = (load_certificates(demo_pki.ocsp_cert)[0].public_bytes(serialization.Encoding.DER),)
    algorithm = bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256
    for certificates in ((), certs):
        wrapper = fast.ResponseWrapper(algorithm, certificates)
        assembler = fast.ResponseAssembler(fast.certificates_element(certificates))
        for size in (10, 120, 200, 5000):
            data = fast.tlv(0x30, b"\x01" * size)
            for signature in (b"", b"\x02" * 71, b"\x03" * 256):
                body = wrapper.body(data, signature)
                expected = encode_basic_response(data, algorithm, signature, certificates)
                assert assembler.assemble(body) == wrapper.wrap(data, signature) == expected


def _version_3_file(path) -> None:
    """A store as schema version 3 wrote it: one row per (serial, hash algorithm), complete DER."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)")
    for migration in migrations.migrations("sqlite")[:3]:
        for statement in _statements(migration.sql):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (migration.version, migration.name))
    db.execute("INSERT INTO issuers(id, name, certificate) VALUES (1, 'old', x'00')")
    db.executemany("INSERT INTO issued(issuer_id, serial, source) VALUES (1, ?, 'index')", [(b"\x01",), (b"\x02",), (b"\x03",)])
    rows = [
        (b"\x01", "sha1", b"full-1-sha1", 1000, 90000, 50000, 4, 0),
        (b"\x01", "sha256", b"full-1-sha256", 1000, 90000, 50000, 4, 0),
        (b"\x02", "sha1", b"full-2-sha1", 1000, 90000, 50000, 4, 0),  # half done: sha256 never stored
        (b"\x03", "sha1", b"full-3-sha1", 1000, 90000, 50000, 4, 7),  # status changed since signed
        (b"\x03", "sha256", b"full-3-sha256", 1000, 90000, 50000, 4, 0),
    ]
    db.executemany(
        "INSERT INTO precomputed(issuer_id, serial, hash_algorithm, der, this_update, next_update, renew_at, "
        "signed_seq, changed_seq) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.close()


def test_version_3_rows_keep_serving_after_the_upgrade(tmp_path):
    path = tmp_path / "v3.sqlite3"
    _version_3_file(path)
    store = SQLiteStore(path)  # the embedded store upgrades itself
    try:
        assert store.schema_version() == migrations.latest_version("sqlite") >= 4
        first = store.precomputed(1, 1, "sha256")
        assert first.der == b"full-1-sha256" and store.precomputed(1, 1, "sha1").der == b"full-1-sha1"
        assert first.this_update == dt.datetime.fromtimestamp(1000, dt.timezone.utc)
        assert first.next_update == dt.datetime.fromtimestamp(90000, dt.timezone.utc)
        assert store.precomputed(1, 2, "sha1").der == b"full-2-sha1"
        assert store.precomputed(1, 2, "sha256") is None
        assert store.precomputed(1, 3, "sha256") is None  # one of its responses was marked changed: the row is
        now = dt.datetime.fromtimestamp(2000, dt.timezone.utc)
        assert [s for batch in store.pending_precomputed(1, "missing", now=now) for s in batch] == [2]
        assert [s for batch in store.pending_precomputed(1, "changed", now=now) for s in batch] == [3]
        assert store.next_renewal(1) == dt.datetime.fromtimestamp(50000, dt.timezone.utc)
        assert store.count_pending(1, "missing", now=now) == 1 and store.count_pending(1, "changed", now=now) == 1
    finally:
        store.close()


def test_a_ca_without_a_valid_signer_does_not_stop_the_pass_for_the_others(demo_pki, demo_pki_rsa, tmp_path):
    """The CA's own data revokes the only responder certificate of the first CA: the pass notes why it
    stopped for that CA and signs every pending serial of the second one."""
    first, second = copy_pki(demo_pki_rsa, tmp_path / "first"), copy_pki(demo_pki, tmp_path / "second")
    clock = ManualClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    settings = settings_for(
        tmp_path / "store.sqlite3", ca_settings(first, "precomputed", name="first"), ca_settings(second, "precomputed", name="second")
    )
    prepare(settings, clock)
    store = SQLiteStore(settings.server.database)
    try:
        responder = load_certificates(first.ocsp_cert)[0]
        with Generator(settings, store, clock=clock, processes=0) as generator:
            store.apply_changes(
                generator.issuer_ids["first"],
                [StatusChange("revoke", responder.serial_number, clock.now() - dt.timedelta(hours=1), x509.ReasonFlags.key_compromise)],
                at=clock.now(),
            )
            summary = generator.run_pass()
            second_id = generator.issuer_ids["second"]
        assert summary.cas["first"].unavailable is not None and "signer" in summary.cas["first"].unavailable
        assert summary.cas["first"].signed == 0
        assert summary.cas["second"].unavailable is None
        stored = [serial for serial, _ in store.stored_responses(second_id, "sha1")]
        assert summary.cas["second"].signed == 2 * len(stored) and len(stored) >= 4
    finally:
        store.close()
