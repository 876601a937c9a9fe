"""The issuers served, and the registry that finds one from a CertID.

The registry is a dict from (hash algorithm, issuerNameHash, issuerKeyHash)
to the :class:`ServedCA`, built once for SHA-1, SHA-256, SHA-384 and
SHA-512, so a CertID with any of those hashes finds its issuer in one dict
lookup, and two CAs with the same name but different keys stay apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509

from certstatus.config import CaSettings
from certstatus.model import CertID, IssuerKey
from certstatus.protocol.certid import all_issuer_hashes
from certstatus.signing.signer import ResponseSigner
from certstatus.signing.signer_set import SignerSet
from certstatus.sources.health import has_data
from certstatus.store.base import StatusReader


@dataclass(eq=False, slots=True)
class ServedCA:
    """One CA this process answers for.

    ``issuer_id`` is its key in the store; ``has_data`` is False until every
    configured source of status has been imported at least once
    (:func:`~certstatus.sources.health.has_data`; until then its requests get
    tryLater rather than a guess). ``signers`` chooses the signer of each
    response (a bare :class:`ResponseSigner` given here is wrapped in a set
    of one); :attr:`signer` is the one signing now.
    """

    settings: CaSettings
    certificate: x509.Certificate
    issuer_id: int
    signers: SignerSet
    has_data: bool = True
    hashes: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def signer(self) -> ResponseSigner:
        """The default signer at this moment (raises SignerUnavailable when none is valid).

        Read it once per response: at a rollover two reads may differ.
        """
        return self.signers.current()

    def __post_init__(self) -> None:
        if isinstance(self.signers, ResponseSigner):
            self.signers = SignerSet.single(self.signers)
        if not self.hashes:
            self.hashes = all_issuer_hashes(self.certificate)


class IssuerRegistry:
    """Find the :class:`ServedCA` of a CertID (RFC 6960 §4.1.1)."""

    def __init__(self, cas: Iterable[ServedCA]) -> None:
        self.cas: tuple[ServedCA, ...] = tuple(cas)
        self._by_hashes: dict[IssuerKey, ServedCA] = {}
        for ca in self.cas:
            for algorithm, (name_hash, key_hash) in ca.hashes.items():
                self._by_hashes[(algorithm, name_hash, key_hash)] = ca
        self.by_name = {ca.name: ca for ca in self.cas}
        # Per issuer: a store change names one issuer, and start-up refreshes every one (a scan per
        # change made that quadratic in the number of CAs).
        self._by_issuer: dict[int, list[ServedCA]] = {}
        for ca in self.cas:
            self._by_issuer.setdefault(ca.issuer_id, []).append(ca)

    def refresh_state(self, issuer_id: int, store: StatusReader) -> None:
        """Re-read what this process keeps of an issuer's data (``has_data``) after a store change."""
        cas = self._by_issuer.get(issuer_id)
        if cas:
            states = store.source_states(issuer_id)
            for ca in cas:
                ca.has_data = has_data(ca.settings, states)

    def find(self, cert_id: CertID) -> ServedCA | None:
        """Return the CA that issued the certificate named by ``cert_id``, or None."""
        return self._by_hashes.get(cert_id.issuer_key)
