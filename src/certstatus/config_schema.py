"""The configuration description: every section and key of the TOML file, its type, default, range and meaning.

This one description is the source of

* the validation of every key: :meth:`Section.parse` refuses an unknown key
  and checks each value with its key's :class:`Kind` (type and range), turning
  it into the typed value the settings hold;
* the defaults: :meth:`Section.default` (the settings dataclasses of
  :mod:`certstatus.config`, :mod:`certstatus.config_ops` and
  :mod:`certstatus.source_settings` take theirs from here);
* the configuration reference, ``docs/configuration.md``, rendered by
  :func:`render_reference` (``certstatus config reference``); a test keeps the
  committed page equal to the rendered one.

The rules that span keys (TLS needs both a certificate and a key, a name
table needs ``by_name``, ...) live beside the settings they build. Every
error is a :class:`~certstatus.errors.ConfigError` naming the file, the dotted
key and what to write instead. This module imports nothing of certstatus but
:mod:`certstatus.errors` and :mod:`certstatus.store.dsn` (a leaf), so every
settings module may import it.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certstatus.errors import ConfigError
from certstatus.model import MODES
from certstatus.store.dsn import check_dsn, is_dsn, redact

#: A duration: a number of seconds, or a number and a unit (``"500ms"``, ``"1.5h"``, ``"7y"``; a year is 365 days).
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhdy]?)\s*$")
_DURATION_UNITS = {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}
#: ``archive_cutoff`` value: the CA certificate's notBefore is the cutoff (ETSI EN 319 411-2 §6.3.10).
ARCHIVE_CA_NOT_BEFORE = "ca-not-before"


@dataclass(frozen=True)
class Kind:
    """How a value is written (``text``, the reference's type column), its bounds (``range``, the
    range column, ``""`` when any value of the type goes) and how it is checked (``parse``).

    ``parse(value, file, key, base)`` returns the typed value or raises
    :class:`ConfigError`; ``base`` is the folder relative paths start from.
    """

    text: str
    parse: Callable[[Any, str, str, Path], Any]
    range: str = ""
    choices: tuple[str, ...] = ()  # the values a choice allows (:func:`choice`)


def _fail(file: str, key: str, value: Any, what: str, example: str) -> ConfigError:
    return ConfigError(file, key, f"{value!r} is not {what}.", f"Write for example {example}.")


# --------------------------------------------------------------------------- value parsers


def path_value(value: Any, base: Path, file: str, key: str) -> Path:
    """A file path from the configuration: ``~`` expanded, relative paths resolved against ``base``.

    Raises :class:`ConfigError` for a value that is not a non-empty string and
    for ``~name/...`` of a user this host does not know.
    """
    if not isinstance(value, str) or not value:
        raise ConfigError(file, key, f"{value!r} is not a file path.", 'Write a path in quotes, e.g. "ca.pem".')
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # "~name/..." of a user this host does not know
        raise ConfigError(
            file, key, f"{value!r} names the home folder of an unknown user.",
            "Write an absolute path or one relative to the configuration file.",
        ) from None  # fmt: skip
    return path if path.is_absolute() else base / path


def parse_duration(value: Any, *, file: str, key: str) -> int | float:
    """Seconds from a number or a string: ``90``, ``2.5``, ``"500ms"``, ``"90s"``, ``"90m"``, ``"1.5h"``,
    ``"1d"``, ``"7y"`` (a year is 365 days).

    Returns an int when the duration is whole seconds, else a float. Bounds
    are the caller's (:func:`duration`). Raises :class:`ConfigError`.
    """
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        seconds = int(number) * _DURATION_UNITS[unit] if "." not in number else float(number) * _DURATION_UNITS[unit]
        seconds = round(seconds, 6)  # "0.1s" * 1 is 0.1, "1.1h" is 3960 and not 3960.0000000000005
    if seconds is None:
        raise ConfigError(file, key, f"{value!r} is not a duration.", 'Write seconds or a string like "500ms", "90s", "24h" or "1d".')
    return int(seconds) if float(seconds).is_integer() else float(seconds)


def seconds_text(seconds: float) -> str:
    """``seconds`` as an operator writes it: ``"10 s"``, ``"1 h"``, ``"10 d"``, ``"500 ms"``."""
    if seconds == 0:
        return "0 s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s" if seconds >= 1 else f"{seconds * 1000:g} ms"


def parse_listen(value: Any, *, file: str, key: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` too, ``:PORT`` for every address) and check the port."""
    host, sep, port = str(value).rpartition(":") if isinstance(value, str) else ("", "", "")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(file, key, f"{value!r} is not HOST:PORT.", 'Write for example "127.0.0.1:8080".')
    return host.strip("[]") or "0.0.0.0", int(port)


def normalise_path(value: Any, *, file: str, key: str) -> str:
    """Return a URL path prefix with a leading and a trailing '/'."""
    if not isinstance(value, str) or not value.startswith("/") or any(c in value for c in "?#% "):
        raise ConfigError(file, key, f"{value!r} is not a URL path.", 'Write a path such as "/issuing-1".')
    return value.rstrip("/") + "/"


