"""Secret file modes and owners: PostgreSQL's rule for ssl_key_file (certstatus.secret_files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from certstatus.secret_files import exposure

ROOT = 0
SERVICE = 4321  # the user certstatus runs as, in these tests
OTHER = 4322

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def _file(tmp_path: Path, mode: int, owner: int) -> Path:
    path = tmp_path / f"key-{mode:o}-{owner}"
    path.write_text("secret\n")
    path.chmod(mode)
    os.chown(path, owner, -1)
    return path


@needs_root
@pytest.mark.parametrize(("mode", "owner"), [(0o640, ROOT), (0o600, ROOT), (0o400, ROOT), (0o600, SERVICE), (0o640, SERVICE), (0o440, SERVICE)])
def test_group_readable_keys_owned_by_root_or_the_service_user_are_accepted(tmp_path: Path, mode: int, owner: int) -> None:
    """`0640 root:certstatus` (deploy/certstatus.service) and `0600` owned by the service user both start."""
    assert exposure(_file(tmp_path, mode, owner), euid=SERVICE) is None


@needs_root
@pytest.mark.parametrize(
    ("mode", "owner", "why"),
    [
        (0o644, ROOT, "readable or writable by every user (mode 0644)"),
        (0o604, SERVICE, "readable or writable by every user (mode 0604)"),
        (0o602, ROOT, "readable or writable by every user (mode 0602)"),
        (0o660, ROOT, "writable or executable by its group (mode 0660)"),
        (0o650, SERVICE, "writable or executable by its group (mode 0650)"),
        (0o600, OTHER, "neither root nor the user certstatus runs as"),
    ],
)
def test_world_access_group_write_and_other_owners_are_refused(tmp_path: Path, mode: int, owner: int, why: str) -> None:
    reason = exposure(_file(tmp_path, mode, owner), euid=SERVICE)
    assert reason is not None and why in reason


def test_a_missing_file_is_left_to_the_loader(tmp_path: Path) -> None:
    assert exposure(tmp_path / "missing.key") is None
