"""Security controls: secret file modes, secrets kept out of every output, the admin listener's defaults.

See docs/security.md for the threat model these tests back.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certstatus.config import load_config
from certstatus.demo_pki import DemoPki
from tests.throwaway_postgres import throwaway_postgres
from tests.servers import ADMIN_TOKEN, CERTSTATUS, demo_ca_table, free_port, start_server, table
from tests.signing_support import write_signer
from tests.softhsm import USER_PIN, SoftHsm

pytestmark = pytest.mark.integration



def _config(folder: Path, pki: DemoPki, key: Path, extra: str = "") -> Path:
    path = folder / "certstatus.toml"
    path.write_text(
        f'[server]\ndatabase = "{folder / "store.sqlite3"}"\n{extra}\n'
        f'[ca.demo]\ncertificate = "{pki.ca_cert}"\ncrl = "{pki.crl}"\nsigner_certificate = "{pki.ocsp_cert}"\nsigner_key = "{key}"\n'
    )
    return path


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o642])
def test_key_readable_by_others_refuses_to_start_naming_the_file_and_chmod(demo_pki: DemoPki, tmp_path: Path, mode: int) -> None:
    """World access or a group that may write: `import` (and so `serve`) refuses, and `config check` says the same."""
    key = tmp_path / "ocsp.key"
    key.write_bytes(demo_pki.ocsp_key.read_bytes())
    key.chmod(mode)
    config = _config(tmp_path, demo_pki, key, 'listen = "127.0.0.1:0"')  # config check binds it
    done = subprocess.run([*CERTSTATUS, "import", "--config", str(config)], capture_output=True, text=True, timeout=60)
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0
    assert str(key) in output and f"chmod 600 {key}" in output and f"mode {mode:04o}" in output, output
    assert "ca.demo.signer_key" in output and "Traceback" not in output
    checked = subprocess.run([*CERTSTATUS, "config", "check", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 2 and checked.stdout == ""
    assert checked.stderr == done.stderr  # the same one-line error as the import's


def test_a_0640_key_owned_by_root_is_accepted_as_the_systemd_layout_says(demo_pki: DemoPki, tmp_path: Path) -> None:
    """deploy/certstatus.service: keys `0640 root:certstatus`. PostgreSQL's rule accepts a group-readable key owned by root."""
    key = tmp_path / "ocsp.key"
    key.write_bytes(demo_pki.ocsp_key.read_bytes())
    key.chmod(0o640)
    if os.geteuid() == 0:
        assert key.stat().st_uid == 0
    config = _config(tmp_path, demo_pki, key, 'listen = "127.0.0.1:0"')
    done = subprocess.run([*CERTSTATUS, "import", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported" in done.stdout and "chmod" not in done.stdout + done.stderr
    checked = subprocess.run([*CERTSTATUS, "config", "check", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_key_permissions_warn_starts_with_a_warning(demo_pki: DemoPki, tmp_path: Path) -> None:
    key = tmp_path / "ocsp.key"
    key.write_bytes(demo_pki.ocsp_key.read_bytes())
    key.chmod(0o644)
    config = _config(tmp_path, demo_pki, key, 'key_permissions = "warn"')
    done = subprocess.run([*CERTSTATUS, "import", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"chmod 600 {key}" in " ".join(done.stderr.split())


def test_every_secret_file_kind_is_checked(demo_pki: DemoPki, tmp_path: Path) -> None:
    from certstatus.errors import ConfigError
    from certstatus.secret_files import check_secret_files

    token = tmp_path / "admin.token"
    token.write_text("t" * 32)
    password = tmp_path / "password"
    password.write_text("secret")
    config = _config(tmp_path, demo_pki, demo_pki.ocsp_key, f'\n[admin]\nlisten = "127.0.0.1:1"\ntoken_file = "{token}"\n')
    config.write_text(config.read_text() + f'signer_password_file = "{password}"\n')
    for exposed, key in ((token, "admin.token_file"), (password, "ca.demo.signer_password_file")):
        token.chmod(0o600)
        password.chmod(0o600)
        exposed.chmod(0o644)
        with pytest.raises(ConfigError) as refused:
            check_secret_files(load_config(config))
        assert refused.value.key == key and "chmod 600" in str(refused.value)
    password.chmod(0o600)
    assert check_secret_files(load_config(config)) == []


def test_admin_listener_is_off_by_default(demo_pki: DemoPki, tmp_path: Path) -> None:
    settings = load_config(_config(tmp_path, demo_pki, demo_pki.ocsp_key))
    assert settings.admin is None  # no [admin] table: no listener, no push/reload/metrics endpoint


# --- secrets never in logs, errors, /metrics or the settings handed to workers ------------------


def _children(pid: int) -> list[int]:
    """The descendants of ``pid`` that still exist (a short-lived child may exit while we look)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []
    return found + [g for c in found for g in _children(c)]


def _proc_texts(pids: list[int], name: str) -> list[str]:
    """``/proc/PID/name`` of each process still alive; one that exited between listing and reading is left out."""
    texts = []
    for pid in pids:
        try:
            texts.append(Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace"))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return texts


def test_secrets_appear_in_no_log_error_metrics_or_worker_settings(
    demo_pki: DemoPki, softhsm: SoftHsm, tmp_path: Path
) -> None:
    passphrase = "pass-" + secrets.token_hex(12)
    db_password = "dbpw-" + secrets.token_hex(12)
    folder = tmp_path / "server"
    folder.mkdir()
    encrypted = folder / "ocsp-encrypted.key"
    key = serialization.load_pem_private_key(demo_pki.ocsp_key.read_bytes(), None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(passphrase.encode())))  # fmt: skip
    encrypted.chmod(0o600)
    (folder / "passphrase").write_text(passphrase + "\n")
    (folder / "passphrase").chmod(0o600)
    hsm_key = ec.generate_private_key(ec.SECP256R1())
    uri = softhsm.import_key(hsm_key, "ocsp-secrets-test", "7e")
    now = dt.datetime.now(dt.timezone.utc)
    hsm_cert, _ = write_signer(demo_pki, folder, "hsm-secrets", hsm_key, not_before=now - dt.timedelta(days=1),
                               not_after=now + dt.timedelta(days=30), write_key=False)  # fmt: skip
    port, admin_port = free_port(), free_port()
    with throwaway_postgres(password=db_password) as postgres:  # SCRAM: workers connect only if the password reaches them
        dsn = postgres.dsn.replace("://postgres@", f"://postgres:{db_password}@", 1)
        config = (
            f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 2\ndatabase = "{dsn}"\npkcs11_module = "{softhsm.module}"\n\n'
            f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken_file = "admin.token"\n\n'
            f'[ca.file]\ncertificate = "{demo_pki.ca_cert}"\ncrl = "{demo_pki.crl}"\npath = "/file"\n'
            f'signer_certificate = "{demo_pki.ocsp_cert}"\nsigner_key = "{encrypted}"\nsigner_password_file = "passphrase"\n\n'
            f'[ca.hsm]\ncertificate = "{demo_pki.ca_cert}"\ncrl = "{demo_pki.crl}"\npath = "/hsm"\npkcs11_pin_file = "{softhsm.pin_file}"\n'
            f'[[ca.hsm.signer]]\ncertificate = "{hsm_cert}"\nkey = "{uri}"\n'
        )
        (folder / "certstatus.toml").write_text(config)
        subprocess.run([*CERTSTATUS, "db", "upgrade", "--config", str(folder / "certstatus.toml")], check=True, capture_output=True, timeout=60)
        server = start_server(folder, config, port=port, admin_port=admin_port, log_level="debug")
        outputs = {}
        try:
            from tests.ocsp_client import request_der

            for path in ("/file/", "/hsm/"):
                answer = httpx.post(server.url + path, content=request_der(demo_pki.leaves["good"], demo_pki.ca_cert), headers={"content-type": "application/ocsp-request"}, timeout=10)
                assert answer.status_code == 200
            httpx.post(server.url + "/file/", content=b"\x30\x03junk", timeout=10)  # a malformed request (logged)
            auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            outputs["wrong token"] = httpx.get(server.admin_url + "/metrics", headers={"authorization": "Bearer nope"}, timeout=10).text
            outputs["metrics"] = httpx.get(server.admin_url + "/metrics", headers=auth, timeout=10).text
            outputs["sources"] = httpx.get(server.admin_url + "/v1/sources", headers=auth, timeout=10).text
            outputs["bad push"] = httpx.post(server.admin_url + "/v1/ca/file/revoke", content=b"{", headers=auth, timeout=10).text
            environ = _proc_texts(_children(server.process.pid), "environ")
            outputs["worker environment"] = "".join(environ)
            handed = {v.split("=", 1)[1] for e in environ for v in e.split("\0") if v.startswith("CERTSTATUS_SETTINGS_FILE=")}
            assert len(handed) == 1, handed
            settings_file = Path(handed.pop())
            assert settings_file.stat().st_mode & 0o077 == 0  # mode 0600: only the service user reads it
            outputs["worker settings"] = settings_file.read_text()
            assert "[REDACTED]" not in outputs["worker settings"] and '"cas"' in outputs["worker settings"]
        finally:
            server.stop()
        outputs["server log"] = server.log_text()
        # An error about the database names it with the password masked.
        unreachable = dsn.replace(f"127.0.0.1:{dsn.split('127.0.0.1:')[1].split('/')[0]}", f"127.0.0.1:{free_port()}")
        (folder / "down.toml").write_text(config.replace(dsn, unreachable))
        down = subprocess.run([*CERTSTATUS, "import", "--config", str(folder / "down.toml")], capture_output=True, text=True, timeout=60)
        assert down.returncode != 0
        outputs["database error"] = down.stdout + down.stderr
    assert "postgres" in outputs["database error"]
    pin = re.compile(rf"(?<![\w.:-]){USER_PIN}(?![\w.:-])")
    for name, text in outputs.items():
        for secret in (passphrase, db_password, ADMIN_TOKEN):
            assert secret not in text, f"{secret[:5]}... appears in the {name}"
        assert not pin.search(text), f"the PKCS#11 PIN appears in the {name}"


def test_sql_source_dsn_passwords_reach_workers_only_through_passfiles(demo_pki: DemoPki, demo_pki_rsa: DemoPki, tmp_path: Path) -> None:
    """``[ca.NAME.sql] dsn`` passwords (user part and ``?password=``) leave the settings handed to workers.

    Two CAs query a PostgreSQL that demands a password over TCP (SCRAM), so
    their right answers prove the password reached the worker processes; a
    third CA has a wrong password, so its failure is logged. No password
    appears in the settings file, the workers' environment, the log (debug
    level), or an admin answer; each sits in its own 0600 passfile.
    """
    import psycopg

    from certstatus.demo_pki import make_demo_pki
    from tests.ocsp_client import cert_status, request_der

    pkis = {"userpart": demo_pki, "inquery": demo_pki_rsa, "wrong": make_demo_pki(tmp_path / "third-pki")}  # one issuer per CA

    password = "sqlpw-" + secrets.token_hex(12)
    wrong = "wrongpw-" + secrets.token_hex(12)
    folder = tmp_path / "server"
    port, admin_port = free_port(), free_port()
    with throwaway_postgres(password=password) as postgres:
        with psycopg.connect(postgres.dsn, password=password, autocommit=True) as db:
            db.execute("CREATE TABLE certs (serial_hex text PRIMARY KEY, status text NOT NULL, revoked_at timestamptz, reason text)")
            for pki in pkis.values():
                for name, status in (("good", "V"), ("revoked-keycompromise", "R")):
                    hex_serial = f"{pki.serials[name]:X}"
                    db.execute("INSERT INTO certs VALUES (%s, %s, now(), 'keyCompromise') ON CONFLICT DO NOTHING",
                               (hex_serial.zfill(len(hex_serial) + len(hex_serial) % 2), status))  # fmt: skip
        query = "SELECT status, revoked_at, reason FROM certs WHERE serial_hex = %(serial_hex)s"
        user_part = postgres.dsn.replace("://postgres@", f"://postgres:{password}@", 1)
        in_query = f"{postgres.dsn}?password={password}&application_name=certstatus"
        bad = postgres.dsn.replace("://postgres@", f"://postgres:{wrong}@", 1)
        config = (
            f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 2\ndatabase = "store.sqlite3"\n\n'
            f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken_file = "admin.token"\n\n'
            + "".join(
                f'[ca.{name}]\ncertificate = "{pkis[name].ca_cert}"\npath = "/{name}"\n'
                f'signer_certificate = "{pkis[name].ocsp_cert}"\nsigner_key = "{pkis[name].ocsp_key}"\n'
                f'[ca.{name}.sql]\ndsn = "{dsn}"\nquery = "{query}"\ntimeout = "2s"\npool_size = 1\n\n'
                for name, dsn in (("userpart", user_part), ("inquery", in_query), ("wrong", bad))
            )
        )  # fmt: skip
        server = start_server(folder, config, port=port, admin_port=admin_port, log_level="debug")
        outputs = {}
        try:
            for name in ("userpart", "inquery"):  # several requests: both workers connect
                pki = pkis[name]
                for _ in range(4):
                    for leaf, expected in (("good", "good"), ("revoked-keycompromise", "revoked")):
                        answer = httpx.post(f"{server.url}{name}/", content=request_der(pki.leaves[leaf], pki.ca_cert),
                                            headers={"content-type": "application/ocsp-request", "connection": "close"}, timeout=10)  # fmt: skip
                        assert answer.status_code == 200 and cert_status(answer.content) == expected, (name, leaf, server.log_text()[-2000:])
            refused = httpx.post(server.url + "wrong/", content=request_der(pkis["wrong"].leaves["good"], pkis["wrong"].ca_cert),
                                 headers={"content-type": "application/ocsp-request"}, timeout=10)  # fmt: skip
            assert refused.status_code == 503  # tryLater: the database refused the wrong password
            auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            outputs["metrics"] = httpx.get(server.admin_url + "/metrics", headers=auth, timeout=10).text
            outputs["sources"] = httpx.get(server.admin_url + "/v1/sources", headers=auth, timeout=10).text
            workers = _children(server.process.pid)
            environ = _proc_texts(workers, "environ")
            outputs["worker environment"] = "".join(environ)
            outputs["worker command lines"] = "".join(_proc_texts(workers, "cmdline"))
            handed = {v.split("=", 1)[1] for e in environ for v in e.split("\0") if v.startswith("CERTSTATUS_SETTINGS_FILE=")}
            assert len(handed) == 1, handed
            settings_file = Path(handed.pop())
            outputs["worker settings"] = settings_file.read_text()
            passfiles = sorted(settings_file.parent.glob("pgpass-sql-*"))
            assert [p.name for p in passfiles] == ["pgpass-sql-0", "pgpass-sql-1", "pgpass-sql-2"]
            assert all(p.stat().st_mode & 0o077 == 0 for p in passfiles)
            assert password in passfiles[0].read_text() and password in passfiles[1].read_text()
            assert outputs["worker settings"].count("passfile=") == 3
        finally:
            server.stop()
        outputs["server log"] = server.log_text()
    assert "wrong" in outputs["server log"] and "password authentication failed" in outputs["server log"]
    for name, text in outputs.items():
        for secret in (password, wrong, ADMIN_TOKEN):
            assert secret not in text, f"{secret[:6]}... appears in the {name}"


# --- a PostgreSQL outage: the password in no log line, /ready says only "store unreachable" ------


def _wait_for(condition, what: str, timeout: float = 30.0) -> None:
    """Poll ``condition()`` until true; AssertionError naming ``what`` after ``timeout`` seconds (a bound, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.2)


@pytest.mark.parametrize("edge", ["plain", "tls"])
def test_postgresql_outage_logs_no_password_and_public_ready_says_only_store_unreachable(
    access_pki, tmp_path: Path, edge: str
) -> None:
    """Under a PostgreSQL outage the supervisor and both workers log the lost store with the DSN's
    password masked, on the plain-HTTP edge and on the TLS edge; the public ``/ready`` says "store
    unreachable" and nothing of user, host or driver; the admin ``/ready`` gives the details."""
    from tests.ocsp_client import request_der

    pki = access_pki.demo
    db_password = "dbpw-" + secrets.token_hex(12)
    folder = tmp_path / "server"
    folder.mkdir()
    port, admin_port = free_port(), free_port()
    with throwaway_postgres(password=db_password) as postgres:  # SCRAM over TCP: workers connect only with the password
        dsn = postgres.dsn.replace("://postgres@", f"://postgres:{db_password}@", 1)
        config = table("server", listen=f"127.0.0.1:{port}", workers=2, database=dsn) + demo_ca_table("demo", pki)
        config += table("admin", listen=f"127.0.0.1:{admin_port}", token_file="admin.token")
        if edge == "tls":
            config += table("tls", certificate=access_pki.server.cert, key=access_pki.server.key)
        (folder / "certstatus.toml").write_text(config)
        subprocess.run([*CERTSTATUS, "db", "upgrade", "--config", str(folder / "certstatus.toml")], check=True, capture_output=True, timeout=60)
        server = start_server(folder, config, port=port, admin_port=admin_port, tls=edge == "tls", log_level="debug")
        client = httpx.Client(verify=ssl.create_default_context(cafile=str(access_pki.tls_root)), timeout=10)
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        try:
            body = request_der(pki.leaves["good"], pki.ca_cert)
            ocsp = {"content-type": "application/ocsp-request", "connection": "close"}
            _wait_for(lambda: client.post(server.url, content=body, headers=ocsp).status_code == 200, "answer before the outage")
            assert client.get(server.url + "ready").text == "ready\n"
            postgres.stop("fast")
            # Both workers' change watchers lose their connection (each logs it), requests get tryLater.
            _wait_for(lambda: server.log_text().count("store change watcher lost") >= 2, "change watcher warning from both workers")
            assert client.post(server.url, content=body, headers=ocsp).status_code == 503
            public = client.get(server.url + "ready")
            admin = httpx.get(server.admin_url + "/ready", headers=auth, timeout=10)
            metrics = httpx.get(server.admin_url + "/metrics", headers=auth, timeout=10)  # reads the store: fails, logged
            for _ in range(2):  # a scraper keeps asking: the outage is said once, not per scrape
                httpx.get(server.admin_url + "/metrics", headers=auth, timeout=10)
        finally:
            client.close()
            server.stop()
        log = server.log_text()
    lines = [line for line in log.splitlines() if line.strip()]
    for line in lines:
        assert db_password not in line, line
    # Not only masked in the log: the workers never had the password (their DSN names a passfile).
    lost = [line for line in lines if "store change watcher lost" in line]
    assert lost and all("passfile=" in line and ":***@" not in line for line in lost), lost
    assert (public.status_code, public.text) == (503, "not ready:\n- store unreachable\n")
    assert any("store unreachable" in line and "127.0.0.1" in line for line in lines)  # the worker logs the details
    assert admin.status_code == 503 and "store unreachable: " in admin.text, admin.text
    assert "127.0.0.1" in admin.text and "postgres" in admin.text  # the details: where, who, why
    assert db_password not in admin.text
    assert metrics.status_code == 200
    scrape_lines = [line for line in lines if "metrics" in line and "cannot read the store" in line]
    assert len(scrape_lines) == 1 and '"exception"' not in scrape_lines[0], scrape_lines