def database_setting(value: Any, *, base: Path, file: str, key: str) -> Path | str:
    """A ``postgresql://`` URI (checked by libpq's parser) as is, or an SQLite path resolved against ``base``."""
    if is_dsn(value):
        try:
            check_dsn(value)
        except ValueError as exc:
            raise ConfigError(
                file, key, f"is not a valid PostgreSQL URI: {exc}.",
                'Write for example "postgresql://certstatus@db.example:5432/certstatus".',
            ) from None
        return value
    return path_value(value, base, file, key)


def _boolean(value, file, key, base):
    if not isinstance(value, bool):
        raise ConfigError(file, key, f"{value!r} is not true or false.", "Write true or false.")
    return value


def _string(value, file, key, base):
    if not isinstance(value, str) or not value:
        raise _fail(file, key, value, "a non-empty string", '"text"')
    return value


def _strings(value, file, key, base):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _fail(file, key, value, "a list of strings", '["a", "b"]')
    return tuple(value)


def _path(value, file, key, base):
    return path_value(value, base, file, key)


def _paths(value, file, key, base):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(file, key, value, "a file path or a list of them", '["anchors.pem"]')
    return tuple(path_value(item, base, file, key) for item in value)


def _log_target(value, file, key, base):
    if value == "-":
        return "-"
    return str(path_value(value, base, file, key))


def _urls(value, file, key, base):
    urls = _strings(value, file, key, base)
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise _fail(file, key, url, "an http:// or https:// URL", '["http://ocsp.example.net/"]')
    return urls


def _networks(value, file, key, base):
    items = _strings(value, file, key, base)
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError:
        raise _fail(file, key, value, "a list of IP addresses or networks", '["127.0.0.1", "10.0.0.0/8"]') from None


def _size(value, file, key, base):
    """Bytes from an integer or a string like "100MiB", "1G"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        unit = match.group(2).lower().rstrip("b")
        return int(match.group(1)) * _SIZE_UNITS[unit]
    raise _fail(file, key, value, "a size in bytes", '"100MiB" or 0')


def _crl(value, file, key, base):
    """CRL locations: a string or a list of them; URLs kept, file paths resolved (as text)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(file, key, "must be a path or URL, or a list of them.", 'Write crl = ["ca.crl"].')
    return tuple(item if "://" in item else str(path_value(item, base, file, key)) for item in value)


def _common_path(value, file, key, base):
    return "" if value == "" else normalise_path(value, file=file, key=key)


def _url_path(value, file, key, base):
    return normalise_path(value, file=file, key=key)


def _listen(value, file, key, base):
    return parse_listen(value, file=file, key=key)


def _database(value, file, key, base):
    return database_setting(value, base=base, file=file, key=key)


def _key_reference(value, file, key, base):
    """A signer key: a file path or a ``pkcs11:`` URI, kept as written (the signer settings resolve it)."""
    if not isinstance(value, str) or not value:
        raise _fail(file, key, value, "a key file or a pkcs11: URI", '"ocsp.key" or "pkcs11:token=OCSP;object=ocsp"')
    return value


def _archive_cutoff(value, file, key, base):
    if value == ARCHIVE_CA_NOT_BEFORE:
        return value
    try:
        seconds = parse_duration(value, file=file, key=key)
    except ConfigError:
        seconds = None
    if not isinstance(seconds, int) or seconds <= 0:
        raise ConfigError(
            file, key, f"{value!r} is not a retention period or \"{ARCHIVE_CA_NOT_BEFORE}\".",
            f'Write "{ARCHIVE_CA_NOT_BEFORE}" (the CA certificate\'s notBefore, as ETSI EN 319 411-2 recommends) '
            'or how long status is kept after expiry, e.g. "7y" or "3650d".',
        )  # fmt: skip
    return seconds


