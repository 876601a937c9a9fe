"""The rules ``certstatus check`` observes from outside, and the judgement of each answer.

:data:`RULES` lists every rule with its source. :func:`judge` turns the
replies of :mod:`certstatus.check.probe` into :class:`Finding` objects, one
per rule and answer it applies to; :func:`summarise` folds them into one
line per rule, the worst result first. Results: ``violation`` (the rule is
broken: the check fails), ``warning`` (a recommendation is not followed),
``note`` (worth knowing, not a fault) and ``ok``.

Times are the reply's arrival time (aware UTC); clock differences up to
:data:`~certstatus.protocol.response_check.CLOCK_SKEW` are tolerated. The
CA/B Forum refresh deadline of a response is :func:`certstatus.refresh.refresh_due`,
the rule certstatus's own generator follows.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509 import ocsp

from certstatus.check import responder as responder_rules
from certstatus.check.probe import HASHES, Reply
from certstatus.pipeline.audit import RESPONSE_STATUS_NAMES
from certstatus.protocol.response import CERT_STATUS_NAMES
from certstatus.protocol.response_check import CLOCK_SKEW
from certstatus.refresh import refresh_due

#: CA/B BR §4.9.10: the validity interval (nextUpdate − thisUpdate, inclusive: + 1 s) is 8 h to 10 days.
MIN_VALIDITY = dt.timedelta(hours=8)
MAX_VALIDITY = dt.timedelta(days=10)
OCSP_RESPONSE_TYPE = "application/ocsp-response"
RESULTS = ("violation", "warning", "note", "ok")  # worst first


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule: ``key`` (stable, used in JSON), ``title`` and ``source`` (where it is written)."""

    key: str
    title: str
    source: str


RULES: tuple[Rule, ...] = (
    Rule("get", "GET supported", "RFC 5019 §5; CA/B BR §4.9.10"),
    Rule("post", "POST supported", "RFC 6960 Appendix A.1"),
    Rule("answered", "successful response for each assigned serial", "RFC 6960 §2.3"),
    Rule("content_type", "Content-Type application/ocsp-response", "RFC 6960 Appendix A.2; RFC 5019 §5"),
    Rule("cache_headers", "cache headers consistent with the response (GET)", "RFC 5019 §5, §6.2"),
    Rule("etag", "ETag names the response bytes; If-None-Match answered", "RFC 5019 §6.2; RFC 9110 §8.8.3, §13.1.2"),
    Rule("signature", "signature verifies with the signer's key", "RFC 6960 §4.2.1; RFC 5019 §2.2.2"),
    Rule("responder", "signed by the CA or a delegated responder it issued", "RFC 6960 §4.2.2.2; RFC 5019 §2.2.2"),
    Rule("responder_eku", "delegated responder: id-kp-OCSPSigning only", "RFC 6960 §4.2.2.2; CA/B BR §7.1.2.8.5"),
    Rule("responder_nocheck", "delegated responder: id-pkix-ocsp-nocheck", "RFC 6960 §4.2.2.2.1; CA/B BR §7.1.2.8.6"),
    Rule("responder_key_usage", "delegated responder: keyUsage digitalSignature", "CA/B BR §7.1.2.8.7"),
    Rule("responder_aia_crldp", "delegated responder: no CRLDP (nor, preferably, AIA)", "CA/B BR §7.1.2.8.2; RFC 5019 §2.2.2"),
    Rule("cert_id", "CertID echoed as asked (hash algorithm, hashes, serial)", "RFC 6960 §4.2.1; RFC 9919 §3.1.1"),
    Rule("nonce", "nonce echoed when sent", "RFC 9654 §2.1; RFC 5019 §2.2.1 (may be ignored)"),
    Rule("next_update", "nextUpdate present", "RFC 5019 §2.2.4"),
    Rule("validity", "validity interval 8 h to 10 days", "CA/B BR §4.9.10"),
    Rule("signer_not_after", "nextUpdate not after the signer certificate's notAfter", "Mozilla Root Store Policy 3.1; RFC 6960 §2.4"),
    Rule("current", "thisUpdate/producedAt not in the future, response current and refreshed in time", "RFC 6960 §4.2.2.1; CA/B BR §4.9.10"),
    Rule("unassigned", "an unassigned serial is never good", "CA/B BR §4.9.10"),
    Rule("size", "response size", "informative"),
)
RULES_BY_KEY = {rule.key: rule for rule in RULES}


