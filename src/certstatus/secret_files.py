"""Refuse (or warn about) secret files that other users can read.

A responder key, a key passphrase, a PKCS#11 PIN, the TLS key or the admin
token that another local account can read lets it sign OCSP responses or push
revocations. certstatus applies PostgreSQL's rule for its ``ssl_key_file``
(``check_ssl_key_file_permissions``) to each such file at start-up
(``certstatus serve``, ``import`` and ``config check``, see
:func:`certstatus.app.prepare`):

* the file is owned by root or by the user certstatus runs as (the effective
  uid);
* nobody else may read, write or run it (no "other" bits);
* its group may read it, never write or run it: ``0640 root:certstatus``
  (the layout of ``deploy/certstatus.service``) and ``0600`` owned by the
  service user are both accepted, ``0644`` and ``0660`` are not.

Unlike PostgreSQL, a group-readable file owned by the service user is
accepted too: its group then reads it exactly as it would a root-owned one.
A file breaking the rule stops start-up with a message naming the setting,
the file and the fix; ``server.key_permissions = "warn"`` logs a warning
instead (for keys on a file system without Unix modes, or managed by another
tool).
"""

from __future__ import annotations

import logging
import os
import pwd
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


def user_name(uid: int) -> str:
    """The login name of ``uid``, or ``"uid N"`` when this host has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def exposure(path: Path, euid: int | None = None) -> str | None:
    """Why other users could use ``path`` (one sentence without the file name), or None when it is private enough.

    ``euid`` is the user certstatus runs as (default: this process's
    effective uid). A missing file is not judged here (loading it reports that).
    """
    try:
        status = os.stat(path)
    except OSError:
        return None
    euid = os.geteuid() if euid is None else euid
    mode = stat.S_IMODE(status.st_mode)
    if status.st_uid not in (0, euid):
        return f"is owned by {user_name(status.st_uid)}, who is neither root nor the user certstatus runs as ({user_name(euid)})"
    if mode & stat.S_IRWXO:
        return f"is readable or writable by every user (mode {mode:04o})"
    if mode & (stat.S_IWGRP | stat.S_IXGRP):
        return f"is writable or executable by its group (mode {mode:04o}); its group may only read it"
    return None


def check_secret_files(settings, policy: str | None = None) -> list[str]:
    """Apply ``policy`` (default ``settings.server.key_permissions``) to every secret file.

    Returns the problems found (one sentence each, naming the file). Raises
    :class:`ConfigError` naming the first exposed file under ``"refuse"``;
    logs one warning per file under ``"warn"``.
    """
    policy = policy or getattr(settings.server, "key_permissions", "refuse")
    problems = []
    for key, path in secret_files(settings):
        reason = exposure(path)
        if reason is None:
            continue
        problem = f"{path} {reason}: another account on this host could use the secret."
        fix = (f"Run chmod 600 {path} and chown it to the user certstatus runs as, "
               f"or chown root:GROUP {path} and chmod 640 {path} with GROUP the group certstatus runs in.")
        if policy == "refuse":
            raise ConfigError(settings.server.where, key, problem, fix + ' Or set server.key_permissions = "warn".')
        log.warning("%s: %s %s", key, problem, fix)
        problems.append(problem)
    return problems
