"""Logging set-up: one JSON object per line on stderr.

Policy: error = something an operator must fix;
bad client input at info or below; per-request lines at debug.

Structured fields: anything passed as ``extra={...}`` to a logging call
becomes a key of the JSON object (``log.info("refused", extra={"client": ip})``).

Nothing else reaches stderr as raw text: :func:`configure_logging` also
formats other libraries' warnings and errors (asyncio's "exception in
callback", psycopg's pool, ``warnings``) as JSON lines, and turns an uncaught
exception — in the main thread, another thread, a finaliser — into one
critical JSON line with the traceback inside (``exception``);
:func:`process_main` does the same for the body of a child process, which
multiprocessing would print as raw text.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterator

from certstatus.errors import CertstatusError
from certstatus.store.dsn import redact

log = logging.getLogger("certstatus")


#: Attributes every LogRecord has; others came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time (UTC, ISO 8601), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))  # a DSN's password never reaches a log line


def configure_logging(level: str = "info") -> None:
    """Send logs to stderr as JSON lines: certstatus's at ``level``, other libraries' at warning and above.

    Also installs the hooks that make an uncaught exception (``sys.excepthook``,
    ``threading.excepthook``, ``sys.unraisablehook``) one critical JSON line, and
    routes :mod:`warnings` to the log. Safe to call again (a worker after its supervisor).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("certstatus")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    others = logging.getLogger()  # asyncio, psycopg, httpx, concurrent.futures, py.warnings
    others.handlers[:] = [handler]
    others.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread
    sys.unraisablehook = _unraisable


#: Configuration warnings of this thread: None, logged at once; a dict (kind → items), gathered by
#: :func:`grouped_config_warnings`; :data:`_HELD`, logged at debug (:func:`held_config_warnings`).
_config_warnings: contextvars.ContextVar[dict[str, list[str]] | str | None] = contextvars.ContextVar(
    "certstatus_config_warnings", default=None
)
_HELD = "held"
_config_log = logging.getLogger("certstatus.config")


def config_warning(kind: str, item: str) -> None:
    """Warn about the configuration: ``kind`` says what is wrong and what to do (one sentence, the same
    for every item), ``item`` what it concerns (``"CA a: signer x (CN=...)"``).

    Every process that loads the configuration meets the same warnings (the
    supervisor, each worker, each signing process): logged as they come, 111
    CAs with a locally trusted responder and 2 workers made 444 lines. So:
    outside a context, logged at once (warning); inside
    :func:`grouped_config_warnings`, one line per kind listing every item
    when the context ends; inside :func:`held_config_warnings` (a process
    whose supervisor reported them), at debug.
    """
    gathered = _config_warnings.get()
    if gathered is None:
        _config_log.warning("%s: %s", kind, item)
    elif gathered == _HELD:
        _config_log.debug("%s: %s", kind, item)
    else:
        items = gathered.setdefault(kind, [])
        if item not in items:
            items.append(item)


@contextlib.contextmanager
def grouped_config_warnings() -> Iterator[None]:
    """Gather :func:`config_warning` calls; at the end log one warning per kind: ``KIND (N): ITEM; ITEM; ...``
    (the items also as the ``items`` field)."""
    gathered: dict[str, list[str]] = {}
    token = _config_warnings.set(gathered)
    try:
        yield
    finally:
        _config_warnings.reset(token)
        for kind, items in gathered.items():
            _config_log.warning("%s (%d): %s", kind, len(items), "; ".join(items), extra={"items": items})


@contextlib.contextmanager
def held_config_warnings() -> Iterator[None]:
    """Log :func:`config_warning` calls at debug: in a worker, whose supervisor reported them once."""
    token = _config_warnings.set(_HELD)
    try:
        yield
    finally:
        _config_warnings.reset(token)


def log_level() -> str:
    """This process's certstatus log level by name (``"info"``), for the child processes it starts."""
    return logging.getLevelName(log.getEffectiveLevel()).lower()


def _uncaught(exc_type, exc_value, exc_traceback) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        log.info("interrupted")
        return
    log.critical("uncaught exception: %s: %s", exc_type.__name__, exc_value, exc_info=(exc_type, exc_value, exc_traceback))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if issubclass(args.exc_type, SystemExit):  # as threading's own hook: a thread may end itself so
        return
    name = args.thread.name if args.thread is not None else "?"
    log.critical("uncaught exception in thread %s: %s: %s", name, args.exc_type.__name__, args.exc_value,
                 exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # fmt: skip


def _unraisable(unraisable) -> None:
    what = unraisable.err_msg or "Exception ignored in"
    log.error("%s: %r", what, unraisable.object,
              exc_info=(unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback))  # fmt: skip


def process_main(log_level: str, target: Callable[..., object], *args: object) -> None:
    """Body of a child process (``multiprocessing`` target): JSON logging at ``log_level``, then ``target(*args)``.

    An exception ``target`` lets through becomes one JSON line and exit status
    1; multiprocessing would print it as raw text. A
    :class:`~certstatus.errors.CertstatusError` (the database is down, a key
    cannot be read) is an error line with its one-paragraph message; any other
    exception is a bug: a critical line with the traceback inside.
    ``SystemExit`` passes unchanged; ``KeyboardInterrupt`` exits 130 quietly.
    """
    configure_logging(log_level)
    name = multiprocessing.current_process().name  # "certstatus-worker", "certstatus-generator"
    try:
        target(*args)
    except SystemExit:
        raise
    except KeyboardInterrupt:  # Ctrl-C reached the process group before the process set its own handlers
        raise SystemExit(130) from None
    except CertstatusError as exc:
        log.error("%s stopped: %s", name, exc)
        raise SystemExit(1) from None
    except BaseException as exc:  # noqa: BLE001 - every escape becomes a log line
        log.critical("%s failed: %s: %s", name, type(exc).__name__, exc, exc_info=True)
        raise SystemExit(1) from None
