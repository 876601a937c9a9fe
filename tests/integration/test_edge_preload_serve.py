"""`certstatus serve` fills its edge cache from the store as a worker starts: the real `openssl ocsp`
client's first request for a certificate is an edge hit (counted in /metrics as ``source="edge"``).

A precomputed CA of the demo PKI, signed by `certstatus generate` before the server starts (a
restart over a signed store, the common case), one worker and the admin listener. The same store
served with ``response_cache_preload = false`` answers the first request from the store instead.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.precomputed_helpers import copy_pki
from tests.servers import ADMIN_TOKEN, CERTSTATUS, demo_ca_table, free_port, start_server, table

pytestmark = pytest.mark.integration

LEAVES = ("good", "revoked-keycompromise")


def _config(folder, pki, port: int, admin: int, preload: bool) -> str:
    return (
        table("server", listen=f"127.0.0.1:{port}", workers=1, database=folder / "store.sqlite3",
              response_cache_preload=preload)
        + table("admin", listen=f"127.0.0.1:{admin}", token_file="admin.token")
        + demo_ca_table("demo", pki, index=True, mode="precomputed")
    )  # fmt: skip


def _metrics(server) -> dict[str, float]:
    """certstatus_requests_total of the CA by source, and the entries filled."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(server.admin_get("/metrics").text):
        for sample in family.samples:
            if sample.name == "certstatus_requests_total" and sample.labels.get("ca") == "demo":
                found[sample.labels["source"]] = found.get(sample.labels["source"], 0.0) + sample.value
            elif sample.name == "certstatus_edge_preloaded_total":
                found["preloaded"] = found.get("preloaded", 0.0) + sample.value
    return found


def _ask(pki, port: int) -> None:
    for leaf in LEAVES:
        done = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(pki.ca_cert), "-cert", str(pki.leaves[leaf]), "-no_nonce",
             "-url", f"http://127.0.0.1:{port}/", "-CAfile", str(pki.chain)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Response verify OK" in done.stderr + done.stdout
        assert ("revoked" if leaf.startswith("revoked") else ": good") in done.stdout


def _counted(server, total: int) -> dict[str, float]:
    deadline = time.monotonic() + 15  # the worker adds its counts once a second
    while True:
        found = _metrics(server)
        if sum(value for key, value in found.items() if key != "preloaded") >= total:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


@pytest.mark.parametrize("preload", [True, False])
def test_the_first_openssl_request_is_an_edge_hit_after_the_fill(demo_pki, tmp_path, preload):
    pki = copy_pki(demo_pki, tmp_path / "pki")
    port, admin = free_port(), free_port()
    config = tmp_path / "certstatus.toml"
    config.write_text(_config(tmp_path, pki, port, admin, preload))
    (tmp_path / "admin.token").write_text(ADMIN_TOKEN + "\n")
    (tmp_path / "admin.token").chmod(0o600)
    generated = subprocess.run([*CERTSTATUS, "generate", "--config", str(config), "--processes", "0"],
                               capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    server = start_server(tmp_path, config, port=port, admin_port=admin)
    try:
        if preload:
            deadline = time.monotonic() + 30
            while "edge cache fill done" not in server.log_text():
                assert time.monotonic() < deadline, server.log_text()
                time.sleep(0.05)
            assert server.log_text().count("edge cache fill") == 2  # one line at the start, one at the end
        _ask(pki, port)
        found = _counted(server, len(LEAVES))
        if preload:
            assert found.get("edge") == len(LEAVES) and found.get("precomputed", 0) == 0, found
            assert found["preloaded"] >= len(pki.leaves) - 1  # every issued serial of the demo CA
        else:
            assert found.get("precomputed") == len(LEAVES) and found.get("edge", 0) == 0, found
            assert found.get("preloaded", 0) == 0 and "edge cache fill" not in server.log_text()
    finally:
        assert server.stop() == 0
