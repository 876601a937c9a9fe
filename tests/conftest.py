"""Shared fixtures: a demo PKI built once per test session (see certstatus.demo_pki)."""

from __future__ import annotations

import logging

import pytest

from certstatus.demo_pki import DemoPki, make_demo_pki

pytest_plugins = ["tests.postgres", "tests.ci_skips"]  # postgres_server, postgres_dsn, ...; under CI a skip fails


@pytest.fixture(autouse=True)
def _certstatus_logging():
    """Put the ``certstatus`` logger back after each test: a command run in-process (click's CliRunner,
    e.g. ``serve``) configures logging for the whole process (a JSON handler on the captured stream, no
    propagation), which later tests would inherit — their log lines piling up in a dead stream."""
    logger = logging.getLogger("certstatus")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture(scope="session")
def demo_pki(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    """The demo PKI with ECDSA P-256 keys, written to a session temporary folder."""
    return make_demo_pki(tmp_path_factory.mktemp("demo-pki-ec"), key_type="ec")


@pytest.fixture(scope="session")
def demo_pki_rsa(tmp_path_factory: pytest.TempPathFactory) -> DemoPki:
    """The demo PKI with RSA-2048 keys, written to a session temporary folder."""
    return make_demo_pki(tmp_path_factory.mktemp("demo-pki-rsa"), key_type="rsa")


from tests.softhsm import softhsm  # noqa: E402,F401  (session fixture: a SoftHSM2 token)


@pytest.fixture(scope="session")
def access_pki(demo_pki, tmp_path_factory: pytest.TempPathFactory):
    """TLS server, client and request-signer certificates on top of ``demo_pki`` (see tests/access_pki.py)."""
    from tests.access_pki import make_access_pki

    return make_access_pki(demo_pki, tmp_path_factory.mktemp("access-pki"))
