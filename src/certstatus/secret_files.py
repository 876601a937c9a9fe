"""Refuse (or warn about) secret files that other users can read.

A responder key, a key passphrase, a PKCS#11 PIN, the TLS key or the admin
token readable by the file's group or by everyone lets any local account sign
OCSP responses or push revocations. Like ssh and postfix, certstatus checks
the mode of each such file at start-up (``certstatus serve`` and ``import``,
see :func:`certstatus.app.prepare`) and refuses to start, naming the file and
``chmod 600``; ``server.key_permissions = "warn"`` logs a warning instead
(for keys on a file system without Unix modes, or managed by another tool).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from certstatus.errors import ConfigError

log = logging.getLogger("certstatus.security")

POLICIES = ("refuse", "warn")


def secret_files(settings) -> Iterator[tuple[str, Path]]:
    """(setting name, path) of every secret file ``settings`` names (keys, passphrases, PINs, tokens)."""
    for ca in settings.cas:
        prefix = f"ca.{ca.name}"
        if ca.signer_key is not None and not str(ca.signer_key).startswith("pkcs11:"):
            yield f"{prefix}.signer_key", Path(ca.signer_key)
        for key in ("signer_password_file", "pkcs11_pin_file"):
            if getattr(ca, key) is not None:
                yield f"{prefix}.{key}", Path(getattr(ca, key))
        for number, signer in enumerate(ca.signers):
            if signer.key and not signer.key.startswith("pkcs11:"):
                yield f"{prefix}.signer[{number}].key", Path(signer.key)
            for key in ("password_file", "pin_file"):
                if getattr(signer, key) is not None:
                    yield f"{prefix}.signer[{number}].{key}", Path(getattr(signer, key))
    tls = settings.ops.tls
    for key in ("key", "key_password_file"):
        if getattr(tls, key) is not None:
            yield f"tls.{key}", Path(getattr(tls, key))
    if settings.admin is not None:
        for key in ("token_file", "tls_key"):
            if getattr(settings.admin, key) is not None:
                yield f"admin.{key}", Path(getattr(settings.admin, key))


def exposed(path: Path) -> int | None:
    """The permission bits of ``path`` when its group or others may read or write it, else None.

    A missing file is not judged here (loading it reports that).
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    return mode if mode & (stat.S_IRWXG | stat.S_IRWXO) else None


def check_secret_files(settings, policy: str | None = None) -> list[str]:
    """Apply ``policy`` (default ``settings.server.key_permissions``) to every secret file.

    Returns the problems found (one sentence each). Raises
    :class:`ConfigError` naming the first exposed file under ``"refuse"``;
    logs one warning per file under ``"warn"``.
    """
    policy = policy or getattr(settings.server, "key_permissions", "refuse")
    problems = []
    for key, path in secret_files(settings):
        mode = exposed(path)
        if mode is None:
            continue
        problem = f"{path} is readable or writable by other users (mode {mode:04o}): anyone on this host could use the secret."
        fix = f"Run chmod 600 {path} (and chown it to the user certstatus runs as)."
        if policy == "refuse":
            raise ConfigError(settings.server.where, key, problem, fix + ' Or set server.key_permissions = "warn".')
        log.warning("%s: %s %s", key, problem, fix)
        problems.append(problem)
    return problems
