"""Time `certstatus import` of a CRL with N revoked entries (default 1 000 000; target < 15 s).

The CRL is made by the real ``openssl ca -gencrl`` from an ``index.txt`` of N
revoked lines (reason keyCompromise on every 4th entry, so entries carry
extensions as real CRLs do), for the demo PKI's CA. Then ``certstatus import``
(the installed command of this checkout) runs ``--runs`` times into a fresh
SQLite store each time and the script prints each wall time, the median, and
the baseline of the same run: ``openssl crl -noout`` parsing the same file
(so the figure can be compared across noisy machines).

Each run then imports the same file again into the same store, as a restart or
SIGHUP does ("again": the CRL is unchanged, so nothing is written). With
``--peer`` (another checkout's `certstatus`, e.g. a worktree of an older
commit) the peer does the same two imports into its own store in the same
run, and the medians are printed side by side.

    .venv/bin/python bench/import_crl.py [--entries 1000000] [--runs 3] [--keep DIR]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]   # into PostgreSQL instead of SQLite
        [--peer ../base/.venv/bin/certstatus]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from certstatus.demo_pki import make_demo_pki

_OPENSSL_CNF = """\
[ca]
default_ca = bench
[bench]
dir = {folder}
database = $dir/index.txt
certificate = {ca_cert}
private_key = {ca_key}
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = 7
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
"""


def build_crl(folder: Path, entries: int) -> tuple[Path, Path]:
    """Write a demo PKI and an N-entry CRL (PEM) in ``folder``; return (CA cert, CRL)."""
    pki = make_demo_pki(folder / "pki")
    revoked_at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).strftime("%y%m%d%H%M%SZ")
    expiry = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=90)).strftime("%y%m%d%H%M%SZ")
    with open(folder / "index.txt", "w") as index:
        for i in range(entries):
            reason = ",keyCompromise" if i % 4 == 0 else ""
            serial = f"{0x10_0000_0000 + i * 7919:X}"
            index.write(f"R\t{expiry}\t{revoked_at}{reason}\t{serial.zfill(len(serial) + len(serial) % 2)}\tunknown\t/CN=x\n")
    (folder / "crlnumber").write_text("1000\n")
    config = folder / "openssl.cnf"
    config.write_text(_OPENSSL_CNF.format(folder=folder, ca_cert=pki.ca_cert, ca_key=pki.ca_key))
    crl = folder / "big.crl"
    subprocess.run(
        ["openssl", "ca", "-batch", "-config", str(config), "-gencrl", "-out", str(crl)],
        check=True, capture_output=True,
    )  # fmt: skip
    return pki.ca_cert, crl


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr.decode()}")
    return elapsed


def _postgres_schema(server: str, name: str, certstatus: str) -> str:
    """Create schema ``name`` on ``server`` at the current version (not timed); return its DSN."""
    import psycopg
    from urllib.parse import quote

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(name)))
    dsn = f"{server}{'&' if '?' in server else '?'}options={quote(f'-csearch_path={name}')}"
    subprocess.run([certstatus, "db", "upgrade", "--db", dsn], check=True, capture_output=True)
    return dsn


def _drop_schema(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument(
        "--postgres", metavar="SERVER_DSN", help="import into a fresh schema (made and dropped here) of this PostgreSQL server"
    )
    parser.add_argument("--peer", metavar="CERTSTATUS", help="another checkout's certstatus, timed in the same runs")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-crl-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        ca_cert, crl = build_crl(folder, args.entries)
        print(f"built {args.entries} entries CRL ({crl.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")
        programs = {"certstatus": str(Path(sys.executable).with_name("certstatus"))}
        if args.peer:
            programs["peer"] = args.peer
        baseline: list[float] = []
        first: dict[str, list[float]] = {name: [] for name in programs}
        again: dict[str, list[float]] = {name: [] for name in programs}
        for run in range(args.runs):
            baseline.append(timed(["openssl", "crl", "-in", str(crl), "-noout"]))
            line = [f"run {run + 1}: openssl crl -noout {baseline[-1]:.2f} s"]
            for name, program in programs.items():
                schema = f"bench_import_{os.getpid()}_{run}_{name}"
                db = _postgres_schema(args.postgres, schema, program) if args.postgres else folder / f"run{run}-{name}.sqlite3"
                command = [
                    program, "import", "--issuer", str(ca_cert), "--crl", str(crl), "--db", str(db),
                    "--signer-cert", str(folder / "pki" / "ocsp.pem"), "--signer-key", str(folder / "pki" / "ocsp.key"),
                ]  # fmt: skip
                first[name].append(timed(command))
                again[name].append(timed(command))
                if args.postgres:
                    _drop_schema(args.postgres, schema)
                else:
                    Path(db).unlink()
                line.append(f"{name} import {first[name][-1]:.2f} s, again {again[name][-1]:.2f} s")
            print("; ".join(line))
        base = statistics.median(baseline)
        median = statistics.median(first["certstatus"])
        print(f"certstatus import of {args.entries} entries: median {median:.2f} s (target < 15 s)")
        print(f"baseline openssl crl -noout: median {base:.2f} s; ratio {median / base:.1f}x")
        print(f"certstatus import again (same file): median {statistics.median(again['certstatus']):.2f} s")
        if args.peer:
            peer_first, peer_again = statistics.median(first["peer"]), statistics.median(again["peer"])
            print(f"peer import: median {peer_first:.2f} s; again: median {peer_again:.2f} s; "
                  f"again, certstatus / peer: {statistics.median(again['certstatus']) / peer_again:.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
