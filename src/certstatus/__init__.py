"""certstatus: an OCSP responder (RFC 6960, RFC 5019/9919) for PKI operators."""

__version__ = "0.1.0"
