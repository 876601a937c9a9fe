"""How fast the status page answers with many CAs: a real ``certstatus serve`` over a generated config.

    .venv/bin/python bench/status_page.py [--cas 10000] [--rounds 5]

Makes ``--cas`` CAs (ECDSA P-256, each its own signer, one empty CRL each: 1 % of them past
nextUpdate, 1 % with a CRL due within the hour), serves them with one worker and the admin
listener, and asks ``GET /`` with the admin token. Prints, one figure per line (medians of
``--rounds``, wall milliseconds on the client, each request a new connection):

* ``first request``: the first request after start, which waits for the facts of every CA to
  be gathered (the store read once per CA, readiness, signers, the traffic ring);
* ``gathering``: how long a gathering takes (the page says so; later ones run in the
  background while requests render the facts at hand, spaced by 4 times that);
* ``first screen``: the CAs that are not green (filter, page, render);
* ``all page 100``: ``?state=all&page=100`` (green CAs, 50 per page);
* ``filter``: ``?state=all&q=ca0999`` (a name filter over every CA);

and the first screen's size. The figures are the admin listener's answer times, never
asserted anywhere (tests assert what the page says, not how fast).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import PYTHON, free_port, wait_port  # noqa: E402
from certstatus.clock import UTC  # noqa: E402
from certstatus.demo_pki import issue_cert, sign_crl  # noqa: E402

TOKEN = "bench-admin-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
GATHERED = re.compile(r'<span id="gathered">([0-9.]+)</span>')
AS_OF = re.compile(r"as of ([0-9: -]+)Z")


def make_cas(folder: Path, count: int) -> str:
    """Write ``count`` CAs (certificate, key, CRL) under ``folder``; return their TOML tables."""
    now = dt.datetime.now(UTC).replace(microsecond=0)
    tables = []
    for i in range(count):
        name = f"ca{i:05d}"
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_cert(None, key, key.public_key(), common_name=f"bench CA {i}", not_before=now - dt.timedelta(days=1),
                          not_after=now + dt.timedelta(days=3650), ca=True)
        next_update = now + dt.timedelta(days=7)
        if i % 100 == 1:
            next_update = now - dt.timedelta(days=1)  # stale: red
        elif i % 100 == 2:
            next_update = now + dt.timedelta(minutes=30)  # due soon: amber
        crl = sign_crl(cert, key, [], crl_number=1, this_update=now - dt.timedelta(days=2), next_update=next_update)
        (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = folder / f"{name}.key"
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))  # fmt: skip
        key_path.chmod(0o600)
        (folder / f"{name}.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
        tables.append(f'\n[ca.{name}]\ncertificate = "{folder}/{name}.pem"\nsigner_certificate = "{folder}/{name}.pem"\n'
                      f'signer_key = "{key_path}"\ncrl = ["{folder}/{name}.crl"]\n')  # fmt: skip
    return "".join(tables)


def timed_get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    answer = httpx.get(url, headers=AUTH, timeout=120)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"GET {url}: HTTP {answer.status_code}: {answer.text[:500]}")
    return elapsed, len(answer.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cas", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-status-page-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        tables = make_cas(folder, args.cas)
        print(f"made {args.cas} CAs in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        port, admin = free_port(), free_port()
        (folder / "admin.token").write_text(TOKEN)
        (folder / "admin.token").chmod(0o600)
        config = folder / "certstatus.toml"
        config.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\nworkers = 1\ndatabase = "{folder}/store.sqlite3"\n'
                          f'[admin]\nlisten = "127.0.0.1:{admin}"\ntoken_file = "{folder}/admin.token"\n' + tables)  # fmt: skip
        log = open(folder / "serve.log", "wb")
        started = time.perf_counter()
        process = subprocess.Popen([PYTHON, "-m", "certstatus", "serve", "--config", str(config)], stdout=log, stderr=log)
        try:
            try:
                wait_port(admin, process, timeout=1800)
            except RuntimeError as exc:
                raise SystemExit(f"{exc}:\n{(folder / 'serve.log').read_text()[-3000:]}") from None
            print(f"serve listened after {time.perf_counter() - started:.1f} s", file=sys.stderr)
            url = f"http://127.0.0.1:{admin}/"
            first = timed_get(url)[0]
            gathered, screen, paged, filtered = [], [], [], []
            size = 0
            for _ in range(args.rounds):
                as_of = AS_OF.search(httpx.get(url, headers=AUTH, timeout=120).text).group(1)
                while True:  # a request after the facts' lifetime starts a gathering in the background
                    time.sleep(2)
                    page = httpx.get(url, headers=AUTH, timeout=120).text
                    if AS_OF.search(page).group(1) != as_of:
                        break
                gathered.append(float(GATHERED.search(page).group(1)))
                ms, size = timed_get(url)  # no gathering runs now: the next one waits 4 times as long as this one took
                screen.append(ms)
                paged.append(timed_get(url + "?state=all&page=100")[0])
                filtered.append(timed_get(url + "?state=all&q=ca0999")[0])
        finally:
            process.terminate()
            process.wait(60)
            log.close()
    print(f"status page, {args.cas} CAs: first request (waits for a gathering) {first:.0f} ms")
    print(f"status page, {args.cas} CAs: gathering every CA {statistics.median(gathered) * 1000:.0f} ms")
    print(f"status page, {args.cas} CAs: first screen {statistics.median(screen):.1f} ms ({size / 1024:.0f} KiB)")
    print(f"status page, {args.cas} CAs: all, page 100 {statistics.median(paged):.1f} ms")
    print(f"status page, {args.cas} CAs: name filter {statistics.median(filtered):.1f} ms")


if __name__ == "__main__":
    main()
