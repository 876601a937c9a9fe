"""Browser sessions of the status page, derived from the admin token.

A browser cannot send ``Authorization: Bearer``; an operator who has the token logs in once
with it (a form, :mod:`certstatus.admin.page_routes`) and the browser keeps a cookie instead:
``EXPIRY.MAC``, where EXPIRY is a Unix time and MAC is HMAC-SHA256 over it under a key derived
from the token (HMAC-SHA256 of the token over a fixed label). So:

* the cookie holds no token, and opens the status page only (never the admin API: its POSTs
  still need the token or an operator certificate) until it expires (:data:`SESSION_SECONDS`);
* no session table: every process with the same token accepts it, and changing the token
  (``[admin] token_file``, then a reload) ends every session at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: Seconds a status page session lasts after its login.
SESSION_SECONDS = 8 * 3600
_LABEL = b"certstatus status page session v1"
_DIGITS = re.compile(r"[0-9]{1,12}")


class Sessions:
    """Issue and check session values for ``token`` (the admin token)."""

    def __init__(self, token: str, *, lifetime: int = SESSION_SECONDS) -> None:
        self._key = hmac.new(token.encode(), _LABEL, hashlib.sha256).digest()
        self.lifetime = lifetime

    def _mac(self, expiry: int) -> str:
        return hmac.new(self._key, str(expiry).encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float) -> str:
        """A session value valid from ``now`` (Unix seconds) for :attr:`lifetime` seconds."""
        expiry = int(now) + self.lifetime
        return f"{expiry}.{self._mac(expiry)}"

    def valid(self, value: str, now: float) -> bool:
        """True when ``value`` was issued under this token and has not expired at ``now``."""
        expiry, _, mac = value.partition(".")
        if not _DIGITS.fullmatch(expiry) or not now < int(expiry) <= now + self.lifetime:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(int(expiry)).encode())
