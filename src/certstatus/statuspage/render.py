"""The status page's HTML: one document, its CSS inline, charts as inline SVG, no script.

Every text that comes from outside (CA names, origins, error messages, signer names) is
escaped (:func:`html.escape`); links carry their query through :func:`urllib.parse.urlencode`.
The page reloads itself with ``<meta http-equiv="refresh">``, which needs no JavaScript.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from certstatus.statuspage.facts import CaFacts, PageFacts, SourceFacts
from certstatus.statuspage.sparkline import sparkline
from certstatus.statuspage.traffic import Traffic
from certstatus.statuspage.verdict import AMBER, GREEN, RED, span, when

#: The filter states of the page: what each shows.
STATES = {"problems": "red and amber", "all": "all", RED: "red", AMBER: "amber", GREEN: "green"}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2125}
header{background:#1d2125;color:#fff;padding:10px 18px;display:flex;flex-wrap:wrap;gap:14px;align-items:center}
header h1{font-size:18px;margin:0 12px 0 0}
main{padding:12px 18px;max-width:1280px}
.pill{display:inline-block;border-radius:10px;padding:1px 9px;font-weight:600;color:#fff}
.red{--c:#c62828}.amber{--c:#e69500}.green{--c:#2e7d32}
.pill.red,.pill.amber,.pill.green{background:var(--c)}
.ok{background:#2e7d32}.down{background:#c62828}
.box{background:#fff;border-radius:6px;padding:10px 14px;margin:10px 0;box-shadow:0 1px 2px #0002}
.ca{border-left:6px solid var(--c)}
.ca h2{font-size:16px;margin:0 0 4px}
.ca h2 small{font-weight:400;color:#555;margin-left:8px}
.why{margin:2px 0 8px;padding-left:18px}
table{border-collapse:collapse;margin:4px 0 8px;font-size:13px}
th,td{text-align:left;padding:2px 10px 2px 0;vertical-align:top}
th{color:#555;font-weight:600}
td.err,.err{color:#c62828}
.figures{display:flex;flex-wrap:wrap;gap:18px}
.figure{min-width:150px}
.figure b{display:block;font-size:12px;color:#555;font-weight:600}
.spark{vertical-align:middle;stroke:#1565c0;fill:#1565c0;stroke-width:1.5;fill-opacity:1}
.spark polyline{fill:none}
.warn .spark{stroke:#c62828;fill:#c62828}
form.filter{display:flex;gap:8px;align-items:center;flex-wrap:wrap}
nav.pages{margin:10px 0}
nav.pages a,nav.pages span{margin-right:12px}
.muted{color:#666}
"""


@dataclass(frozen=True)
class View:
    """What the reader asked for and what matched: filter ``q`` (part of a CA name), ``state``
    (a key of :data:`STATES`), ``page`` (from 1) of ``pages``, ``matching`` CAs in all; ``note``
    explains a view the page chose itself."""

    q: str
    state: str
    page: int
    pages: int
    matching: int
    note: str | None = None


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _count(value: float) -> str:
    return f"{value:.0f}"


def _seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _time(moment: dt.datetime | None) -> str:
    return "–" if moment is None else when(moment)


