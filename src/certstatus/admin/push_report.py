"""What an unrevoke did, for operators: JSON for the admin API, one sentence for the CLI.

An unrevoke removes a *pushed* revocation only. Whether that made the serial
good depends on the other sources: a CRL or index that lists it keeps it
revoked, and a CA with ``unknown_serials = "revoked"`` answers a serial no
source lists as issued revoked (RFC 6960 §2.2, extended revoked). Each report
says what changed, what the CA's data answers now (the semantics of
:func:`certstatus.pipeline.status.decide`) and which source still revokes it.
"""

from __future__ import annotations

from cryptography.x509.ocsp import OCSPCertStatus

from certstatus.pipeline.status import decide
from certstatus.sources.importer import CaTarget
from certstatus.sources.push import PushResult, SourceRevocation
from certstatus.store.base import StatusReader

_STATUS_NAMES = {OCSPCertStatus.GOOD: "good", OCSPCertStatus.REVOKED: "revoked", OCSPCertStatus.UNKNOWN: "unknown"}


def unrevoke_reports(store: StatusReader, target: CaTarget, result: PushResult) -> list[dict]:
    """One JSON object per unrevoked serial of ``result``::

        {"serial": "1001", "changed": true, "status": "revoked", "extended_revoked": false,
         "revoked_by": [{"source": "crl", "origin": "/etc/pki/ca.crl",
                         "revocation_time": "2026-01-02T03:04:05Z", "reason": "keyCompromise"}]}

    ``changed``: a pushed revocation was removed; ``status``: what the CA's
    data answers now (good, revoked, unknown); ``extended_revoked``: revoked
    only because no source lists the serial as issued; ``revoked_by``: the
    sources that still revoke it (``reason`` null when they give none).
    """
    reports = []
    for item in result.unrevoked:
        decision = decide(store.lookup(target.issuer_id, item.serial_number), target.settings, item.serial_number)
        reports.append({
            "serial": f"{item.serial_number:X}",
            "changed": item.removed,
            "status": _STATUS_NAMES[decision.status],
            "extended_revoked": decision.extended,
            "revoked_by": [_revocation_json(r) for r in item.still_revoked_by],
        })  # fmt: skip
    return reports


def _revocation_json(revocation: SourceRevocation) -> dict:
    entry = revocation.entry
    return {
        "source": revocation.kind,
        "origin": revocation.origin,
        "revocation_time": f"{entry.revocation_time:%Y-%m-%dT%H:%M:%SZ}",
        "reason": None if entry.reason is None else entry.reason.value,
    }


def unrevoke_done(report: dict) -> bool:
    """True when the unrevoke changed something and the serial is no longer answered revoked."""
    return report["changed"] and report["status"] != "revoked"


def unrevoke_sentence(ca: str, report: dict) -> str:
    """One paragraph for the CLI: what changed and what the serial is answered now, and why."""
    serial = report["serial"]
    if report["changed"]:
        head = f"removed the pushed revocation of {serial} of CA {ca}"
    else:
        head = f"nothing changed: {serial} of CA {ca} has no pushed revocation"
    if report["revoked_by"]:
        sources = "; ".join(
            f"the {r['source']} {r['origin']} ({r['reason'] or 'no reason'}, since {r['revocation_time']})" for r in report["revoked_by"]
        )
        return (f"{head}, but it is still revoked by {sources}. Unrevoke removes only pushed revocations: "
                "it stays revoked until that source stops listing it.")  # fmt: skip
    if report["extended_revoked"]:
        return (f"{head}; it is still answered revoked: no source lists it as issued and the CA has "
                'unknown_serials = "revoked" (add it to the index or issued list, or push it as issued).')  # fmt: skip
    now = f"it is answered {report['status']}" + (" (no source lists it as issued)" if report["status"] == "unknown" else "")
    return f"{head}; {now}."
