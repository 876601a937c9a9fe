"""The status page's routes on the admin listener: ``GET /``, ``POST /login``, ``POST /logout``.

``GET /`` admits exactly whom the admin API admits (:meth:`AdminApi.authenticate`: the bearer
token, or an operator certificate, which decides alone when presented), and also a browser
holding a session cookie (:mod:`certstatus.admin.session`). A browser without either gets the
login page (401): a token form when ``[admin] token_file`` is set, else how to present an
operator certificate. ``POST /login`` (refused, like every request, for a client certificate
that is refused) takes the token from a form
(``application/x-www-form-urlencoded``, at most :data:`MAX_FORM_BYTES`) and sets the cookie:
``HttpOnly``, ``SameSite=Strict``, ``Path=/``, and with TLS ``Secure`` under the ``__Host-``
prefix. ``POST /logout`` clears it.

Why this closes cross-site requests: the cookie opens nothing but this read-only page (the
admin API's endpoints never look at it, and their POSTs need ``application/json``, which a
cross-site form cannot send), ``SameSite=Strict`` keeps it off requests started by other
sites, and the page may not be framed (``Content-Security-Policy: frame-ancestors 'none'``).
A forged login would need the token itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from certstatus.admin.api import AdminResponse
from certstatus.admin.session import Sessions
from certstatus.clock import Clock
from certstatus.statuspage.render import render_login

log = logging.getLogger("certstatus.admin")

#: The media type of the login and logout forms (HTML's default form encoding).
FORM_TYPE = "application/x-www-form-urlencoded"
#: Largest login or logout form body (bytes).
MAX_FORM_BYTES = 4096
PATHS = ("/", "/login", "/logout")
#: Headers of every HTML answer: no script, style only inline, no frame, no referrer.
HTML_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
)  # fmt: skip
_DIGITS = re.compile(r"[0-9]{1,19}")


class PageRoutes:
    """Admit and answer the status page's requests.

    ``page(query)`` renders the page for a query string; ``authenticate(headers, chain)`` is
    :meth:`AdminApi.authenticate`; ``token`` the admin token (None: operator certificates only,
    no login form); ``secure`` says the listener speaks TLS (the cookie is then ``Secure``).
    """

    def __init__(
        self,
        page: Callable[[str], str],
        authenticate: Callable[[Mapping[str, str], Sequence[bytes]], AdminResponse | None],
        clock: Clock,
        *,
        token: str | None,
        secure: bool,
    ) -> None:
        self.page = page
        self.authenticate = authenticate
        self.clock = clock
        self.sessions = Sessions(token) if token is not None else None
        self.secure = secure
        self.cookie_name = "__Host-certstatus-session" if secure else "certstatus-session"

    @staticmethod
    def handles(path: str) -> bool:
        return path.split("?", 1)[0] in PATHS

    def admit(self, method: str, path: str, headers: Mapping[str, str], client_chain: Sequence[bytes] = ()) -> AdminResponse | None:
        """None to read the body and :meth:`respond`, else the refusal (from the request head alone)."""
        route = path.split("?", 1)[0]
        if route == "/":
            if method != "GET":
                return AdminResponse(405, {"error": "use GET"})
            refusal = self.authenticate(headers, client_chain)
            if refusal is None:
                return None
            if refusal.status == 403:  # a certificate decides alone: no login can override it
                return _html(403, render_login(token_login=False, message=refusal.body.get("error"), refused=True))
            if self._has_session(headers):
                return None
            return _html(401, render_login(token_login=self.sessions is not None))
        if method != "POST":
            return AdminResponse(405, {"error": "use POST"})
        if client_chain and (refusal := self.authenticate({}, client_chain)) is not None and refusal.status == 403:
            return _html(403, render_login(token_login=False, message=refusal.body.get("error"), refused=True))
        if route == "/login" and self.sessions is None:
            return AdminResponse(404, {"error": "this listener has no admin token; present an operator certificate"})
        length = headers.get("content-length", "0").strip()
        if "transfer-encoding" in headers or not _DIGITS.fullmatch(length):
            return AdminResponse(411, {"error": "send the form with a Content-Length"})
        if int(length) > MAX_FORM_BYTES:
            return AdminResponse(413, {"error": f"form over {MAX_FORM_BYTES} bytes"})
        if route == "/login" and headers.get("content-type", "").split(";", 1)[0].strip().lower() != FORM_TYPE:
            return AdminResponse(415, {"error": f"send the form as {FORM_TYPE}"})
        return None

    def respond(self, method: str, path: str, body: bytes) -> AdminResponse:
        """Answer a request :meth:`admit` let in."""
        route, _, query = path.partition("?")
        if route == "/":
            return _html(200, self.page(query))
        if route == "/logout":
            return _see_other(self._cookie("", 0))
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=5)
        token = fields.get("token", [""])[0].strip()
        if self.sessions is not None and token and self.authenticate({"authorization": f"Bearer {token}"}, ()) is None:
            now = self.clock.now().timestamp()
            return _see_other(self._cookie(self.sessions.issue(now), self.sessions.lifetime))
        log.info("status page: a login with a wrong admin token was refused")
        return _html(401, render_login(token_login=True, message="That is not the admin token."))

    def _has_session(self, headers: Mapping[str, str]) -> bool:
        if self.sessions is None or "cookie" not in headers:
            return False
        try:
            morsel = SimpleCookie(headers["cookie"]).get(self.cookie_name)
        except CookieError:
            return False
        return morsel is not None and self.sessions.valid(morsel.value, self.clock.now().timestamp())

    def _cookie(self, value: str, max_age: int) -> str:
        secure = "; Secure" if self.secure else ""
        return f"{self.cookie_name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"


def _html(status: int, text: str) -> AdminResponse:
    return AdminResponse(status, {}, text.encode(), "text/html; charset=utf-8", HTML_HEADERS)


def _see_other(cookie: str) -> AdminResponse:
    return AdminResponse(303, {}, b"", "text/plain; charset=utf-8", (("Location", "/"), ("Set-Cookie", cookie)))
