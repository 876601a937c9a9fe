"""What ``certstatus serve`` checks before it serves, run alone: ``certstatus config check``.

The same functions as start-up (:func:`certstatus.app.prepare` and
:func:`certstatus.server.listen.open_listener`), so a configuration the check
passes is one ``serve`` starts with, and one ``serve`` refuses fails the
check with the same message:

1. the file (:func:`certstatus.config.load_config`);
2. secret file modes (:func:`certstatus.secret_files.check_secret_files`);
3. TLS, trust anchor and admin files (:func:`certstatus.app.check_operations`);
4. every CA's certificate and signers (:func:`certstatus.loading.load_ca`);
5. every CA's source files — index, issued list, CRL files — parsed,
   verified and imported as at start-up, into a store in memory: nothing on
   disk changes. CRLs named by URL (and the delta CRLs a CRL points to) are
   not fetched: the check does not depend on the network;
6. the listen addresses, bound and released at once. An address held by a
   certstatus process is a warning, not an error: the check is also run
   against the configuration of a running server before a reload.
"""

from __future__ import annotations

import dataclasses
import errno
from dataclasses import dataclass, field
from pathlib import Path

from certstatus.app import check_operations
from certstatus.clock import Clock, SystemClock
from certstatus.config import Settings, load_config
from certstatus.loading import load_ca
from certstatus.secret_files import check_secret_files
from certstatus.server.listen import bind_address, listen_error, listen_key, port_holder
from certstatus.sources.importer import CaTarget, ImportResult, import_ca
from certstatus.store.sqlite import SQLiteStore


@dataclass
class CheckReport:
    """What :func:`check_configuration` found besides errors (those it raises).

    ``sources``: source files read; ``not_fetched``: CRL URLs left alone;
    ``refused``: sources ``serve`` would refuse (it would answer that CA
    ``tryLater``); ``warnings``: one sentence each.
    """

    cas: int
    sources: int = 0
    not_fetched: list[str] = field(default_factory=list)
    refused: list[ImportResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_configuration(path: Path, clock: Clock | None = None) -> CheckReport:
    """Run the start-up checks of ``serve --config path`` without serving or writing anything.

    Raises :class:`~certstatus.errors.ConfigError` or
    :class:`~certstatus.errors.SignerError` for what stops ``serve``.
    """
    clock = clock or SystemClock()
    settings = load_config(path)
    check_secret_files(settings)  # under "warn" it logs, as serve does
    check_operations(settings)
    report = CheckReport(len(settings.cas))
    store = SQLiteStore(":memory:")
    try:
        for ca in settings.cas:
            served = load_ca(ca, store, clock)
            if ca.forward:
                continue
            files = ca.crl if not any("://" in origin for origin in ca.crl) else ()  # a delta is verified against its base
            report.not_fetched.extend(origin for origin in ca.crl if origin not in files)
            local = dataclasses.replace(ca, crl=files, follow_freshest_crl=False)
            results = import_ca(store, CaTarget(local, served.issuer_id, served.certificate), clock)
            report.sources += len(results)
            report.refused.extend(result for result in results if result.error)
    finally:
        store.close()
    report.warnings.extend(check_listen_addresses(settings))
    return report


def check_listen_addresses(settings: Settings) -> list[str]:
    """Bind and release the OCSP and admin addresses; return warnings for those a certstatus process holds.

    Raises :class:`ConfigError` (as ``serve`` would) for any other address
    that cannot be bound.
    """
    addresses = [(settings.server.host, settings.server.port, listen_key(settings))]
    if settings.admin is not None:
        addresses.append((settings.admin.host, settings.admin.port, "admin.listen"))
    warnings = []
    for host, port, key in addresses:
        try:
            bind_address(host, port).close()
        except OSError as exc:
            holder = port_holder(port) if exc.errno == errno.EADDRINUSE else None
            if holder is None or not holder.is_certstatus:
                raise listen_error(exc, host, port, where=settings.server.where, key=key) from None
            warnings.append(f"{key}: port {port} is in use by {holder}: fine if that is this configuration's server "
                            "(a reload keeps its sockets), but a second `certstatus serve` would not start.")
    return warnings
