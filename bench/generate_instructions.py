#!/usr/bin/env python3
"""Where a pre-signed response's instructions go: the generator beside the bare signature, counted by callgrind.

    .venv/bin/python bench/generate_instructions.py                 # 5 000 certificates, ECDSA P-256, ~2 minutes
    .venv/bin/python bench/generate_instructions.py --serials 2000 --key rsa

Wall and CPU time move with whatever else a shared machine runs; instruction
counts do not. This imports N certificates into a fresh store, then runs the
same Python process three times under ``valgrind --tool=callgrind``: start-up
only (load settings, open the store, load the signer), start-up + one
generation pass in this process (``Generator(processes=0)``: the pending
queries, status lookups, byte templates, signatures and SQLite writes of 2 N
responses), and start-up + 2 N bare signatures of one ResponseData with the
same key (the raw ceiling). Subtracting start-up gives instructions per
response and per signature; the generator's figure is split by where the
instructions run: the signing library (cryptography/OpenSSL), SQLite, the
Python interpreter (our code and the objects it builds), the rest (libc, the
kernel interface). Instructions are not time (a cache miss costs more than
an add), but they show what each change removes, repeatably. The parent
process of a multi-process pass (cutting the index into ranges, well under
1 µs per response) is included here since everything runs in one process.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import CERTSTATUS, synthesize_index  # noqa: E402

from certstatus.demo_pki import make_demo_pki  # noqa: E402


def child(mode: str, folder: Path, count: int) -> None:
    """One measured process: ``setup``, ``generate`` or ``raw`` (see the module docstring)."""
    from generate import _sample_response_data, _signer

    from certstatus.config import load_config
    from certstatus.generator.run import Generator
    from certstatus.store.factory import open_configured_store

    settings = load_config(folder / "certstatus.toml")
    store = open_configured_store(settings)
    generator = Generator(settings, store, processes=0)
    generator._pool()  # loads the signers in this process
    signer = _signer(folder / "pki")
    data = _sample_response_data(signer)
    if mode == "generate":
        summary = generator.run_pass()
        if summary.signed != count:
            sys.exit(f"expected {count} responses, signed {summary.signed}")
    elif mode == "raw":
        for _ in range(count):
            signer.signature(data)
    generator.close()
    store.close()


def callgrind(mode: str, folder: Path, count: int) -> tuple[int, dict[str, int]]:
    """Run :func:`child` under callgrind on a fresh copy of the store: (total instructions, by object file)."""
    store = folder / "store.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    store.write_bytes((folder / "imported.sqlite3").read_bytes())
    out = folder / f"callgrind.{mode}"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
         "--child", mode, "--dir", str(folder), "--serials", str(count)],
        check=True, capture_output=True,
    )  # fmt: skip
    report = subprocess.run(["callgrind_annotate", "--threshold=100", str(out)], capture_output=True, text=True).stdout
    total = int(re.search(r"([\d,]+) \S* *PROGRAM TOTALS", report)[1].replace(",", ""))
    by_object: dict[str, int] = defaultdict(int)
    for line in report.splitlines():
        match = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S+ \[(.+)\]$", line)
        if match:
            by_object[_area(match[2])] += int(match[1].replace(",", ""))
    return total, by_object


def _area(path: str) -> str:
    name = Path(path).name
    if "_rust" in name or "libcrypto" in name or "libssl" in name:
        return "signing library"
    if "sqlite" in name:
        return "SQLite"
    if "python" in name:
        return "Python interpreter"
    return "other (libc, loader)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serials", type=int, default=5000)
    parser.add_argument("--key", choices=["ec", "rsa"], default="ec")
    parser.add_argument("--child", choices=["setup", "generate", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir, args.serials)
        return
    if subprocess.run(["which", "valgrind"], capture_output=True).returncode != 0:
        sys.exit("valgrind is missing: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="certstatus-instructions-") as tmp:
        folder = Path(tmp)
        make_demo_pki(folder / "pki", key_type=args.key)
        synthesize_index(folder / "index.txt", args.serials)
        database = folder / "imported.sqlite3"
        (folder / "certstatus.toml").write_text(
            f'[server]\nworkers = 1\ndatabase = "{folder / "store.sqlite3"}"\n\n'
            f'[ca.big]\ncertificate = "pki/ca.pem"\nindex = "{folder / "index.txt"}"\n'
            'signer_certificate = "pki/ocsp.pem"\nsigner_key = "pki/ocsp.key"\nmode = "precomputed"\n'
        )
        subprocess.run([CERTSTATUS, "import", "--config", str(folder / "certstatus.toml")], check=True, capture_output=True)
        (folder / "store.sqlite3").rename(database)
        responses = 2 * args.serials
        print(f"callgrind, one process, {args.serials:,} certificates = {responses:,} responses, "
              f"{'ECDSA P-256' if args.key == 'ec' else 'RSA-2048'} (instructions beyond start-up)")
        setup, setup_by = callgrind("setup", folder, responses)
        generated, generated_by = callgrind("generate", folder, responses)
        raw, raw_by = callgrind("raw", folder, responses)
    per_response = (generated - setup) / responses
    per_signature = (raw - setup) / responses
    print(f"generator:        {per_response / 1000:8.1f} k instructions per response")
    print(f"bare signature:   {per_signature / 1000:8.1f} k instructions per signature")
    print(f"generator / raw:  {per_signature / per_response:.0%} (instructions; the target is >= 80 % in responses/s)")
    print("where the generator's instructions go, per response (beyond start-up; raw signing beside it):")
    for area in ("signing library", "Python interpreter", "SQLite", "other (libc, loader)"):
        mine = (generated_by.get(area, 0) - setup_by.get(area, 0)) / responses
        bare = (raw_by.get(area, 0) - setup_by.get(area, 0)) / responses
        print(f"  {area:22} {mine / 1000:8.1f} k   (bare signature: {bare / 1000:6.1f} k)")


if __name__ == "__main__":
    main()
