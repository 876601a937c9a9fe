"""requirements.lock is what runs: scripts/setup installs it as pip constraints, scripts/audit checks it."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"


def _pins() -> dict[str, str]:
    """name (normalised) -> version, from the lines ``name==version`` of requirements.lock."""
    lines = [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in (line.split("==") for line in lines)}


def test_the_installed_runtime_dependencies_are_the_locked_versions():
    installed = {name: metadata.version(name) for name in _pins()}
    assert installed == _pins(), "run scripts/setup (it installs requirements.lock as constraints)"


def test_every_locked_dependency_is_within_the_ranges_of_pyproject():
    pins = _pins()
    direct = [Requirement(text) for text in metadata.requires("certstatus") if "extra ==" not in text]
    for requirement in direct:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = pins[re.sub(r"[-_.]+", "-", requirement.name).lower()]
        assert requirement.specifier.contains(version), f"requirements.lock pins {requirement.name}=={version}: outside {requirement}"