def _breakdown(counts: Mapping[str, float], empty: str = "none") -> str:
    parts = [f"{_e(name or 'refused')} {_count(count)}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1])]
    return ", ".join(parts) if parts else empty


def _link(view: View, **change) -> str:
    query = {"q": view.q, "state": view.state, "page": view.page, **change}
    return "/?" + urlencode({k: v for k, v in query.items() if v not in ("", None)})


def render_page(facts: PageFacts, shown: Sequence[CaFacts], traffic: Mapping[str, Traffic], view: View, *, refresh_seconds: int) -> str:
    """The whole page: the summary of every CA, the overall traffic, the filter, ``shown`` (one page
    of CAs, with ``traffic`` by CA name for their charts) and the page links."""
    head = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{refresh_seconds}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>certstatus: {facts.count(RED)} red, {facts.count(AMBER)} amber</title><style>{_CSS}</style></head><body>')  # fmt: skip
    store = ('<span class="pill ok">store reachable</span>' if facts.store_error is None
             else f'<span class="pill down" title="{_e(facts.store_error)}">store unreachable</span>')  # fmt: skip
    counts = " ".join(f'<span class="pill {c}">{facts.count(c)} {c}</span>' for c in (RED, AMBER, GREEN))
    header = (f"<header><h1>certstatus</h1>{counts}{store}"
              f'<span>{len(facts.cas)} CAs · as of {facts.at:%Y-%m-%d %H:%M:%S}Z (gathered in <span id="gathered">{facts.seconds:.2f}</span> s) · '
              f'reloads every {refresh_seconds} s</span>'
              f'<form method="post" action="/logout"><button type="submit">Log out</button></form></header>')  # fmt: skip
    body = [head, header, "<main>", _overall(facts), _filter(view), _cas(shown, traffic, facts.at, view), _pages(view), "</main></body></html>"]
    return "".join(body)


def _overall(facts: PageFacts) -> str:
    overall = facts.overall
    traffic = overall.traffic
    window = f"last {span(traffic.seconds)}" if traffic.seconds else "no samples yet"
    latency = ", ".join(f"p{q * 100:g} {_seconds(v)}" for q, v in overall.latency.items())
    pending = sum(ca.generator.pending or 0 for ca in facts.cas if ca.generator is not None)
    signed = sum(ca.generator.signed for ca in facts.cas if ca.generator is not None)
    figures = [
        ("requests", f"{traffic.rate:.1f}/s " + sparkline(traffic.requests_per_second, label="requests")),
        ("tryLater", f"{traffic.try_later:.0f} " + sparkline(traffic.try_later_per_second, label="tryLater answers"),
         traffic.try_later > 0),
        ("refused for overload", f"{sum(overall.refused.values()):.0f} " + sparkline(overall.refused_per_second, label="overload refusals"),
         bool(overall.refused)),
        ("latency", f"{latency} " + sparkline(overall.p99_seconds, label="p99 latency", unit=" s")),
        ("generator", f"{pending:.0f} serials pending, {signed:.0f} responses signed"),
    ]
    cells = "".join(
        f'<div class="figure{" warn" if len(f) > 2 and f[2] else ""}"><b>{_e(f[0])}</b>{f[1]}</div>' for f in figures
    )
    answers = (f'<p class="muted">Answers ({_e(window)}) by status: {_breakdown(traffic.by_status)}; '
               f"by source: {_breakdown(traffic.by_source)}"
               + (f"; overload refusals: {_breakdown(overall.refused)}" if overall.refused else "") + "</p>")  # fmt: skip
    return f'<section class="box"><div class="figures">{cells}</div>{answers}</section>'


def _filter(view: View) -> str:
    options = "".join(
        f'<option value="{_e(key)}"{" selected" if key == view.state else ""}>{_e(label)}</option>' for key, label in STATES.items()
    )
    note = f'<p class="muted">{_e(view.note)}</p>' if view.note else ""
    return (f'<form class="filter box" method="get" action="/"><label>CA name contains '
            f'<input type="search" name="q" value="{_e(view.q)}" maxlength="200"></label>'
            f'<label>show <select name="state">{options}</select></label><button type="submit">Filter</button>'
            f'<span class="muted">{view.matching} matching</span></form>{note}')  # fmt: skip


def _cas(shown: Sequence[CaFacts], traffic: Mapping[str, Traffic], now: dt.datetime, view: View) -> str:
    if not shown:
        return '<p class="box">No CA matches.</p>'
    return "".join(_ca(ca, traffic.get(ca.name), now) for ca in shown)


def _ca(ca: CaFacts, traffic: Traffic | None, now: dt.datetime) -> str:
    color = ca.verdict.color
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in ca.verdict.reasons)
    parts = [
        f'<section class="box ca {color}" id="ca-{_e(ca.name)}"><h2>{_e(ca.name)}<small>{_e(ca.mode)}</small> '
        f'<span class="pill {color}">{color}</span></h2><ul class="why">{reasons}</ul>'
    ]
    if ca.sources:
        parts.append(_sources(ca.sources, now))
    if ca.signers or ca.refused_signers:
        parts.append(_signers(ca))
    parts.append(_traffic(ca, traffic))
    return "".join(parts) + "</section>"


def _sources(sources: Sequence[SourceFacts], now: dt.datetime) -> str:
    rows = []
    for s in sources:
        next_update = _time(s.next_update)
        if s.next_update is not None:
            left = (s.next_update - now).total_seconds()
            next_update += f" ({'in ' if left >= 0 else ''}{span(left)}{'' if left >= 0 else ' ago'})"
        error = f'<td class="err">{_e(s.last_error)}</td>' if s.last_error else "<td>–</td>"
        rows.append(
            f"<tr><td>{_e(s.kind)}</td><td>{_e(s.origin)}</td><td>{_e(_time(s.imported_at)) if s.imported_at else 'never'}</td>"
            f"<td>{_e(span(s.age_seconds)) if s.age_seconds is not None else '–'}</td><td>{_e(next_update)}</td>"
            f"<td>{_e(_time(s.next_refresh))}</td>{error}</tr>"
        )  # fmt: skip
    head = ("<tr><th>source</th><th>origin</th><th>last import</th><th>age</th><th>nextUpdate</th>"
            "<th>next refresh</th><th>last error</th></tr>")  # fmt: skip
    return f"<table class=\"sources\">{head}{''.join(rows)}</table>"


