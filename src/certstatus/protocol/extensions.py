"""OIDs of the OCSP extensions certstatus reads or writes (RFC 6960 §4.4, RFC 9654)."""

#: id-pkix-ocsp-nonce (RFC 6960 §4.4.1, RFC 9654).
NONCE = "1.3.6.1.5.5.7.48.1.2"
#: id-pkix-ocsp-response, acceptable response types (RFC 6960 §4.4.3).
ACCEPTABLE_RESPONSES = "1.3.6.1.5.5.7.48.1.4"
#: id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1), in delegated responder certificates.
OCSP_NOCHECK = "1.3.6.1.5.5.7.48.1.5"
#: id-pkix-ocsp-archive-cutoff (RFC 6960 §4.4.4), a singleExtension: ArchiveCutoff ::= GeneralizedTime.
ARCHIVE_CUTOFF = "1.3.6.1.5.5.7.48.1.6"
#: id-isismtt-at-certHash (Common PKI, ISIS-MTT), a singleExtension:
#: CertHash ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, certificateHash OCTET STRING }.
CERT_HASH = "1.3.36.8.3.13"
#: id-pkix-ocsp-service-locator (RFC 6960 §4.4.6).
SERVICE_LOCATOR = "1.3.6.1.5.5.7.48.1.7"
#: id-pkix-ocsp-pref-sig-algs (RFC 6960 §4.4.7).
PREFERRED_SIGNATURE_ALGORITHMS = "1.3.6.1.5.5.7.48.1.8"
#: id-pkix-ocsp-extended-revoke (RFC 6960 §4.4.8).
EXTENDED_REVOKE = "1.3.6.1.5.5.7.48.1.9"
#: id-pkix-ocsp-basic, the only response type certstatus produces.
BASIC_RESPONSE = "1.3.6.1.5.5.7.48.1.1"

#: Request extensions understood: a critical one outside this set is refused.
KNOWN_REQUEST_EXTENSIONS = frozenset(
    {NONCE, ACCEPTABLE_RESPONSES, SERVICE_LOCATOR, PREFERRED_SIGNATURE_ALGORITHMS}
)

#: RFC 9654 §2.1: a responder rejects a nonce of 0 octets or longer than 128.
NONCE_MAX_OCTETS = 128
