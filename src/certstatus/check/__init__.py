"""``certstatus check``: a self-check of any OCSP responder, from the outside.

:mod:`~certstatus.check.probe` asks the responder (GET and POST, SHA-1 and
SHA-256 CertIDs, with and without a nonce), :mod:`~certstatus.check.rules`
judges each answer against the rules a client can observe, and
:mod:`~certstatus.check.command` prints the result. Nothing here uses the
responder's own code: requests are built by ``cryptography``, responses
parsed by ``cryptography`` and verified with the responder's public key.
"""