def _signer_tables(value, file, key, base):
    """``[[ca.NAME.signer]]``: a list of tables (one table alone is taken as a list of one)."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(file, key, "must be an array of tables.", f"Write [[{key}]] tables.")
    return value


def _table_value(value, file, key, base):
    if not isinstance(value, dict):
        raise ConfigError(file, key, "must be a table.", f"Write it as [{key}].")
    return value


def _dsn(value, file, key, base):
    if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
        raise ConfigError(file, key, f"{redact(repr(value))} is not a PostgreSQL DSN.", 'Write "postgresql://USER@HOST/DB".')
    return value


def _query(value, file, key, base):
    if not isinstance(value, str) or "%(" not in value:
        raise ConfigError(
            file, key, "must be an SQL query using %(serial_hex)s, %(serial)s or %(serial_dec)s.",
            "Return status, revocation_time, reason for the serial.",
        )  # fmt: skip
    return value


def _anything(value, file, key, base):
    return value


def choice(*choices: str) -> Kind:
    """One of ``choices`` (strings)."""

    def parse(value, file, key, base):
        if value not in choices:
            listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
            raise ConfigError(file, key, f"{value!r} is not {listed}.", _choice_fix(choices))
        return value

    return Kind("one of " + ", ".join(f'`"{c}"`' for c in choices), parse, choices=choices)


def _choice_fix(choices: tuple[str, ...]) -> str:
    return "Write " + ", ".join(f'"{c}"' for c in choices[:-1]) + f' or "{choices[-1]}".'


def integer(low: int, high: int | None = None, *, text: str = "whole number") -> Kind:
    """A whole number from ``low`` to ``high`` (inclusive; ``high`` None: no upper bound)."""
    bounds = f"{low} to {high}" if high is not None else f"{low} or more"

    def parse(value, file, key, base):
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
            raise ConfigError(file, key, f"{value!r} is not a whole number from {bounds}.", f"Write a number in that range, e.g. {low}.")
        return value

    return Kind(text, parse, bounds)


def duration(low: float, high: float | None = None, *, whole: bool = False, text: str | None = None,
             range_text: str | None = None) -> Kind:
    """A duration (:func:`parse_duration`) from ``low`` to ``high`` seconds (inclusive; ``high`` None: no
    upper bound). ``whole``: whole seconds only (an int), else a float. ``range_text`` replaces the
    range shown in the reference when another rule narrows it (``validity``)."""
    bounds = f"{seconds_text(low)} to {seconds_text(high)}" if high is not None else f"{seconds_text(low)} or more"

    def parse(value, file, key, base):
        seconds = parse_duration(value, file=file, key=key)
        if whole and not isinstance(seconds, int):
            raise ConfigError(file, key, f"{value!r} is not a whole number of seconds.", 'Write for example "90s" or "2h".')
        if seconds < low:
            raise ConfigError(file, key, f"{value!r} is under {seconds_text(low)}.", f"Write a duration from {bounds}.")
        if high is not None and seconds > high:
            raise ConfigError(file, key, f"{value!r} is over {seconds_text(high)}.", f"Write a duration from {bounds}.")
        return seconds if whole else float(seconds)

    default_text = 'duration: seconds, or `"500ms"`, `"90s"`, `"2h"`, `"1d"`' if not whole else 'duration, whole seconds: `"90s"`, `"2h"`, `"1d"`'
    return Kind(text or default_text, parse, range_text or bounds)


BOOLEAN = Kind("boolean", _boolean)
STRING = Kind("string", _string)
STRINGS = Kind("list of strings", _strings)
PATH = Kind("file path", _path)
PATHS = Kind("file path or list of file paths", _paths)
LOG_TARGET = Kind('file path, or `"-"` for standard output', _log_target)
URLS = Kind("list of http(s) URLs", _urls)
NETWORKS = Kind("list of IP addresses or networks", _networks)
SIZE = Kind('size: bytes, or `"100MiB"`, `"1G"`', _size)
LISTEN = Kind('`"HOST:PORT"`', _listen, "port 0 to 65535")
URL_PATH = Kind('URL path, e.g. `"/issuing-1"`', _url_path)
#: A library path handed to the PKCS#11 loader as written (not resolved against the file's folder).
MODULE = Kind("file path", _string)


@dataclass(frozen=True)
class Key:
    """One key of a section: its kind, its meaning (``doc``, Markdown), its default written as TOML
    (``None``: no default, the key is off or its default depends on other keys, as ``doc`` says)."""

    name: str
    kind: Kind
    doc: str
    default: str | None = None
    required: bool = False


@dataclass(frozen=True)
class Section:
    """One TOML table (``ca.NAME`` stands for every CA table; ``array``: an array of tables)."""

    name: str
    title: str
    doc: str
    keys: tuple[Key, ...]
    array: bool = False

    @property
    def names(self) -> frozenset[str]:
        """The key names of this section."""
        return frozenset(key.name for key in self.keys)

    def key(self, name: str) -> Key:
        return next(key for key in self.keys if key.name == name)

    def default(self, name: str) -> Any:
        """The typed default of key ``name`` (paths relative to the working folder); None when it has none."""
        key = self.key(name)
        if key.default is None:
            return None
        return key.kind.parse(tomllib.loads(f"value = {key.default}")["value"], "configuration description", name, Path("."))

    def parse(self, table: dict[str, Any], *, where: str, prefix: str, base: Path,
              only: frozenset[str] | set[str] | None = None, defaults: bool = False) -> dict[str, Any]:
        """Check ``table`` (a TOML table of this section) and return {key: typed value} for the keys present
        (with ``defaults``, also the defaults of the keys absent, paths resolved against ``base``).

        Refuses an unknown key, a missing required key and any value its
        kind refuses, with a :class:`ConfigError` naming ``prefix.KEY``.
        ``only`` limits the checks of values and required keys to those keys.
        """
        check_known_keys(table, self.names, where=where, prefix=prefix)
        values = {}
        for key in self.keys:
            if only is not None and key.name not in only:
                continue
            if key.name in table:
                values[key.name] = key.kind.parse(table[key.name], where, f"{prefix}.{key.name}", base)
            elif defaults and key.default is not None:
                values[key.name] = key.kind.parse(tomllib.loads(f"value = {key.default}")["value"], where, f"{prefix}.{key.name}", base)
            elif key.required:
                example = '"FILE"' if key.kind.text == "file path" else "..."
                raise ConfigError(where, f"{prefix}.{key.name}", "is missing.", f"Add {key.name} = {example}.")
        return values


SERVER = Section(
    "server", "The OCSP listener and the store",
    "One listener answers OCSP for every CA, over HTTP or (with `[tls]`) HTTPS, and also answers "
    "`GET /health` (liveness) and `GET /ready` (readiness) for load balancers.",
    (
        Key("listen", LISTEN, "Address of the OCSP listener.", '"127.0.0.1:8080"'),
        Key("workers", integer(0), "Worker processes; 0 = one per core.", "0"),
        Key("database", Kind("file path or `postgresql://` URI", _database),
            'The store: an SQLite file, or a PostgreSQL URI (`"postgresql://user@host:5432/db"`, see '
            '[database.md](database.md)) shared by a fleet.', '"certstatus.sqlite3"'),
        Key("common_path", Kind('URL path, or `""`', _common_path),
            'URL serving every CA; `""` serves CAs only at their own `path`.', '"/"'),
        Key("max_request_bytes", integer(64, 1_000_000),
            "Largest POST body or decoded GET request, in bytes; larger gets HTTP 413.", "10000"),
        Key("key_permissions", choice("refuse", "warn"),
            "Secret files (keys, passphrases, PINs, the admin token) readable by group or others: refuse to start, "
            "or only warn.", '"refuse"'),
        Key("ca_dir", PATH, "Optional folder of one TOML file per CA (keys as in `[ca.NAME]`); "
            "the CA name is the file name without `.toml`."),
        Key("pkcs11_module", MODULE, "PKCS#11 library for `pkcs11:` signer keys, the default of every CA "
            '(e.g. `"/usr/lib/softhsm/libsofthsm2.so"`).'),
        Key("response_cache_bytes", integer(0), "Per worker: the in-process cache of answers of `precomputed` and "
            "`cached` CAs, in bytes, least recently used out; 0 = off. Not set: sized at each worker's start to hold "
            "every pre-signed answer in the store (1700 bytes each) when that fits under 512 MiB and a quarter of "
            "the memory shared by the workers, else 64 MiB (a partial cache hits little when many serials are "
            "asked in turn). See [precomputed.md](precomputed.md#the-in-process-cache)."),
        Key("response_cache_preload", BOOLEAN, "Fill each worker's edge answer cache from the store's pre-signed "
            "responses as it starts (POST and GET forms of the nonce-less SHA-1 request, then SHA-256 when it "
            "fits), when every pre-signed answer fits in `response_cache_bytes` (1700 bytes each): before the worker "
            "accepts connections for up to 3 s, the rest between requests. `false`: the cache fills only as requests miss. "
            "See [precomputed.md](precomputed.md#filled-at-start).", "true"),
        Key("http", Kind("any value", _anything),
            "No longer used: one HTTP server serves plain HTTP and TLS. A file that still sets it is accepted, "
            "the key ignored, with a warning (logged at start and reload, printed by `config check`); remove it."),
        Key("client_timeout", duration(0.1, 3600),
            "Time a client has to send a whole request from its first byte (slow senders do not extend "
            "it), and the idle time of a keep-alive connection or of a new one that sends nothing; with `[tls]` "
            "also the longest TLS handshake (and closing exchange). Overdue connections are closed without an "
            "answer.", "10"),
        Key("max_connections", integer(1, 1_000_000),
            "Per worker process: open client connections, those still in the TLS handshake "
            "included. A connection accepted beyond it gets "
            "HTTP 503 with the OCSP `tryLater` response to its first request, then is closed; beyond twice it, "
            "it is closed at once. See [operations.md](operations.md#overload).", "1000"),
        Key("max_in_flight", integer(1, 10_000),
            "Per worker process: requests waiting in threads for blocking work, i.e. forwarded requests "
            "waiting for a remote responder; one more gets HTTP 503 `tryLater` at once instead of "
            "a place in a queue. Requests pipelined behind a forwarded one wait for its answer, in order.", "64"),
    ),
)

TLS = Section(
    "tls", "TLS and client certificates",
    "With `certificate` and `key` the OCSP listener speaks HTTPS only (TLS 1.2 or later). "
    "`client_auth` asks clients for a certificate, verified in the handshake against "
    "`client_trust_anchors`; with `\"required\"` a client without a valid certificate is "
    "disconnected in the handshake. A client certificate that this responder's own data reports "
    "revoked (its issuer is a CA served here) is disconnected right after the handshake. "
    "A handshake must end within `server.client_timeout`, and connections still in it count towards "
    "`server.max_connections`. Behind a TLS-terminating proxy, `client_cert_header` names the header in which the proxy "
    "passes the verified client certificate (PEM, URL-encoded PEM as nginx's "
    "`$ssl_client_escaped_cert`, or base64 DER); it is read only from `trusted_proxies`, and "
    "the certificate is verified again against `client_trust_anchors`.",
    (
        Key("certificate", PATH, "Server certificate chain (PEM, leaf first)."),
        Key("key", PATH, "Server private key (PEM)."),
        Key("key_password_file", PATH, "File whose first line is the key's passphrase."),
        Key("min_version", choice("1.2", "1.3"), "Lowest TLS version accepted.", '"1.2"'),
        Key("client_auth", choice("none", "optional", "required"),
            "Ask for a client certificate: not at all, optionally, or required in the handshake.", '"none"'),
        Key("client_trust_anchors", PATHS,
            "CA certificates (PEM) trusted to issue client certificates; intermediates may be listed too."),
        Key("client_cert_header", STRING,
            'Header carrying the client certificate from a TLS-terminating proxy, e.g. `"X-SSL-Client-Cert"`.'),
        Key("trusted_proxies", NETWORKS,
            "Addresses of the TLS-terminating proxies: only their `client_cert_header` and "
            "`X-Forwarded-For` (last hop) are believed."),
    ),
)

ACCESS = Section(
    "access", "Request signatures and authorization",
    "Defaults for every CA; a `[ca.NAME]` table may override `require_signed_requests`, "
    "`authorization` and `authorized_names`. A signed request (RFC 6960 §4.1.2) is verified "
    "whenever signer trust anchors exist: the signature over tbsRequest with the first "
    "certificate the request carries, that certificate's chain against `signer_trust_anchors`, "
    "and its revocation in this responder's own data. A bad signature or signer is refused "
    "with `unauthorized`; an unsigned request where signatures are required with `sigRequired`.",
    (
        Key("require_signed_requests", BOOLEAN, "Refuse unsigned requests with sigRequired.", "false"),
        Key("signer_trust_anchors", PATHS,
            "CA certificates (PEM) trusted to issue request signer certificates; default: "
            "`[tls] client_trust_anchors`."),
        Key("authorization", choice("none", "by_authentication", "by_name"),
            "`by_authentication`: any authenticated TLS client or request signer; `by_name`: its "
            "subject must match `authorized_names`. Refused requests get `unauthorized`.", '"none"'),
        Key("authorized_names", STRINGS,
            'Subjects allowed with `by_name`: an exact DN (`"CN=app1,O=Example"` as RFC 4514 writes it, or '
            'as `openssl x509 -subject` prints it: `"O = Example, CN = app1"`, `"/O=Example/CN=app1"`), compared as a set of RDNs: '
            'attribute by attribute, in any order, case-insensitively; `"glob:CN=*,O=Example"` '
            '(shell pattern on the RFC 4514 string, last RDN first) or `"re:^CN=app[0-9]+,O=Example$"` '
            '(regular expression on that string).'),
    ),
)

AUDIT = Section(
    "audit", "Audit and billing log",
    "One JSON line per request: time (UTC), client address, TLS client subject, the requestorName the "
    "request claims (`requestor_name_claimed`, verified by nothing), the verified request signer, requestor "
    "(the authenticated identity: TLS client, else request signer; null when unauthenticated), issuer, the certificates asked "
    "(serial, CertID hash algorithm, certStatus answered), responseStatus, source "
    "(`cache`, `precomputed`, `live`, `forwarded`), reason of a refusal and latency in µs. "
    "Lines are written by a background thread, never on the request path. "
    "`certstatus billing report` counts them.",
    (
        Key("log", LOG_TARGET, "Where the lines go; without it there is no audit log."),
        Key("max_bytes", SIZE, "Rotate the file when it would grow past this size; 0 = never here "
            "(external rotation by renaming, as logrotate does without `copytruncate`, also works: "
            "the file is reopened when renamed).", '"100MiB"'),
        Key("backup_count", integer(0), "Rotated files kept (`audit.log.1` is the newest).", "10"),
    ),
)

ADMIN = Section(
    "admin", "Admin listener",
    "A second listener for operators, in the supervising process: the admin API (pushes, reload, "
    "source ages; see [sources.md](sources.md)) and `GET /metrics` (Prometheus text format, figures "
    "summed over every worker process), `GET /health`, `GET /ready`. Every request is authenticated "
    "(bearer token or client certificate): give Prometheus the token (`authorization: credentials_file`).",
    (
        Key("listen", LISTEN, "Address of the admin listener; not the OCSP port.", '"127.0.0.1:8081"'),
        Key("token_file", PATH, "File holding the bearer token (`Authorization: Bearer …`, 16 characters at least)."),
        Key("tls_certificate", PATH, "TLS certificate of the admin listener (with `tls_key`)."),
        Key("tls_key", PATH, "Its key."),
        Key("client_ca", PATH, "CA certificates of operators' client certificates (TLS required); a token or this is needed. "
            "A client certificate opens the admin API only when it lists extendedKeyUsage clientAuth and no CA served "
            "here reports it (or a CA of its chain) revoked; both are checked on every request."),
        Key("operator_names", STRINGS, "With `client_ca`: only client certificates whose subject matches one entry "
            "(syntax of `[access] authorized_names`); default: any subject `client_ca` issued."),
        Key("metrics_dir", PATH, "Folder where worker processes keep their metric files "
            "(PROMETHEUS_MULTIPROC_DIR); emptied at start. Default: a private temporary folder."),
    ),
)

CA = Section(
    "ca.NAME", "A CA served",
    "One table per CA (or one file per CA in `server.ca_dir`). At least one of `crl`, `index`, "
    "`issued`, `push = true` or `[ca.NAME.sql]` is required, and a signer (the `signer_certificate`/`signer_key` shorthand, "
    "`[[ca.NAME.signer]]` tables or `signers_dir`), unless the CA is forwarded: a forwarded CA has "
    '`certificate`, `forward` and optionally `path` and the access keys. `unknown_serials = "revoked"` or '
    '`"unauthorized"` needs `index`, `issued`, `push_issued` or `sql`. Signers are described in [signing.md](signing.md), '
    "sources in [sources.md](sources.md).",
    (
        Key("certificate", PATH, "The CA certificate (PEM or DER).", required=True),
        Key("crl", Kind("file path or URL, or a list of them", _crl),
            "CRLs (DER or PEM), verified against the CA: files, `http(s)://` or `ldap://` URLs; complete and delta."),
        Key("index", PATH, "OpenSSL CA database (`index.txt`)."),
        Key("issued", PATH, "Issued serials (hex lines), certificates (PEM/DER), CMS-signed lists; or a directory of them."),
        Key("signer_certificate", PATH, "Delegated responder certificate, or the CA certificate itself. "
            "Required unless `forward` is set."),
        Key("signer_key", Kind("file path or `pkcs11:` URI", _key_reference), "Its key: PEM (optionally encrypted), "
            'PKCS#12 (`.p12`/`.pfx`), or `"pkcs11:token=…;object=…"`.'),
        Key("signer_password_file", PATH, "File holding the key passphrase; else `$CERTSTATUS_SIGNER_PASSWORD`."),
        Key("signer", Kind("array of tables `[[ca.NAME.signer]]`", _signer_tables),
            "More signers of the CA (rollover, several algorithms); their keys are in `[[ca.NAME.signer]]` below."),
        Key("signers_dir", PATH, "Signers installed by `certstatus signer add`, re-read while serving."),
        Key("signers_rescan", duration(1, whole=True), "How often a running server looks at `signers_dir`.", '"60s"'),
        Key("signer_expiry_warning", duration(0, whole=True),
            "Warn (log and metric) this long before the active signer expires with no successor.", '"14d"'),
        Key("pkcs11_module", MODULE, "PKCS#11 library for this CA's `pkcs11:` keys; default `[server] pkcs11_module`."),
        Key("pkcs11_pin_file", PATH, "File holding the token PIN; else the URI's pin-source, else `$CERTSTATUS_PKCS11_PIN`."),
        Key("signature_algorithm", STRING, 'Default signature algorithm (e.g. `"ecdsa-sha256"`, `"rsa-pss-sha256"`); '
            "else chosen by the key."),
        Key("signer_locally_trusted", BOOLEAN, "The shorthand signer is not issued by this CA; clients trust it out of band.", "false"),
        Key("refresh_interval", duration(10, whole=True), "Fetch a CRL again at its nextUpdate, and at least this often.", '"1h"'),
        Key("fetch_timeout", duration(1, 600), "Time allowed to each CRL download attempt as a whole: connecting, "
            "the headers and the whole body (or the LDAP bind and search).", '"10s"'),
        Key("fetch_retries", integer(0, 10), "Extra attempts after a 5xx, a timeout or a connection error.", "2"),
        Key("max_crl_bytes", integer(1024, 2**34), "Larger CRL downloads are refused while streaming.", "268435456"),
        Key("follow_redirects", choice("same-origin", "any", "none"), "HTTP redirects of a CRL URL: followed to the "
            "same scheme, host and port only, to any `http(s)://` URL, or never; never from `https` to `http` "
            "(at most 5).", '"same-origin"'),
        Key("stale_grace", duration(0, whole=True), "How long past the newest CRL's nextUpdate the data still serves.", '"0s"'),
        Key("on_stale", choice("tryLater", "serve"), "Past that: answer tryLater, or keep serving with a warning.", '"tryLater"'),
        Key("follow_freshest_crl", BOOLEAN, "Also fetch the delta CRLs named by a complete CRL's FreshestCRL extension "
            "(`http(s)://`, `ldap(s)://` only), on their own schedule.", "true"),
        Key("issued_signed", BOOLEAN, "Every issued-list file must be CMS SignedData by the CA.", "false"),
        Key("push", BOOLEAN, "Accept changes pushed through the admin API or `certstatus push`.", "false"),
        Key("push_issued", BOOLEAN, "Pushes also list every issued serial (others are not issued); needs `push`.", "false"),
        Key("sql", Kind("table `[ca.NAME.sql]`", _table_value), "A live SQL source answering alone; its keys are in "
            "`[ca.NAME.sql]` below. See [sources.md](sources.md)."),
        Key("path", URL_PATH, "URL serving this CA alone."),
        Key("validity", duration(1, whole=True, text='duration, whole seconds: `"90m"`, `"24h"`, `"1d"`',
                                      range_text="1 h to 10 d; 1 s or more with `force_validity`"),
            "nextUpdate − thisUpdate; 1 hour to 10 days unless `force_validity`.", '"1d"'),
        Key("force_validity", BOOLEAN, "Allow a validity outside 1 hour to 10 days.", "false"),
        Key("responder_id", choice("key", "name"), "responderID byKey or byName.", '"key"'),
        Key("include_signer_chain", BOOLEAN, "Responses of a delegated responder carry its certificate only "
            "(default; never the CA's own certificate, whatever else the signer's file or PKCS#12 holds). `true` adds "
            "the CA certificate and the certificates after it in the `certificate` file, up to but not including a "
            "self-signed root. CA-signed responses carry no certificate either way.", "false"),
        Key("unknown_serials", choice("unknown", "revoked", "unauthorized"),
            'Never-issued serials, in every mode: `"unknown"`; RFC 6960 §2.2 extended revoked; or `"unauthorized"`, '
            "no answer (RFC 5019 §2.2.3; a request with such a serial among several CertIDs is refused whole). "
            "Needs `index`, `issued`, `push_issued` or `sql` unless `\"unknown\"`.", '"unknown"'),
        Key("mode", choice(*MODES),
            "`live`: sign every request. `precomputed`: a response for every known status is signed ahead "
            "(SHA-1 and SHA-256 CertIDs) and served as is, nonces ignored. `cached`: pre-signed for requests "
            "without nonce, live otherwise. Either store (PostgreSQL: one generator per CA across the fleet); "
            "not with `[ca.NAME.sql]`. See "
            "[precomputed.md](precomputed.md).", '"live"'),
        Key("archive_cutoff", Kind('`"ca-not-before"`, or a retention period: seconds, `"7y"`, `"3650d"` (a year is 365 days)',
                                   _archive_cutoff, "1 s or more"),
            "Status after expiry (ETSI EN 319 411-2 §6.3.10, RFC 6960 §4.4.4): every response carries the ArchiveCutoff "
            "singleExtension, producedAt − the retention period or the CA certificate's notBefore (`\"ca-not-before\"`, "
            "as ETSI recommends), and a revocation that disappears from a later CRL after the certificate expired is kept "
            "(revoked, never `good`). See [sources.md](sources.md#status-after-expiry)."),
        Key("final_response_after_expiry", BOOLEAN,
            "A revoked certificate past its notAfter gets a final response: nextUpdate 99991231235959Z (RFC 5280 "
            "§4.1.2.5, no well-defined end), as ETSI EN 319 411-2 §6.3.10 allows, since that revocation can never "
            "change. Overrides the nextUpdate bounds (signer notAfter, CRL nextUpdate) for these answers only; a hold "
            "(certificateHold may be released) and a certificate whose notAfter no `index` or `issued` gives keep "
            "the usual nextUpdate. Off by default: WebPKI root programs (Mozilla Root Store Policy) require nextUpdate "
            "≤ the signer's notAfter. HTTP caches keep a final response as long as any other (max-age and Expires as "
            "if it had its usual nextUpdate). Needs `archive_cutoff` and `index` or `issued`. See "
            "[compliance.md](compliance.md).", "false"),
        Key("cert_hash", BOOLEAN, "Common PKI / ISIS-MTT CertHash (1.3.36.8.3.13, SHA-256 of the certificate) in every "
            "response about a certificate the `issued` list holds (needs `issued` with certificates). A positive statement: "
            "a serial whose certificate is not known (a bare serial, an `index.txt` line) is answered `unknown` instead of "
            "`good`; revoked stays revoked, with CertHash when the certificate is known. See [compliance.md](compliance.md).",
            "false"),
        Key("nonce", choice("echo", "ignore", "require"),
            "The request's nonce (RFC 9654): `echo` it; `ignore` it (answers without nonce, so they can be shared; "
            "precomputed mode always does this); or `require` it: a request without "
            "one is refused with `unauthorized`. Default: `ignore` in precomputed mode, `echo` otherwise. See "
            "[compliance.md](compliance.md)."),
        Key("precomputed_miss", choice("sign", "unauthorized"),
            "Precomputed mode, a serial the store knows nothing about: signed live, or `unauthorized` "
            "(RFC 5019 §2.2.3; needs `index`, `issued` or `push_issued`).", '"sign"'),
        Key("require_signed_requests", BOOLEAN, "Overrides `[access] require_signed_requests` for this CA."),
        Key("authorization", choice("none", "by_authentication", "by_name"), "Overrides `[access] authorization`."),
        Key("authorized_names", STRINGS, "Overrides `[access] authorized_names`."),
        Key("forward", URLS, "Forward this CA's requests, as received, to these OCSP responders, tried in "
            "order. Each response is checked (signed by the CA or its delegated responder, CertIDs as "
            "asked, current, nonce echoed) and, for requests without a nonce, cached until its "
            "nextUpdate. When none answers: `tryLater`."),
        Key("forward_timeout", duration(0.001), "Time allowed to each responder of `forward`.", '"5s"'),
    ),
)

SIGNER = Section(
    "ca.NAME.signer", "More signers of a CA",
    "One `[[ca.NAME.signer]]` table per signer (rollover, several algorithms), besides or instead of the "
    "`signer_certificate`/`signer_key` shorthand; a file in `signers_dir` holds one such table without the header "
    "(relative paths relative to that folder). Secrets are never in the file, only the paths of the files that hold "
    "them. See [signing.md](signing.md).",
    (
        Key("certificate", PATH, "The responder certificate (PEM or DER).", required=True),
        Key("key", Kind("file path or `pkcs11:` URI", _key_reference), "Its key: PEM (optionally encrypted), "
            'PKCS#12 (`.p12`/`.pfx`), or `"pkcs11:token=…;object=…"` (RFC 7512).', required=True),
        Key("password_file", PATH, "File holding the key passphrase; else `$CERTSTATUS_SIGNER_PASSWORD`."),
        Key("pin_file", PATH, "File holding the token PIN; default the CA's `pkcs11_pin_file`."),
        Key("pkcs11_module", MODULE, "PKCS#11 library; default the CA's `pkcs11_module`."),
        Key("signature_algorithm", STRING, "Signature algorithm; default the CA's `signature_algorithm`, else chosen by the key."),
        Key("locally_trusted", BOOLEAN, "Not issued by this CA; clients trust it out of band (RFC 6960 §2.2).", "false"),
        Key("name", STRING, "Name in listings and metrics; default the certificate file's name (in `signers_dir`: the "
            "file's name without `.toml`)."),
    ),
    array=True,
)

SQL = Section(
    "ca.NAME.sql", "A live SQL source",
    "The CA's status read from its own PostgreSQL database on every request, instead of imported data; the CA "
    "answers from it alone and in `live` mode only. See [sources.md](sources.md).",
    (
        Key("dsn", Kind("`postgresql://` URI", _dsn), "The database (a password is better kept in `~/.pgpass`).", required=True),
        Key("query", Kind("SQL text", _query), "Returns status, revocation_time, reason for the serial named by "
            "`%(serial_hex)s` (upper-case hex), `%(serial)s` (numeric) or `%(serial_dec)s`; `%(issuer)s` names the CA.",
            required=True),
        Key("timeout", duration(0.001, 60), "Time allowed to one lookup: waiting for a connection and the statement.", '"2s"'),
        Key("pool_size", integer(1, 100), "Connections per worker process.", "4"),
    ),
)


SECTIONS: tuple[Section, ...] = (SERVER, TLS, ACCESS, AUDIT, ADMIN, CA, SIGNER, SQL)
#: The top-level tables a configuration file may have.
TOP_LEVEL = frozenset(s.name for s in SECTIONS if "." not in s.name) | {"ca"}

#: Up to this many known names, a refusal lists them all; beyond, only the closest.
_LISTED = 8


def check_known_keys(table: dict[str, Any], known: set[str] | frozenset[str], *, where: str, prefix: str,
                     what: str = "key") -> None:
    """Refuse the first name of ``table`` not in ``known`` with a :class:`ConfigError` at ``prefix.NAME``.

    The fix suggests the closest known name (:func:`difflib.get_close_matches`),
    else lists the known names when they are few, else points to the reference.
    """
    for name in table:
        if name in known:
            continue
        close = difflib.get_close_matches(str(name), sorted(known), n=1)
        if close:
            fix = f"Did you mean {close[0]}?"
        elif len(known) <= _LISTED:
            fix = f"Known {what}s: {', '.join(sorted(known))}."
        else:
            fix = f"`certstatus config reference` lists every {what} (docs/configuration.md)."
        raise ConfigError(where, f"{prefix}.{name}" if prefix else str(name), f"is not a known {what}.", fix)


_INTRO = """\
# Configuration reference