@dataclass(frozen=True, slots=True)
class Finding:
    """What one answer (``probe``, its label) showed about rule ``rule`` (a key of
    :data:`RULES_BY_KEY`). ``size`` carries the byte count of the ``size`` rule."""

    rule: str
    result: str
    detail: str
    probe: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """One rule over every answer: the worst ``result`` with its ``detail`` (and the answer
    that showed it), and how many answers gave each result (``counts``)."""

    rule: Rule
    result: str
    detail: str
    probe: str | None
    counts: dict[str, int] = field(default_factory=dict)


def judge(replies: Sequence[Reply], issuer: x509.Certificate) -> list[Finding]:
    """Findings of every reply (see the module docstring), then those across replies (ETag)."""
    findings: list[Finding] = []
    for reply in replies:
        findings.extend(_judge_reply(reply, issuer))
    findings.extend(_etag(replies))
    return findings


def summarise(findings: Iterable[Finding]) -> list[Summary]:
    """One :class:`Summary` per rule of :data:`RULES` that any finding concerns, in that order."""
    by_rule: dict[str, list[Finding]] = {}
    for finding in findings:
        by_rule.setdefault(finding.rule, []).append(finding)
    summaries = []
    for rule in RULES:
        found = by_rule.get(rule.key)
        if not found:
            continue
        counts = {result: sum(f.result == result for f in found) for result in RESULTS if any(f.result == result for f in found)}
        worst = min(found, key=lambda f: RESULTS.index(f.result))
        detail = worst.detail
        if worst.result in ("ok", "note"):  # nothing to single out: say what was seen
            seen = list(dict.fromkeys(f.detail for f in found))
            detail = "; ".join(seen[:2]) + (f"; … ({len(seen) - 2} more)" if len(seen) > 2 else "")
        if rule.key == "size":
            sizes = [f.size for f in found if f.size is not None]
            detail = f"{min(sizes)} bytes" if min(sizes) == max(sizes) else f"{min(sizes)} to {max(sizes)} bytes"
        summaries.append(Summary(rule, worst.result, detail, worst.probe, counts))
    return summaries


def _judge_reply(reply: Reply, issuer: x509.Certificate) -> list[Finding]:
    probe = reply.probe
    label = probe.label
    if probe.conditional is not None:
        return []  # judged with its original GET (_etag)
    method_rule = "get" if probe.method == "GET" else "post"
    if reply.error is not None:
        return [Finding(method_rule, "violation", f"no HTTP answer: {reply.error}", label)]
    if reply.status != 200:
        return [Finding(method_rule, "violation", f"HTTP {reply.status}{_response_status_of(reply.body)}", label)]
    findings = [Finding(method_rule, "ok", "HTTP 200", label), _content_type(reply)]
    try:
        response = ocsp.load_der_ocsp_response(reply.body)
    except ValueError as exc:
        return [*findings, Finding("answered", "violation", f"not an OCSP response ({exc})", label)]
    findings.append(Finding("size", "note", f"{len(reply.body)} bytes", label, size=len(reply.body)))
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        name = RESPONSE_STATUS_NAMES[response.response_status]
        if probe.unassigned:  # RFC 5019 §2.2.3: unauthorized when no authoritative record exists
            return [*findings, Finding("unassigned", "ok", f"responseStatus {name}", label)]
        return [*findings, Finding("answered", "violation", f"responseStatus {name}", label)]
    if not probe.unassigned:
        findings.append(Finding("answered", "ok", "successful", label))
    return findings + _judge_response(reply, response, issuer)


def _judge_response(reply: Reply, response: ocsp.OCSPResponse, issuer: x509.Certificate) -> list[Finding]:
    probe, label, now = reply.probe, reply.probe.label, reply.received_at
    signer = responder_rules.find_signer(response, issuer)
    judgements = {
        "signature": responder_rules.signature(reply.body, response, signer),
        "responder": responder_rules.responder(response, signer, issuer, now),
        **responder_rules.profile(signer),
    }
    findings = [Finding(key, j.result, j.detail, label) for key, j in judgements.items()]
    single = _asked_single(response, reply)
    if isinstance(single, Finding):
        return [*findings, single]
    findings.append(Finding("cert_id", "ok", f"{probe.hash_algorithm} CertID", label))
    if (nonce := _nonce(reply, response)) is not None:
        findings.append(nonce)
    if probe.unassigned:
        status = CERT_STATUS_NAMES[single.certificate_status]
        verdict = "violation" if status == "good" else "ok"
        findings.append(Finding("unassigned", verdict, f"certStatus {status} for unassigned serial {probe.serial_number:x}", label))
    findings.extend(_times(single, response, signer, now, label))
    if probe.method == "GET" and probe.nonce is None:
        findings.append(_cache_headers(reply, single, response))
    return findings


