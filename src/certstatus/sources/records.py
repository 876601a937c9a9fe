"""Plain records produced by the parsers in :mod:`certstatus.sources`.

Parsers turn outside bytes into these records and never touch the store; the
importer (:mod:`certstatus.sources.importer`) writes them in one transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from certstatus.model import IssuedCertificate, RevokedEntry


@dataclass(frozen=True, slots=True)
class CrlData:
    """A verified CRL (RFC 5280 §5): its validity, numbers and entries.

    ``this_update``/``next_update`` are aware UTC datetimes; ``crl_number`` is
    the cRLNumber extension (``None`` when absent); ``delta_base`` is the
    BaseCRLNumber of a delta CRL's deltaCRLIndicator, ``None`` for a full CRL;
    ``freshest_crl`` the ``http(s)://`` and ``ldap(s)://`` URIs of the
    FreshestCRL extension (where the delta CRLs are, RFC 5280 §5.2.6).
    """

    this_update: dt.datetime
    next_update: dt.datetime | None
    crl_number: int | None
    delta_base: int | None
    entries: tuple[RevokedEntry, ...]
    freshest_crl: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IndexData:
    """An OpenSSL ``index.txt`` (CA database): every serial it lists is issued.

    ``issued`` holds every serial on a V, R or E line; ``revoked`` the R lines;
    ``certificates`` every line's serial with its expiry (notAfter), in file order.
    """

    issued: tuple[int, ...]
    revoked: tuple[RevokedEntry, ...] = field(default_factory=tuple)
    certificates: tuple[IssuedCertificate, ...] = field(default_factory=tuple)
