"""Revocation state of a CA's signers (SignerSet.check_revocations, SignerRevocations) on the demo PKI's
real certificates and a real SQLite store: the next request uses the answer, a change is logged once."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certstatus.clock import ManualClock
from certstatus.errors import SignerUnavailable
from certstatus.signing.revocation import SignerRevocations
from certstatus.signing.signer import ResponseSigner
from certstatus.signing.signer_set import SignerSet
from certstatus.store.base import StatusChange
from certstatus.store.sqlite import SQLiteStore
from tests.signing_support import load_cert, load_key, write_signer

DAY = dt.timedelta(days=1)
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def signers(demo_pki, tmp_path_factory) -> dict[str, ResponseSigner]:
    """Two delegated responders of the demo CA: "older" and "newer" (the default: latest notBefore)."""
    folder = tmp_path_factory.mktemp("signers")
    ca = load_cert(demo_pki.ca_cert)
    found = {}
    for name, age in (("older", 2 * DAY), ("newer", DAY)):
        cert, key = write_signer(demo_pki, folder, name, ec.generate_private_key(ec.SECP256R1()),
                                 not_before=NOW - age, not_after=NOW + 30 * DAY)
        found[name] = ResponseSigner(load_key(key), load_cert(cert), ca, name=name)
    return found


def _revoking(*revoked: ResponseSigner):
    serials = {signer.certificate.serial_number for signer in revoked}
    return lambda signer: signer.certificate.serial_number in serials


def _records(caplog, level=logging.DEBUG) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "certstatus.signing" and r.levelno >= level]


def test_a_revoked_signer_is_replaced_from_the_next_request_and_logged_once(signers, caplog) -> None:
    older, newer = signers["older"], signers["newer"]
    signer_set = SignerSet("demo", [older, newer], ManualClock(NOW), announce=True)
    assert signer_set.select() is newer
    with caplog.at_level(logging.DEBUG, logger="certstatus"):
        assert signer_set.check_revocations(_revoking(newer)) is True
        assert signer_set.select() is older
        assert signer_set.check_revocations(_revoking(newer)) is False  # nothing new: nothing logged
        assert signer_set.select() is older
    [line] = _records(caplog)
    assert line.levelno == logging.WARNING
    assert f"serial {newer.certificate.serial_number:X}" in line.getMessage()
    assert "signer newer" in line.getMessage() and "signer older signs from now on" in line.getMessage()
    assert {s.name: s.state for s in signer_set.states()} == {"older": "active", "newer": "revoked"}
    assert signer_set.revoked_certificates == (newer.certificate.public_bytes(serialization.Encoding.DER),)

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="certstatus"):
        assert signer_set.check_revocations(_revoking()) is True  # unrevoked (a pushed hold released)
    assert signer_set.select() is newer and signer_set.revoked_certificates == ()
    [line] = _records(caplog)
    assert line.levelno == logging.INFO and "no longer revoked" in line.getMessage()


def test_the_last_signer_revoked_means_try_later_said_once_as_an_error(signers, caplog) -> None:
    newer = signers["newer"]
    signer_set = SignerSet("demo", [newer], ManualClock(NOW), announce=True)
    with caplog.at_level(logging.DEBUG, logger="certstatus"):
        signer_set.check_revocations(_revoking(newer))
        for _ in range(3):
            with pytest.raises(SignerUnavailable):
                signer_set.select()
    [line] = _records(caplog)
    assert line.levelno == logging.ERROR and "answering tryLater" in line.getMessage()


def test_a_set_that_does_not_announce_logs_at_debug_only(signers, caplog) -> None:
    older, newer = signers["older"], signers["newer"]
    signer_set = SignerSet("demo", [older, newer], ManualClock(NOW))
    with caplog.at_level(logging.DEBUG, logger="certstatus"):
        signer_set.check_revocations(_revoking(newer))
        signer_set.check_revocations(_revoking(newer, older))
        with pytest.raises(SignerUnavailable):
            signer_set.select()
    assert len(_records(caplog)) == 2 and not _records(caplog, logging.INFO)


def test_a_failed_check_keeps_the_last_known_state(signers, caplog) -> None:
    older, newer = signers["older"], signers["newer"]
    signer_set = SignerSet("demo", [older, newer], ManualClock(NOW), announce=True)
    signer_set.check_revocations(_revoking(newer))

    def store_down(signer):
        raise OSError("database is locked")

    with caplog.at_level(logging.WARNING, logger="certstatus"):
        assert signer_set.check_revocations(store_down) is False
    assert signer_set.select() is older  # still revoked: missing data does not unrevoke
    assert any("cannot check whether signer newer is revoked" in r.getMessage() for r in _records(caplog))


def test_a_reload_asks_before_it_swaps_in_so_a_revoked_new_signer_never_signs(signers) -> None:
    older, newer = signers["older"], signers["newer"]
    signer_set = SignerSet("demo", [older], ManualClock(NOW))
    signer_set.replace([older, newer], is_revoked=_revoking(newer))
    assert signer_set.select() is older
    signer_set.replace([older, newer])  # without a lookup: the state learnt for its serial stays
    assert signer_set.select() is older


def test_revocations_read_the_store_they_are_given_and_tell_listeners(signers, tmp_path, demo_pki) -> None:
    older, newer = signers["older"], signers["newer"]
    store = SQLiteStore(tmp_path / "store.sqlite3")
    try:
        issuer_id = store.register_issuer("demo", load_cert(demo_pki.ca_cert).public_bytes(serialization.Encoding.DER))
        ca = SimpleNamespace(issuer_id=issuer_id, signers=SignerSet("demo", [older, newer], ManualClock(NOW)))
        revocations = SignerRevocations([ca, SimpleNamespace(issuer_id=99, signers=None)])  # a forwarded CA: skipped
        told = []
        revocations.subscribe(told.append)
        assert revocations.check(store) == [] and told == []
        store.apply_changes(issuer_id, [StatusChange("revoke", newer.certificate.serial_number, NOW)], at=NOW)
        assert revocations.check(store, issuer_id=issuer_id + 1) == []  # another issuer's change
        assert revocations.check(store, issuer_id=issuer_id) == [issuer_id]
        assert told == [issuer_id] and ca.signers.select() is older
    finally:
        store.close()


def test_sets_with_nothing_revoked_share_one_empty_revoked_set_and_still_learn_revocations(signers) -> None:
    """A worker holds a signer set per CA; nothing revoked is the common case and costs no set per CA."""
    older, newer = signers["older"], signers["newer"]
    first = SignerSet("a", [older, newer], ManualClock(NOW))
    second = SignerSet("b", [older], ManualClock(NOW))
    first.check_revocations(_revoking())
    second.check_revocations(_revoking())

    assert first._revoked is second._revoked and first._told is second._told
    assert first.check_revocations(_revoking(newer)) is True and first.select() is older
    assert first.check_revocations(_revoking()) is True and first.select() is newer
    assert second._revoked == frozenset()
