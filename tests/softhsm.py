"""A SoftHSM2 token made by the tests themselves (no manual step in .ci/run).

The session fixture ``softhsm`` writes a SoftHSM2 configuration into a
temporary folder, points ``$SOFTHSM2_CONF`` at it for the whole session (the
module reads it when initialised; subprocesses inherit it), initialises one
token with ``softhsm2-util --init-token --free`` and exposes helpers to
import software keys (``softhsm2-util --import``) or name keys by URI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
USER_PIN = "4321"
SO_PIN = "87654321"
TOKEN = "certstatus-test"


@dataclass
class SoftHsm:
    """The test token: its module, folder, label and PIN file."""

    module: str
    folder: Path
    token: str
    pin_file: Path

    @property
    def token_dirs(self) -> list[Path]:
        return [p for p in (self.folder / "tokens").iterdir() if p.is_dir()]

    def import_key(self, key, label: str, key_id: str) -> str:
        """Import a software private key into the token; return its pkcs11: URI."""
        pem = self.folder / f"{label}.pem"
        pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        subprocess.run(
            ["softhsm2-util", "--import", str(pem), "--token", self.token, "--label", label,
             "--id", key_id, "--pin", USER_PIN],
            check=True, capture_output=True,
        )  # fmt: skip
        pem.unlink()
        return f"pkcs11:token={self.token};object={label}"


def find_module() -> str | None:
    for candidate in MODULE_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    """A fresh SoftHSM2 token for this test session (softhsm2 is installed by scripts/setup --test)."""
    module = find_module()
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.fail("SoftHSM2 is missing: run scripts/setup --test (Debian package softhsm2)")
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin", SO_PIN, "--pin", USER_PIN],
        check=True, capture_output=True,
    )  # fmt: skip
    pin_file = folder / "pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o600)
    return SoftHsm(module, folder, TOKEN, pin_file)