def _response_status_of(body: bytes) -> str:
    """`` (responseStatus tryLater)`` when an HTTP error carries an OCSP response, else empty."""
    try:
        return f" (responseStatus {RESPONSE_STATUS_NAMES[ocsp.load_der_ocsp_response(body).response_status]})"
    except ValueError:
        return ""


def _content_type(reply: Reply) -> Finding:
    value = reply.header("content-type")
    kind = (value or "").split(";", 1)[0].strip().lower()
    if kind == OCSP_RESPONSE_TYPE:
        return Finding("content_type", "ok", value or "", reply.probe.label)
    return Finding("content_type", "violation", f"Content-Type is {value!r}" if value else "no Content-Type", reply.probe.label)


def _asked_single(response: ocsp.OCSPResponse, reply: Reply) -> ocsp.OCSPSingleResponse | Finding:
    """The SingleResponse answering the probe's CertID, or a violation of the ``cert_id`` rule."""
    probe = reply.probe
    asked = ocsp.load_der_ocsp_request(probe.der)
    same_serial = []
    for single in response.responses:
        if single.serial_number != asked.serial_number:
            continue
        same_serial.append(single)
        if (single.hash_algorithm.name == HASHES[probe.hash_algorithm].name and single.issuer_name_hash == asked.issuer_name_hash
                and single.issuer_key_hash == asked.issuer_key_hash):  # fmt: skip
            return single
    if same_serial:
        other = same_serial[0].hash_algorithm.name
        detail = f"asked with a {probe.hash_algorithm} CertID, answered with {other}" if other != HASHES[probe.hash_algorithm].name \
            else "the issuerNameHash/issuerKeyHash answered differ from those asked"  # fmt: skip
    else:
        detail = f"no SingleResponse for serial {probe.serial_number:x}"
    return Finding("cert_id", "violation", detail, probe.label)


def _nonce(reply: Reply, response: ocsp.OCSPResponse) -> Finding | None:
    label, sent = reply.probe.label, reply.probe.nonce
    try:
        echoed: bytes | None = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    except ValueError as exc:
        return Finding("nonce", "violation", f"undecodable response extensions ({exc})", label)
    if sent is None:
        return Finding("nonce", "warning", "a nonce came back although none was sent", label) if echoed is not None else None
    if echoed is None:
        return Finding("nonce", "note", "the nonce was ignored (RFC 5019 allows it: freshness by time only)", label)
    if echoed != sent:
        return Finding("nonce", "violation", "the nonce returned differs from the one sent", label)
    return Finding("nonce", "ok", "echoed", label)


def _times(single: ocsp.OCSPSingleResponse, response: ocsp.OCSPResponse, signer: responder_rules.Signer,
           now: dt.datetime, label: str) -> list[Finding]:  # fmt: skip
    this_update, next_update = single.this_update_utc, single.next_update_utc
    findings = []
    current = []
    if this_update > now + CLOCK_SKEW:
        current.append(f"thisUpdate {_t(this_update)} is in the future")
    if response.produced_at_utc > now + CLOCK_SKEW:
        current.append(f"producedAt {_t(response.produced_at_utc)} is in the future")
    if next_update is None:
        findings.append(Finding("next_update", "violation", "no nextUpdate", label))
    else:
        findings.append(Finding("next_update", "ok", "present", label))
        window = next_update - this_update + dt.timedelta(seconds=1)  # BR §4.9.10 counts both ends
        verdict = "ok" if MIN_VALIDITY <= window <= MAX_VALIDITY else "violation"
        findings.append(Finding("validity", verdict, f"{_span(window)} (nextUpdate − thisUpdate + 1 s)", label))
        if signer.certificate is not None:
            not_after = signer.certificate.not_valid_after_utc
            if next_update <= not_after:
                findings.append(Finding("signer_not_after", "ok", f"nextUpdate not after signer notAfter {_t(not_after)}", label))
            else:
                findings.append(Finding("signer_not_after", "violation", f"nextUpdate {_t(next_update)} > signer notAfter {_t(not_after)}", label))
        if next_update < now - CLOCK_SKEW:
            current.append(f"nextUpdate {_t(next_update)} has passed")
        elif next_update <= this_update:
            current.append("nextUpdate is not after thisUpdate")
        elif now > (due := refresh_due(this_update, next_update)) + CLOCK_SKEW:
            current.append(f"served {_span(now - due)} past its refresh point {_t(due)} (thisUpdate {_span(now - this_update)} ago)")
    if current:
        findings.append(Finding("current", "violation", "; ".join(current), label))
    else:
        findings.append(Finding("current", "ok", f"thisUpdate {_span(now - this_update)} ago", label))
    return findings


