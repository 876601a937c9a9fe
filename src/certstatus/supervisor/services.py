"""The background services of ``certstatus serve``'s supervisor, beside the OCSP workers.

:func:`start_services` starts the source
:class:`~certstatus.sources.refresh.Refresher`, the admin listener
(:class:`~certstatus.admin.server.AdminServer`, when ``[admin]`` is
configured) and, for precomputed/cached CAs, the background generator
(:func:`certstatus.generator.schedule.start_background`);
:meth:`Services.stop` ends them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from certstatus.admin.api import AdminApi, AdminResponse
from certstatus.admin.page_routes import PageRoutes
from certstatus.admin.server import AdminServer, operator_policy, read_token
from certstatus.clock import Clock
from certstatus.config import Settings
from certstatus.generator.schedule import start_background, stop_background
from certstatus.sources.changes import ChangeFeed
from certstatus.sources.refresh import Refresher, register_targets
from certstatus.store.base import StatusStore


@dataclass
class Services:
    """Background services of one supervisor; :meth:`stop` ends them."""

    refresher: Refresher
    admin: AdminServer | None
    feed: ChangeFeed
    generator: BaseProcess | None = None  # precomputed/cached CAs: certstatus.generator.schedule

    def stop(self) -> None:
        if self.generator is not None:
            stop_background(self.generator)
        if self.admin is not None:
            self.admin.stop()
        self.refresher.stop()


def start_services(
    settings: Settings, store_factory: Callable[[], StatusStore], clock: Clock, feed: ChangeFeed | None = None,
    extra_routes: Mapping[tuple[str, str], Callable[[], AdminResponse]] | None = None,
    status_page: Callable[[Refresher], Callable[[str], str]] | None = None,
) -> Services:
    """Start the refresher, (if configured) the admin listener and, for precomputed/cached CAs, the
    background generator; raise ConfigError for a bad [admin].

    ``extra_routes`` are more admin endpoints (see :class:`AdminApi`); ``status_page(refresher)``
    returns the function that renders the status page for a query string (``GET /``, with the
    API's authentication: :class:`~certstatus.admin.page_routes.PageRoutes`).
    """
    feed = feed or ChangeFeed()
    refresher = Refresher(settings, store_factory, clock, feed)
    admin = None
    if settings.admin is not None:
        token = read_token(settings.admin)
        api = AdminApi(
            store_factory, lambda store: register_targets(store, settings.cas), clock,
            token=token, operators=operator_policy(settings.admin), refresher=refresher, feed=feed,
            extra_routes=extra_routes,
        )  # fmt: skip
        if status_page is not None:
            secure = settings.admin.tls_certificate is not None
            api.pages = PageRoutes(status_page(refresher), api.authenticate, clock, token=token, secure=secure)
        admin = AdminServer(settings.admin, api)
        admin.start()
    refresher.start()
    return Services(refresher, admin, feed, start_background(settings, feed=feed))
