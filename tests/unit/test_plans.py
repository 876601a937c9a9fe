"""Each CA's plan (pipeline/build.py): the steps its configuration needs, in the request path's order.

Every combination of the features that shape a plan — mode × audit log × client certificates ×
signed requests × authorization × forwarding × live SQL source — is asked of
:func:`plan_steps`, and its list compared with the one spelled out here; then real workers are
built and their composed chains checked step by step against the plans.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from certstatus.app import build_application, prepare
from certstatus.config import CaSettings, SqlSettings
from certstatus.config_ops import AccessSettings, AuditSettings, OperationsSettings, TlsSettings
from certstatus.pipeline.build import POLICY_STEPS, plan_steps
from tests.precomputed_helpers import ca_settings, copy_pki, settings_for

MODES = ("live", "precomputed", "cached")
FEATURES = ("audit", "client_auth", "signed_requests", "authorization", "forward", "sql")


def _configured(mode: str, features: set[str]) -> tuple[CaSettings, OperationsSettings, bool]:
    ca = CaSettings(name="ca", certificate=Path("ca.pem"), mode=mode, crl=("ca.crl",))
    tls, access = TlsSettings(), AccessSettings()
    if "client_auth" in features:
        tls = dataclasses.replace(tls, client_auth="optional", client_trust_anchors=(Path("clients.pem"),))
    if "signed_requests" in features:
        access = dataclasses.replace(access, signer_trust_anchors=(Path("signers.pem"),))
        ca = dataclasses.replace(ca, require_signed_requests=True)
    if "authorization" in features:
        ca = dataclasses.replace(ca, authorization="by_authentication")
    if "forward" in features:
        ca = dataclasses.replace(ca, forward=("http://responder.example/",))
    if "sql" in features:
        ca = dataclasses.replace(ca, sql=SqlSettings(dsn="postgresql://db/ca", query="SELECT 1"))
    return ca, OperationsSettings(tls=tls, access=access), "audit" in features


def _combinations():
    for mode in MODES:
        for flags in itertools.product((False, True), repeat=len(FEATURES)):
            features = {name for name, on in zip(FEATURES, flags, strict=True) if on}
            if "sql" in features and (mode != "live" or "forward" in features):
                continue  # refused by the configuration: a live SQL source is live mode, not forwarded
            yield mode, frozenset(features)


def _expected(mode: str, features: frozenset[str], cache: bool) -> tuple[str, ...]:
    """The plan spelled out: policy steps in the path's order, then what the mode needs."""
    policy = []
    if "audit" in features:
        policy.append("audit")
    if features & {"client_auth", "signed_requests"}:
        policy.append("authenticate")
    if features & {"signed_requests", "authorization"}:
        policy.append("authorize")
    if "forward" in features:
        return (*policy, "forward")
    if "sql" in features:
        return (*policy, "live sql", "sign")
    tail = {
        "live": ("freshness", "sign"),
        "precomputed": ("freshness", "nonce policy", "mode", "answer cache", "pre-signed", "sign"),
        "cached": ("freshness", "answer cache", "pre-signed", "sign"),
    }[mode]
    if not cache:
        tail = tuple(step for step in tail if step != "answer cache")
    if mode != "live" and not policy and cache:
        return ("edge cache", *tail)  # the shortest plan: edge cache → pre-signed bytes → live signature
    return (*policy, *tail)


@pytest.mark.parametrize(("mode", "features"), list(_combinations()), ids=lambda value: (
    value if isinstance(value, str) else "+".join(sorted(value)) or "plain"))
def test_a_plan_holds_exactly_the_steps_its_ca_is_configured_with(mode, features):
    ca, ops, audit = _configured(mode, set(features))
    for cache in (True, False):
        steps = plan_steps(ca, ops, audit=audit, cache=cache)
        assert steps == _expected(mode, features, cache)
        fast = not POLICY_STEPS.intersection(steps)
        assert fast == (not features)  # every feature here is a policy step; none: the fast plan


def test_the_shortest_plans_by_mode():
    ops = OperationsSettings()
    plain = {mode: plan_steps(_configured(mode, set())[0], ops, audit=False, cache=True) for mode in MODES}
    assert plain == {
        "live": ("freshness", "sign"),
        "precomputed": ("edge cache", "freshness", "nonce policy", "mode", "answer cache", "pre-signed", "sign"),
        "cached": ("edge cache", "freshness", "answer cache", "pre-signed", "sign"),
    }


def _chain_steps(plan) -> list[str]:
    return [type(step).__name__ for step in plan.chain]


def test_built_plans_compose_the_steps_they_name(demo_pki, tmp_path):
    """Three CAs of one worker: each plan's chain holds exactly its own steps."""
    cas = [
        ca_settings(copy_pki(demo_pki, tmp_path / "p1"), "live", name="open-live", path="/live/"),
        ca_settings(copy_pki(demo_pki, tmp_path / "p2"), "precomputed", name="open-pre", path="/pre/"),
        ca_settings(copy_pki(demo_pki, tmp_path / "p3"), "cached", name="named", path="/named/",
                    authorization="by_name", authorized_names=("CN=alice",)),
    ]  # fmt: skip
    settings = settings_for(tmp_path / "store.sqlite3", *cas)
    prepare(settings)
    app = build_application(settings, watch=False)
    try:
        plans = app.pipeline.plans
        assert plans["open-live"].steps == ("freshness", "sign") and plans["open-live"].fast
        assert plans["open-pre"].fast and plans["open-pre"].steps[0] == "edge cache"
        assert plans["named"].steps == ("authorize", "freshness", "answer cache", "pre-signed", "sign")
        assert not plans["named"].fast
        assert _chain_steps(plans["open-live"]) == ["FreshnessGuard", "LocalStatusSigner"]
        assert _chain_steps(plans["open-pre"]) == [
            "FreshnessGuard", "NoncePolicy", "ModePolicy", "AnswerCacheStep", "PrecomputedLookup", "LocalStatusSigner"]
        assert _chain_steps(plans["named"]) == [
            "Authorize", "FreshnessGuard", "AnswerCacheStep", "PrecomputedLookup", "LocalStatusSigner"]
    finally:
        app.close()


def test_an_audit_log_puts_every_plan_on_the_full_path(demo_pki, tmp_path):
    settings = settings_for(tmp_path / "store.sqlite3", ca_settings(copy_pki(demo_pki, tmp_path / "p"), "precomputed"))
    settings = dataclasses.replace(settings, ops=dataclasses.replace(
        settings.ops, audit=AuditSettings(log=str(tmp_path / "audit.log"))))
    prepare(settings)
    app = build_application(settings, watch=False)
    try:
        plan = app.pipeline.plans["demo"]
        assert plan.steps == ("audit", "freshness", "nonce policy", "mode", "answer cache", "pre-signed", "sign")
        assert not plan.fast
        assert _chain_steps(plan)[0] == "Audit"
    finally:
        app.close()