def _signers(ca: CaFacts) -> str:
    rows = []
    for s in ca.signers:
        days = s.seconds_left / 86400
        left = f"{days:.0f} days" if days >= 0 else "expired"
        flag = " ⚠ no successor" if s.warning else ""
        rows.append(
            f"<tr><td>{_e(s.name)}</td><td>{_e(s.state)}</td><td>{_e(s.algorithm)}</td><td>{_e(_time(s.not_before))}</td>"
            f"<td>{_e(_time(s.not_after))}</td><td>{_e(left)}{_e(flag)}</td></tr>"
        )
    for r in ca.refused_signers:
        rows.append(f'<tr><td>{_e(r.name)}</td><td>refused</td><td colspan="4" class="err">{_e(r.reason)}</td></tr>')
    head = "<tr><th>signer</th><th>state</th><th>algorithm</th><th>notBefore</th><th>notAfter</th><th>to expiry</th></tr>"
    return f"<table class=\"signers\">{head}{''.join(rows)}</table>"


def _traffic(ca: CaFacts, traffic: Traffic | None) -> str:
    generator = ""
    if ca.generator is not None:
        pending = "–" if ca.generator.pending is None else f"{ca.generator.pending:.0f}"
        generator = f" · generator: {pending} serials pending, {ca.generator.signed:.0f} responses signed"
    if traffic is None or not traffic.requests_per_second:
        return f'<p class="muted">No requests counted in the window{_e(generator)}</p>'
    warn = " warn" if traffic.try_later else ""
    return (f'<div class="figures"><div class="figure"><b>requests</b>{traffic.rate:.1f}/s '
            f'{sparkline(traffic.requests_per_second, label="requests")}</div>'
            f'<div class="figure{warn}"><b>tryLater</b>{traffic.try_later:.0f} '
            f'{sparkline(traffic.try_later_per_second, label="tryLater answers")}</div>'
            f'<div class="figure"><b>answers by status</b>{_breakdown(traffic.by_status)}</div>'
            f'<div class="figure"><b>by source</b>{_breakdown(traffic.by_source)}</div></div>'
            f'<p class="muted">{_e(generator.removeprefix(" · "))}</p>')  # fmt: skip


def _pages(view: View) -> str:
    if view.pages <= 1:
        return ""
    links = []
    if view.page > 1:
        links.append(f'<a href="{_e(_link(view, page=view.page - 1))}">← previous</a>')
    links.append(f"<span>page {view.page} of {view.pages}</span>")
    if view.page < view.pages:
        links.append(f'<a href="{_e(_link(view, page=view.page + 1))}">next →</a>')
    return f'<nav class="pages">{"".join(links)}</nav>'


def render_login(*, token_login: bool, message: str | None = None, refused: bool = False) -> str:
    """The page shown to a browser that is not authenticated: a token form when the listener has a
    token (``token_login``), else how to present an operator certificate; ``message`` says what went
    wrong, and with ``refused`` (a client certificate was refused) it is all the page says."""
    note = f'<p class="err">{_e(message)}</p>' if message else ""
    if refused:
        form = "<p>A client certificate that is refused is not overridden by a token or a session.</p>"
    elif token_login:
        form = ('<form method="post" action="/login"><label>Admin token <input type="password" name="token" '
                'autocomplete="current-password" required autofocus></label> <button type="submit">Log in</button></form>'
                '<p class="muted">The token of <code>[admin] token_file</code>. The browser keeps a session cookie for '
                "8 hours, not the token. An operator certificate opens the page without it.</p>")  # fmt: skip
    else:
        form = ("<p>This listener authenticates operators by client certificate only: import your operator "
                "certificate and key into the browser and open the page again.</p>")  # fmt: skip
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>certstatus: log in</title>'
            f"<style>{_CSS}</style></head><body><header><h1>certstatus</h1></header><main><section class=\"box\">"
            f"<h2>Status page</h2>{note}{form}</section></main></body></html>")  # fmt: skip
