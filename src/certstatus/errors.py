"""Exceptions shared across layers.

Operator-facing errors (:class:`ConfigError`, :class:`SourceError`,
:class:`SignerError`) carry enough context to be printed as one readable
paragraph: the file, the key or field, and what to do about it.
"""

from __future__ import annotations


class CertstatusError(Exception):
    """Base class of every error certstatus raises on purpose."""


class ConfigError(CertstatusError):
    """A configuration value is missing, has the wrong type or an impossible value.

    ``file`` is the configuration file (or ``"command line"``), ``key`` the
    dotted key (``ca.root.validity``) and ``fix`` one sentence saying what to
    write instead.
    """

    def __init__(self, file: str, key: str, problem: str, fix: str = "") -> None:
        self.file = file
        self.key = key
        self.problem = problem
        self.fix = fix
        text = f"{file}: {key}: {problem}"
        if fix:
            text += f" {fix}"
        super().__init__(text)


class SourceError(CertstatusError):
    """Revocation data (a CRL, an index file, a list of issued serials) was refused.

    ``origin`` names where the data came from (a path or URL). Whatever was
    imported before stays in the store and keeps serving; a CA with a source
    never imported answers tryLater (:mod:`certstatus.sources.health`).
    """

    def __init__(self, origin: str, problem: str) -> None:
        self.origin = origin
        self.problem = problem
        super().__init__(f"{origin}: {problem}")


class SignerError(CertstatusError):
    """A signing key or responder certificate cannot be used (wrong key, expired, no EKU...)."""


class StoreError(CertstatusError):
    """The status store cannot be used: unreachable, wrong DSN, schema too old or too new.

    ``database`` names it (a path, or a DSN with the password masked);
    ``fix`` is one sentence saying what to do.
    """

    def __init__(self, database: str, problem: str, fix: str = "") -> None:
        self.database = database
        self.problem = problem
        self.fix = fix
        text = f"{database}: {problem}"
        if fix:
            text += f" {fix}"
        super().__init__(text)


class StoreUnavailable(StoreError):
    """The store stopped answering while serving (connection lost); requests get tryLater."""


class SignerUnavailable(CertstatusError):
    """No signer can sign right now: answer tryLater (RFC 6960 §2.3), do not guess.

    Raised on the request path when the HSM token went away (removed, PIN
    locked, session lost), the session pool stayed busy past its timeout, or
    the CA has no signer valid at this moment. Signing resumes by itself when
    the cause goes away; the message is for logs, never for clients.
    """
