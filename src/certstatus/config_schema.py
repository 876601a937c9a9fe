"""The configuration schema: every section and key, its type, default and meaning.

One table describes the whole TOML file. It is the source of

* the key sets :mod:`certstatus.config` accepts (an unknown key is refused),
* the validation of the operations sections (``[tls]``, ``[access]``,
  ``[audit]``, ``[admin]``) and of the per-CA access and forwarding keys, through
  each key's :class:`Kind` (see :mod:`certstatus.config_ops`),
* the configuration reference, ``docs/configuration.md``, rendered by
  :func:`render_reference` (``certstatus config reference``); a test keeps the
  committed page equal to the rendered one.

The core keys of ``[server]`` and ``[ca.NAME]`` are still validated by
:mod:`certstatus.config` itself; their kinds here only describe them.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certstatus.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|[smhd]?)\s*$")
_DURATION_UNITS = {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1024, "mi": 1024**2, "gi": 1024**3}


@dataclass(frozen=True)
class Kind:
    """How a value is written (``text`` for the reference) and checked (``parse``).

    ``parse(value, file, key, base)`` returns the typed value or raises
    :class:`ConfigError`; ``base`` is the folder relative paths start from.
    """

    text: str
    parse: Callable[[Any, str, str, Path], Any]


def _fail(file: str, key: str, value: Any, what: str, example: str) -> ConfigError:
    return ConfigError(file, key, f"{value!r} is not {what}.", f"Write for example {example}.")


def _boolean(value, file, key, base):
    if not isinstance(value, bool):
        raise _fail(file, key, value, "true or false", "true")
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
    if not isinstance(value, str) or not value:
        raise _fail(file, key, value, "a file path", '"file.pem"')
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _paths(value, file, key, base):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(file, key, value, "a file path or a list of them", '["anchors.pem"]')
    return tuple(_path(item, file, key, base) for item in value)


def _log_target(value, file, key, base):
    if value == "-":
        return "-"
    return str(_path(value, file, key, base))


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


def _seconds(value, file, key, base):
    """Seconds (float) from a number or a string like "500ms", "5s", "2h", "1d"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise _fail(file, key, value, "a duration", '"5s", "500ms" or "2d"')
    if seconds <= 0:
        raise ConfigError(file, key, "must be positive.", 'Write for example "5s".')
    return seconds


