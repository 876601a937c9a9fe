"""Distinguished names: the authorization name table and printable requestor names.

A :class:`NameTable` holds the subjects allowed by ``authorization =
"by_name"``. An entry is

* an exact DN written as RFC 4514 (``"CN=app1,O=Example"``), compared RDN by
  RDN with values case-folded and inner whitespace collapsed (the spirit of
  RFC 5280 §7.1 name matching);
* ``"glob:PATTERN"``: a shell pattern (``*``, ``?``, ``[...]``) on the
  subject's RFC 4514 string, case-sensitive;
* ``"re:REGEX"``: a regular expression searched in that string.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from cryptography import x509

from certstatus.errors import ConfigError


#: A name compared as a multiset of RDNs: each RDN its sorted (OID, folded value) pairs, the RDNs sorted.
NormalName = tuple[tuple[tuple[str, str], ...], ...]


def _normal(name: x509.Name) -> NormalName:
    """``name`` in a form equal for the same RDNs in any order (values case-folded, whitespace collapsed)."""
    return tuple(sorted(
        tuple(sorted((attr.oid.dotted_string, " ".join(str(attr.value).split()).casefold()) for attr in rdn))
        for rdn in name.rdns
    ))  # fmt: skip


@dataclass(frozen=True)
class NameEntry:
    """One entry of the table: ``text`` as configured, and how it matches."""

    text: str
    exact: NormalName | None = None
    pattern: re.Pattern[str] | None = None

    def matches(self, subject: x509.Name, subject_text: str) -> bool:
        if self.exact is not None:
            return _normal(subject) == self.exact
        assert self.pattern is not None
        return self.pattern.search(subject_text) is not None


class NameTable:
    """The subjects ``by_name`` authorization lets in."""

    def __init__(self, entries: Iterable[NameEntry]) -> None:
        self.entries = tuple(entries)

    @classmethod
    def parse(cls, texts: Iterable[str], *, where: str = "configuration", key: str = "authorized_names") -> NameTable:
        """Build the table; raises :class:`ConfigError` for a DN or pattern that does not parse."""
        entries = []
        for text in texts:
            try:
                if text.startswith("glob:"):
                    entries.append(NameEntry(text, pattern=re.compile(fnmatch.translate(text[5:]))))
                elif text.startswith("re:"):
                    entries.append(NameEntry(text, pattern=re.compile(text[3:])))
                else:
                    entries.append(NameEntry(text, exact=_normal(x509.Name.from_rfc4514_string(text))))
            except (ValueError, re.error) as exc:
                raise ConfigError(
                    where, key, f"{text!r} does not parse ({exc}).",
                    'Write an RFC 4514 DN such as "CN=app1,O=Example", "glob:CN=*,O=Example" or "re:^CN=app[0-9]+,".',
                ) from None
        return cls(entries)

    def match(self, subject: x509.Name) -> str | None:
        """Return the configured text of the first entry ``subject`` matches, or None."""
        text = subject.rfc4514_string()
        for entry in self.entries:
            if entry.matches(subject, text):
                return entry.text
        return None


def name_from_asn1(name: asn1_x509.Name) -> x509.Name:
    """Convert an asn1crypto Name to a ``cryptography`` Name (values as text)."""
    rdns = []
    for rdn in name.chosen:
        attributes = []
        for attribute in rdn:
            value = attribute["value"].native
            attributes.append(x509.NameAttribute(x509.ObjectIdentifier(attribute["type"].dotted), str(value)))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


_GENERAL_NAME_PREFIX = {"rfc822_name": "email:", "dns_name": "DNS:", "uniform_resource_identifier": "URI:"}


def general_name_text(der: bytes) -> str:
    """Render a GeneralName (an OCSP requestorName, RFC 6960 §4.1.1) for logs and billing.

    directoryName → its RFC 4514 string; rfc822Name, dNSName, URI → ``email:``,
    ``DNS:``, ``URI:`` and the value; any other form → its type and hex DER.
    Never raises: undecodable bytes become ``"undecodable:<hex>"``.
    """
    try:
        general = asn1_x509.GeneralName.load(der)
        if general.name == "directory_name":
            return name_from_asn1(general.chosen).rfc4514_string()
        if general.name in _GENERAL_NAME_PREFIX:
            return _GENERAL_NAME_PREFIX[general.name] + str(general.native)
        return f"{general.name}:{der.hex()}"
    except (ValueError, TypeError, KeyError):
        return f"undecodable:{der.hex()}"