def _cache_headers(reply: Reply, single: ocsp.OCSPSingleResponse, response: ocsp.OCSPResponse) -> Finding:
    """RFC 5019 §5/§6.2 headers of a cacheable answer (GET, no nonce) and their agreement with it."""
    label, now = reply.probe.label, reply.received_at
    problems = []
    cache_control = reply.header("cache-control") or ""
    directives = {d.strip().split("=", 1)[0].lower(): d.strip().partition("=")[2] for d in cache_control.split(",") if d.strip()}
    forbidden = [d for d in ("no-cache", "no-store") if d in directives]
    if "no-cache" in (reply.header("pragma") or "").lower():
        forbidden.append("Pragma: no-cache")
    if forbidden:
        problems.append(f"{', '.join(forbidden)} on an authoritative response")
    missing = [name for name, present in (("max-age", "max-age" in directives), ("Last-Modified", reply.header("last-modified")),
                                          ("Expires", reply.header("expires")), ("ETag", reply.header("etag"))) if not present]  # fmt: skip
    if missing:
        problems.append("no " + ", ".join(missing))
    next_update = single.next_update_utc
    if "max-age" in directives and next_update is not None:
        try:
            max_age = int(directives["max-age"])
        except ValueError:
            problems.append(f"max-age {directives['max-age']!r} is not a number")
        else:
            # In seconds: a nextUpdate of 99991231235959Z (a final response) or a huge max-age is no date to add to.
            if max_age > (next_update - now + CLOCK_SKEW).total_seconds():
                problems.append(f"max-age {max_age} s reaches past nextUpdate {_t(next_update)}")
    last_modified = _http_date(reply.header("last-modified"))
    if last_modified is not None and not _floor(single.this_update_utc) <= last_modified <= _floor(response.produced_at_utc):
        problems.append(f"Last-Modified {_t(last_modified)} is outside thisUpdate {_t(single.this_update_utc)} .. producedAt")
    expires = _http_date(reply.header("expires"))
    if expires is not None and next_update is not None and expires > next_update:
        problems.append(f"Expires {_t(expires)} is after nextUpdate {_t(next_update)}")
    for name in ("last-modified", "expires"):
        if reply.header(name) and _http_date(reply.header(name)) is None:
            problems.append(f"{name} {reply.header(name)!r} is not an HTTP date")
    if problems:
        return Finding("cache_headers", "violation", "; ".join(problems), label)
    return Finding("cache_headers", "ok", "max-age, Last-Modified, Expires and ETag agree with the response", label)


def _etag(replies: Sequence[Reply]) -> list[Finding]:
    """ETags across answers: one ETag never names two different bodies; If-None-Match with the
    ETag of the response still served is answered 304 (a 200 with that ETag again is a warning:
    caches then fetch the whole response; a 200 with a new ETag is a responder that signs anew)."""
    findings = []
    bodies: dict[str, bytes] = {}
    for reply in replies:
        etag = reply.header("etag")
        if reply.status != 200 or not etag or reply.probe.nonce is not None:
            continue
        if bodies.setdefault(etag, reply.body) != reply.body:
            findings.append(Finding("etag", "violation", f"ETag {etag} names two different responses", reply.probe.label))
    for reply in replies:
        probe = reply.probe
        if probe.conditional is None:
            continue
        if reply.error is not None:
            findings.append(Finding("etag", "violation", f"no HTTP answer to If-None-Match: {reply.error}", probe.label))
        elif reply.status == 304:
            findings.append(Finding("etag", "ok", "If-None-Match answered 304 Not Modified", probe.label))
        elif reply.status == 200 and reply.header("etag") == probe.conditional:
            findings.append(Finding("etag", "warning", "If-None-Match with the current ETag answered 200, not 304", probe.label))
        elif reply.status == 200:
            findings.append(Finding("etag", "ok", "If-None-Match answered 200 with a newly signed response (new ETag)", probe.label))
        else:
            findings.append(Finding("etag", "violation", f"If-None-Match answered HTTP {reply.status}", probe.label))
    return findings


def _http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


def _floor(when: dt.datetime) -> dt.datetime:
    return when.replace(microsecond=0)


def _t(when: dt.datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%SZ}"


def _span(delta: dt.timedelta) -> str:
    """A duration as "9d 23h 59m 59s" (leading zero units left out)."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts = [(seconds // 86400, "d"), (seconds // 3600 % 24, "h"), (seconds // 60 % 60, "m"), (seconds % 60, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return sign + " ".join(f"{n}{unit}" for n, unit in parts)