def _size(value, file, key, base):
    """Bytes from an integer or a string like "100MiB", "1G"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        unit = match.group(2).lower().rstrip("b")
        return int(match.group(1)) * _SIZE_UNITS[unit]
    raise _fail(file, key, value, "a size in bytes", '"100MiB" or 0')


def _count(value, file, key, base):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(file, key, value, "a whole number", "10")
    return value


def _listen(value, file, key, base):
    from certstatus.config import parse_listen

    return parse_listen(value, file=file, key=key)


def _choice(*choices: str) -> Kind:
    def parse(value, file, key, base):
        if value not in choices:
            raise _fail(file, key, value, f"one of {', '.join(choices)}", f'"{choices[0]}"')
        return value

    return Kind("one of " + ", ".join(f'`"{c}"`' for c in choices), parse)


BOOLEAN = Kind("boolean", _boolean)
STRING = Kind("string", _string)
STRINGS = Kind("list of strings", _strings)
PATH = Kind("file path", _path)
PATHS = Kind("file path or list of file paths", _paths)
LOG_TARGET = Kind('file path, or `"-"` for standard output', _log_target)
URLS = Kind("list of http(s) URLs", _urls)
NETWORKS = Kind("list of IP addresses or networks", _networks)
SECONDS = Kind('duration: seconds, or `"500ms"`, `"5s"`, `"2h"`, `"1d"`', _seconds)
SIZE = Kind('size: bytes, or `"100MiB"`, `"1G"`', _size)
COUNT = Kind("whole number", _count)
LISTEN = Kind('`"HOST:PORT"`', _listen)
# Kinds of core keys, validated by certstatus.config (text only here).
_CORE = {
    "integer": Kind("whole number", _count),
    "path": PATH,
    "url_path": Kind('URL path, e.g. `"/issuing-1"`', _string),
    "crl": Kind("file path or URL, or a list of them", _strings),
    "validity": Kind('duration: seconds, or `"90m"`, `"24h"`, `"1d"`', _string),
}


@dataclass(frozen=True)
class Key:
    """One key of a section. ``default`` is written as TOML (``None``: no default)."""

    name: str
    kind: Kind
    doc: str
    default: str | None = None
    required: bool = False


@dataclass(frozen=True)
class Section:
    """One TOML table (``ca.NAME`` stands for every CA table)."""

    name: str
    title: str
    doc: str
    keys: tuple[Key, ...]

    def key(self, name: str) -> Key:
        return next(key for key in self.keys if key.name == name)


SERVER = Section(
    "server", "The OCSP listener and the store",
    "One listener answers OCSP for every CA, over HTTP or (with `[tls]`) HTTPS, and also answers "
    "`GET /health` (liveness) and `GET /ready` (readiness) for load balancers.",
    (
        Key("listen", LISTEN, "Address of the OCSP listener.", '"127.0.0.1:8080"'),
        Key("workers", _CORE["integer"], "Worker processes; 0 = one per core.", "0"),
        Key("database", Kind("file path or `postgresql://` URI", _string),
            'The store: an SQLite file, or a PostgreSQL URI (`"postgresql://user@host:5432/db"`, see '
            '[database.md](database.md)) shared by a fleet.', '"certstatus.sqlite3"'),
        Key("common_path", Kind('URL path, or `""`', _string),
            'URL serving every CA; `""` serves CAs only at their own `path`.', '"/"'),
        Key("max_request_bytes", _CORE["integer"],
            "Largest POST body or decoded GET request (64 to 1000000); larger gets HTTP 413.", "10000"),
        Key("key_permissions", _choice("refuse", "warn"),
            "Secret files (keys, passphrases, PINs, the admin token) readable by group or others: refuse to start, "
            "or only warn.", '"refuse"'),
        Key("ca_dir", _CORE["path"], "Optional folder of one TOML file per CA (keys as in `[ca.NAME]`); "
            "the CA name is the file name without `.toml`."),
        Key("pkcs11_module", _CORE["path"], "PKCS#11 library for `pkcs11:` signer keys, the default of every CA "
            '(e.g. `"/usr/lib/softhsm/libsofthsm2.so"`).'),
        Key("response_cache_bytes", _CORE["integer"], "Per worker: the in-process cache of answers of `precomputed` and "
            "`cached` CAs, in bytes, least recently used out; 0 = off. See [precomputed.md](precomputed.md).", "67108864"),
        Key("http", Kind("any value", lambda value, file, key, base: value),
            "No longer used: one HTTP server serves plain HTTP and TLS. A file that still sets it is accepted, "
            "the key ignored, with a warning (logged at start and reload, printed by `config check`); remove it."),
        Key("client_timeout", Kind("seconds (a number, 0.1 to 3600)", _string),
            "Seconds a client has to send a whole request from its first byte (slow senders do not extend "
            "it), and the idle time of a keep-alive connection or of a new one that sends nothing; with `[tls]` "
            "also the longest TLS handshake (and closing exchange). Overdue connections are closed without an "
            "answer.", "10"),
        Key("max_connections", _CORE["integer"],
            "Per worker process: open client connections (1 to 1000000), those still in the TLS handshake "
            "included. A connection accepted beyond it gets "
            "HTTP 503 with the OCSP `tryLater` response to its first request, then is closed; beyond twice it, "
            "it is closed at once. See [operations.md](operations.md#overload).", "1000"),
        Key("max_in_flight", _CORE["integer"],
            "Per worker process: requests waiting in threads for blocking work, i.e. forwarded requests "
            "waiting for a remote responder (1 to 10000); one more gets HTTP 503 `tryLater` at once instead of "
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
        Key("min_version", _choice("1.2", "1.3"), "Lowest TLS version accepted.", '"1.2"'),
        Key("client_auth", _choice("none", "optional", "required"),
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
        Key("authorization", _choice("none", "by_authentication", "by_name"),
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
        Key("backup_count", COUNT, "Rotated files kept (`audit.log.1` is the newest).", "10"),
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
        Key("crl", _CORE["crl"], "CRLs (DER or PEM), verified against the CA: files, `http(s)://` or `ldap://` URLs; complete and delta."),
        Key("index", PATH, "OpenSSL CA database (`index.txt`)."),
        Key("issued", PATH, "Issued serials (hex lines), certificates (PEM/DER), CMS-signed lists; or a directory of them."),
        Key("signer_certificate", PATH, "Delegated responder certificate, or the CA certificate itself. "
            "Required unless `forward` is set."),
        Key("signer_key", Kind("file path or `pkcs11:` URI", _string), "Its key: PEM (optionally encrypted), "
            'PKCS#12 (`.p12`/`.pfx`), or `"pkcs11:token=…;object=…"`.'),
        Key("signer_password_file", PATH, "File holding the key passphrase; else `$CERTSTATUS_SIGNER_PASSWORD`."),
        Key("signer", Kind("array of tables `[[ca.NAME.signer]]`", _string),
            "More signers of the CA (rollover, several algorithms), each with `certificate`, `key`, `password_file`, "
            "`pin_file`, `pkcs11_module`, `signature_algorithm`, `locally_trusted`, `name`."),
        Key("signers_dir", PATH, "Signers installed by `certstatus signer add`, re-read while serving."),
        Key("signers_rescan", _CORE["validity"], "How often a running server looks at `signers_dir`.", '"60s"'),
        Key("signer_expiry_warning", _CORE["validity"],
            "Warn (log and metric) this long before the active signer expires with no successor.", '"14d"'),
        Key("pkcs11_module", _CORE["path"], "PKCS#11 library for this CA's `pkcs11:` keys; default `[server] pkcs11_module`."),
        Key("pkcs11_pin_file", PATH, "File holding the token PIN; else the URI's pin-source, else `$CERTSTATUS_PKCS11_PIN`."),
        Key("signature_algorithm", STRING, 'Default signature algorithm (e.g. `"ecdsa-sha256"`, `"rsa-pss-sha256"`); '
            "else chosen by the key."),
        Key("signer_locally_trusted", BOOLEAN, "The shorthand signer is not issued by this CA; clients trust it out of band.", "false"),
        Key("refresh_interval", _CORE["validity"], "Fetch a CRL again at its nextUpdate, and at least this often (10 s at least).", '"1h"'),
        Key("fetch_timeout", _CORE["validity"], "Time allowed to each CRL download attempt as a whole: connecting, "
            "the headers and the whole body (or the LDAP bind and search); 1 s to 10 min.", '"10s"'),
        Key("fetch_retries", _CORE["integer"], "Extra attempts after a 5xx, a timeout or a connection error (0 to 10).", "2"),
        Key("max_crl_bytes", _CORE["integer"], "Larger CRL downloads are refused while streaming.", "268435456"),
        Key("follow_redirects", _choice("same-origin", "any", "none"), "HTTP redirects of a CRL URL: followed to the "
            "same scheme, host and port only, to any `http(s)://` URL, or never; never from `https` to `http` "
            "(at most 5).", '"same-origin"'),
        Key("stale_grace", _CORE["validity"], "How long past the newest CRL's nextUpdate the data still serves.", '"0s"'),
        Key("on_stale", _choice("tryLater", "serve"), "Past that: answer tryLater, or keep serving with a warning.", '"tryLater"'),
        Key("follow_freshest_crl", BOOLEAN, "Also fetch the delta CRLs named by a complete CRL's FreshestCRL extension "
            "(`http(s)://`, `ldap(s)://` only), on their own schedule.", "true"),
        Key("issued_signed", BOOLEAN, "Every issued-list file must be CMS SignedData by the CA.", "false"),
        Key("push", BOOLEAN, "Accept changes pushed through the admin API or `certstatus push`.", "false"),
        Key("push_issued", BOOLEAN, "Pushes also list every issued serial (others are not issued); needs `push`.", "false"),
        Key("sql", Kind("table `[ca.NAME.sql]`", _string), "A live SQL source answering alone: `dsn` (postgresql://…), `query` "
            "(using `%(serial_hex)s`, `%(serial)s` or `%(serial_dec)s`), `timeout` (default 2 s), `pool_size` "
            "(default 4, per worker). See [sources.md](sources.md)."),
        Key("path", _CORE["url_path"], "URL serving this CA alone."),
        Key("validity", _CORE["validity"], "nextUpdate − thisUpdate; 1 hour to 10 days unless `force_validity`.", '"1d"'),
        Key("force_validity", BOOLEAN, "Allow a validity outside 1 hour to 10 days.", "false"),
        Key("responder_id", _choice("key", "name"), "responderID byKey or byName.", '"key"'),
        Key("include_signer_chain", BOOLEAN, "Responses of a delegated responder carry its certificate only "
            "(default; never the CA's own certificate, whatever else the signer's file or PKCS#12 holds). `true` adds "
            "the CA certificate and the certificates after it in the `certificate` file, up to but not including a "
            "self-signed root. CA-signed responses carry no certificate either way.", "false"),
        Key("unknown_serials", _choice("unknown", "revoked", "unauthorized"),
            'Never-issued serials, in every mode: `"unknown"`; RFC 6960 §2.2 extended revoked; or `"unauthorized"`, '
            "no answer (RFC 5019 §2.2.3; a request with such a serial among several CertIDs is refused whole). "
            "Needs `index`, `issued`, `push_issued` or `sql` unless `\"unknown\"`.", '"unknown"'),
        Key("mode", _choice("live", "precomputed", "cached"),
            "`live`: sign every request. `precomputed`: a response for every known status is signed ahead "
            "(SHA-1 and SHA-256 CertIDs) and served as is, nonces ignored. `cached`: pre-signed for requests "
            "without nonce, live otherwise. Either store (PostgreSQL: one generator per CA across the fleet); "
            "not with `[ca.NAME.sql]`. See "
            "[precomputed.md](precomputed.md).", '"live"'),
        Key("archive_cutoff", Kind('`"ca-not-before"`, or a retention period: seconds, `"7y"`, `"3650d"` (a year is 365 days)',
                                   _string),
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
        Key("nonce", _choice("echo", "ignore", "require"),
            "The request's nonce (RFC 9654): `echo` it; `ignore` it (answers without nonce, so they can be shared: "
            "precomputed mode always does this); or `require` it: a request without "
            "one is refused with `unauthorized`. Default: `ignore` in precomputed mode, `echo` otherwise. See "
            "[compliance.md](compliance.md).", '"echo"'),
        Key("precomputed_miss", _choice("sign", "unauthorized"),
            "Precomputed mode, a serial the store knows nothing about: signed live, or `unauthorized` "
            "(RFC 5019 §2.2.3; needs `index`, `issued` or `push_issued`).", '"sign"'),
        Key("require_signed_requests", BOOLEAN, "Overrides `[access] require_signed_requests` for this CA."),
        Key("authorization", _choice("none", "by_authentication", "by_name"), "Overrides `[access] authorization`."),
        Key("authorized_names", STRINGS, "Overrides `[access] authorized_names`."),
        Key("forward", URLS, "Forward this CA's requests, as received, to these OCSP responders, tried in "
            "order. Each response is checked (signed by the CA or its delegated responder, CertIDs as "
            "asked, current, nonce echoed) and, for requests without a nonce, cached until its "
            "nextUpdate. When none answers: `tryLater`."),
        Key("forward_timeout", SECONDS, "Time allowed to each responder of `forward`.", '"5s"'),
    ),
)

SECTIONS: tuple[Section, ...] = (SERVER, TLS, ACCESS, AUDIT, ADMIN, CA)
#: The top-level tables a configuration file may have.
TOP_LEVEL = frozenset({"server", "ca", *(s.name for s in SECTIONS if "." not in s.name)})


def keys_of(section: Section) -> frozenset[str]:
    """The key names of ``section``."""
    return frozenset(key.name for key in section.keys)


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


def parse_table(section: Section, table: dict[str, Any], *, where: str, prefix: str, base: Path,
                only: frozenset[str] | None = None) -> dict[str, Any]:
    """Check ``table`` (a TOML table of ``section``) and return {key: typed value} for the keys present.

    ``only`` limits the parsing to those keys (the others are left to their
    owner). Unknown keys are refused. Raises :class:`ConfigError`.
    """
    check_known_keys(table, keys_of(section), where=where, prefix=prefix)
    values = {}
    for key in section.keys:
        if key.name in table and (only is None or key.name in only):
            values[key.name] = key.kind.parse(table[key.name], where, f"{prefix}.{key.name}", base)
    return values


_INTRO = """\
# Configuration reference

<!-- Generated by `certstatus config reference` from src/certstatus/config_schema.py; do not edit. -->

`certstatus serve --config certstatus.toml` reads one TOML file. Relative paths are relative to
the file that names them. Every error names the file, the key and what to write instead.
`certstatus config check --config FILE` runs the checks of start-up without serving. `SIGHUP`
re-reads the file and the revocation data (see [operations.md](operations.md)).

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
        parts.append(f"\n## `[{section.name}]` — {section.title}\n\n{section.doc}\n\n")
        parts.append("| key | type | default | meaning |\n|---|---|---|---|\n")
        for key in section.keys:
            default = "required" if key.required else (f"`{key.default}`" if key.default is not None else "—")
            parts.append(f"| `{key.name}` | {key.kind.text} | {default} | {key.doc} |\n")
    return "".join(parts)
