"""Distinguished names: the authorization name table and printable requestor names.

A :class:`NameTable` holds the subjects allowed by ``authorization =
"by_name"``. An entry is

* an exact DN written as RFC 4514 (``"CN=app1,O=Example"``) or as OpenSSL
  prints it (``"O = Example, CN = app1"``, ``"/O=Example/CN=app1"``: see
  :func:`parse_dn`), compared as a set of RDNs, in any order, with values
  case-folded and inner whitespace collapsed (the spirit of RFC 5280 §7.1
  name matching);
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
from cryptography.x509.oid import NameOID

from certstatus.errors import ConfigError

#: Attribute names OpenSSL prints that RFC 4514's short list (cryptography's parser) lacks.
_OPENSSL_NAMES = {
    "emailAddress": NameOID.EMAIL_ADDRESS, "serialNumber": NameOID.SERIAL_NUMBER, "SN": NameOID.SURNAME,
    "GN": NameOID.GIVEN_NAME, "title": NameOID.TITLE, "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
    "businessCategory": NameOID.BUSINESS_CATEGORY, "jurisdictionC": NameOID.JURISDICTION_COUNTRY_NAME,
}  # fmt: skip
#: One ``TYPE = value`` of OpenSSL's default one-line form: the value quoted, or up to an unescaped ``,``/``+``.
_ONELINE_ATTRIBUTE = re.compile(r'\s*([A-Za-z][\w.-]*)\s*=\s*("(?:[^"\\]|\\.)*"|(?:[^,+\\]|\\.)*?)\s*([,+]|$)')


def parse_dn(text: str) -> x509.Name:
    """A distinguished name as RFC 4514 writes it (``CN=app1,O=Example``), or as ``openssl x509 -subject``
    prints it: OpenSSL 3's default one-line form (``O = Example, CN = app1``, values quoted when they hold
    a separator, ``+`` joining the attributes of a multi-valued RDN) or the older compat form
    (``/O=Example/CN=app1``).

    Raises ValueError when it is none of these. The RDN order is kept as written; the name table
    compares RDNs in any order anyway.
    """
    try:
        return x509.Name.from_rfc4514_string(text, _OPENSSL_NAMES)
    except ValueError as exc:
        rdns = _openssl_rdns(text)
        if not rdns:
            raise ValueError(f"neither RFC 4514 nor OpenSSL's form: {exc or 'no attribute found'}") from None
    return x509.Name([x509.RelativeDistinguishedName(_attribute(name, value) for name, value in rdn) for rdn in rdns])


def _attribute(name: str, value: str) -> x509.NameAttribute:
    """One attribute, its type named as OpenSSL or RFC 4514 name it (or a dotted OID); ValueError otherwise."""
    (attribute,) = x509.Name.from_rfc4514_string(f"{name}={_escape(value)}", _OPENSSL_NAMES).rdns[0]
    return attribute


def _openssl_rdns(text: str) -> list[list[tuple[str, str]]]:
    """The RDNs, each its (type, value) pairs, in the order OpenSSL printed them; empty when ``text``
    is not OpenSSL's form."""
    text = text.strip()
    rdns: list[list[tuple[str, str]]] = [[]]
    if text.startswith("/"):
        for part, separator in re.findall(r"((?:[^/+\\]|\\.)+)([/+]?)", text[1:]):
            name, equals, value = part.partition("=")
            if not equals:
                return []
            rdns[-1].append((name.strip(), re.sub(r"\\(.)", r"\1", value)))
            if separator != "+":
                rdns.append([])
        return [rdn for rdn in rdns if rdn]
    position = 0
    while position < len(text):
        found = _ONELINE_ATTRIBUTE.match(text, position)
        if found is None or found.end() == position:
            return []
        name, value, separator = found.groups()
        if value.startswith('"'):
            value = value[1:-1]
        rdns[-1].append((name, re.sub(r"\\(.)", r"\1", value)))
        if separator != "+":
            rdns.append([])
        position = found.end()
    return [rdn for rdn in rdns if rdn]


def _escape(value: str) -> str:
    """``value`` as an RFC 4514 attribute value (§2.4)."""
    value = re.sub(r'([\\,+"<>;=])', r"\\\1", value)
    if value.startswith(("#", " ")):
        value = "\\" + value
    if value.endswith(" "):
        value = value[:-1] + "\\ "
    return value


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
                    entries.append(NameEntry(text, exact=_normal(parse_dn(text))))
            except (ValueError, re.error) as exc:
                raise ConfigError(
                    where, key, f"{text!r} does not parse ({exc}).",
                    'Write a DN such as "CN=app1,O=Example" (or as openssl x509 -subject prints it), '
                    '"glob:CN=*,O=Example" or "re:^CN=app[0-9]+,".',
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