<!-- Generated by `certstatus config reference` from src/certstatus/config_schema.py; do not edit. -->

`certstatus serve --config certstatus.toml` reads one TOML file. Relative paths are relative to
the file that names them. Every error names the file, the key and what to write instead.
`certstatus config check --config FILE` runs the checks of start-up without serving. `SIGHUP`
re-reads the file and the revocation data (see [operations.md](operations.md)).

A duration is a number of seconds or a string with a unit: `"500ms"`, `"90s"`, `"90m"`, `"1.5h"`,
`"1d"`, `"7y"` (a year is 365 days); keys that take whole seconds say so in their type. A value outside
a key's range is refused.

```toml
[server]
listen = "0.0.0.0:8080"
database = "/var/lib/certstatus/certstatus.sqlite3"

[tls]                                   # optional: HTTPS on the OCSP listener
certificate = "tls/server.pem"
key = "tls/server.key"
client_auth = "optional"
client_trust_anchors = ["tls/clients-root.pem"]

[access]                                # optional: signed requests and authorization
authorization = "by_name"
authorized_names = ["CN=relying-party-1,O=Example", "glob:CN=*,OU=Payments,O=Example"]

[audit]
log = "/var/log/certstatus/audit.log"

[admin]
listen = "127.0.0.1:8081"
token_file = "admin.token"

[ca.issuing-1]
certificate = "issuing-1/ca.pem"
crl = ["issuing-1/ca.crl"]
index = "issuing-1/index.txt"
signer_certificate = "issuing-1/ocsp.pem"
signer_key = "issuing-1/ocsp.key"
require_signed_requests = true

[ca.partner]                            # answered by the partner's responders
certificate = "partner/ca.pem"
forward = ["http://ocsp1.partner.example/", "http://ocsp2.partner.example/"]
```
"""


def render_reference() -> str:
    """Return the configuration reference as Markdown (the text of docs/configuration.md)."""
    parts = [_INTRO]
    for section in SECTIONS:
        header = f"[[{section.name}]]" if section.array else f"[{section.name}]"
        parts.append(f"\n## `{header}` — {section.title}\n\n{section.doc}\n\n")
        parts.append("| key | type | default | range | meaning |\n|---|---|---|---|---|\n")
        for key in section.keys:
            default = "required" if key.required else (f"`{key.default}`" if key.default is not None else "—")
            parts.append(f"| `{key.name}` | {key.kind.text} | {default} | {key.kind.range or '—'} | {key.doc} |\n")
    return "".join(parts)
