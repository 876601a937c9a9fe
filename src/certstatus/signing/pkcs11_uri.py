"""RFC 7512 ``pkcs11:`` URIs: which token and which object a signer key is.

    pkcs11:token=OCSP;object=ocsp-2025;type=private?pin-source=file:/etc/certstatus/pin

Path attributes are separated by ``;``, query attributes by ``&``; values are
percent-decoded (RFC 7512 §2.3). No PyPI library parses these URIs, so this
module does, strictly: an attribute certstatus does not know is refused
(``x-`` vendor attributes excepted), so that a typo cannot select another key.
``pin-value`` is refused (a PIN in a configuration file ends up in logs and
process listings): use ``pin-source``, a PIN file or ``$CERTSTATUS_PKCS11_PIN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, unquote_to_bytes

SCHEME = "pkcs11:"

_PATH_ATTRIBUTES = {
    "token", "manufacturer", "serial", "model", "library-manufacturer", "library-description",
    "library-version", "slot-description", "slot-manufacturer", "slot-id", "object", "id", "type",
}  # fmt: skip
_QUERY_ATTRIBUTES = {"pin-source", "pin-value", "module-name", "module-path"}
_TYPES = {"private", "public", "cert", "secret-key", "data"}


def is_pkcs11_uri(text: str) -> bool:
    """True when ``text`` is a ``pkcs11:`` URI (scheme compared case-insensitively)."""
    return isinstance(text, str) and text[: len(SCHEME)].lower() == SCHEME


@dataclass(frozen=True)
class Pkcs11Uri:
    """The attributes of a parsed ``pkcs11:`` URI (RFC 7512 §2.3).

    ``id`` is bytes (CKA_ID); ``slot_id`` an int; every other value a str.
    ``text`` is the URI as written (it never holds a PIN: pin-value is refused).
    """

    text: str
    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    slot_id: int | None = None
    slot_description: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    pin_source: str | None = None
    module_path: str | None = None
    module_name: str | None = None

    @property
    def token_filter(self) -> dict[str, str]:
        """Keyword arguments for ``pkcs11.lib.get_token`` (label and serial)."""
        found = {}
        if self.token is not None:
            found["token_label"] = self.token
        if self.serial is not None:
            found["token_serial"] = self.serial
        return found

    def describe(self) -> str:
        """A short name for messages and tables: ``token OCSP, object ocsp-2025``."""
        parts = []
        if self.token is not None:
            parts.append(f"token {self.token}")
        if self.object is not None:
            parts.append(f"object {self.object}")
        if self.id is not None:
            parts.append(f"id {self.id.hex()}")
        return ", ".join(parts) or self.text


def parse_pkcs11_uri(text: str) -> Pkcs11Uri:
    """Parse an RFC 7512 URI.

    Raises ``ValueError`` with a sentence naming the problem: not a pkcs11:
    URI, an attribute without ``=``, an unknown or repeated attribute, a bad
    ``type``/``slot-id``, ``pin-value``, or neither ``object`` nor ``id``
    (a signer key must name its object).
    """
    if not is_pkcs11_uri(text):
        raise ValueError(f"{text!r} is not a pkcs11: URI")
    body = text[len(SCHEME):]
    path, _, query = body.partition("?")
    values: dict[str, str | bytes] = {}
    for part, separator, known in ((path, ";", _PATH_ATTRIBUTES), (query, "&", _QUERY_ATTRIBUTES)):
        for item in filter(None, part.split(separator)):
            name, equals, raw = item.partition("=")
            name = name.strip().lower()
            if not equals:
                raise ValueError(f"pkcs11 URI attribute {item!r} has no '=' (write name=value)")
            if name.startswith("x-"):
                continue
            if name not in known:
                raise ValueError(
                    f"pkcs11 URI attribute {name!r} is not known here; "
                    f"known: {', '.join(sorted(_PATH_ATTRIBUTES | _QUERY_ATTRIBUTES - {'pin-value'}))}"
                )
            if name in values:
                raise ValueError(f"pkcs11 URI attribute {name!r} appears twice")
            values[name] = unquote_to_bytes(raw) if name == "id" else unquote(raw, errors="strict")
    if "pin-value" in values:
        raise ValueError(
            "pkcs11 URI carries pin-value: a PIN must not be written in the configuration; "
            "use pin-source=file:/path, a PIN file or the environment variable CERTSTATUS_PKCS11_PIN"
        )
    if values.get("type") is not None and values["type"] not in _TYPES:
        raise ValueError(f"pkcs11 URI type={values['type']!r} is not one of {', '.join(sorted(_TYPES))}")
    slot_id = values.get("slot-id")
    if slot_id is not None and not str(slot_id).isdigit():
        raise ValueError(f"pkcs11 URI slot-id={slot_id!r} is not a decimal number")
    if "object" not in values and "id" not in values:
        raise ValueError("pkcs11 URI names no key: add object=LABEL or id=%XX%XX")
    return Pkcs11Uri(
        text=text,
        token=values.get("token"),
        manufacturer=values.get("manufacturer"),
        serial=values.get("serial"),
        model=values.get("model"),
        slot_id=int(slot_id) if slot_id is not None else None,
        slot_description=values.get("slot-description"),
        object=values.get("object"),
        id=values.get("id"),
        type=values.get("type"),
        pin_source=values.get("pin-source"),
        module_path=values.get("module-path"),
        module_name=values.get("module-name"),
    )


def pin_source_path(pin_source: str) -> str:
    """The file a ``pin-source`` names: ``file:/path``, ``file:///path`` or a plain path.

    Raises ``ValueError`` for ``|command`` sources (certstatus runs no
    commands to fetch a PIN) and for other URI schemes.
    """
    if pin_source.startswith("|"):
        raise ValueError("pin-source=|command is not supported: put the PIN in a file and use pin-source=file:/path")
    if pin_source.startswith("file://"):
        return pin_source[len("file://"):]
    if pin_source.startswith("file:"):
        return pin_source[len("file:"):]
    if ":" in pin_source.split("/", 1)[0]:
        raise ValueError(f"pin-source {pin_source!r} is not a file: use pin-source=file:/path")
    return pin_source
