#!/usr/bin/env python3
"""Import, generate and serve one CA with many certificates; generator speed beside raw signing.

    .venv/bin/python bench/generate.py                      # 1 000 000 certificates, ECDSA P-256 responder
    .venv/bin/python bench/generate.py --key rsa            # RSA-2048 responder
    .venv/bin/python bench/generate.py --key ml-dsa-65 --serials 20000
                                                            # ML-DSA-65 responder of the ECDSA CA (44 and 87 too)
    .venv/bin/python bench/generate.py --serials 100000     # smaller
    .venv/bin/python bench/generate.py --serials 100000 --database postgresql://postgres@127.0.0.1:5432/test
                                                            # into PostgreSQL (a schema of its own, dropped after)

Steps, each timed in this run:

1. a demo PKI and a synthesized OpenSSL ``index.txt`` of N certificates
   (1 % revoked), imported with ``certstatus import`` (the real command);
2. raw signing: every core signs a real ResponseData with the responder key
   for a few seconds (the ceiling: ops/s × cores), measured before and after
   generation, averaged;
3. the generator (``certstatus generate --no-import``, the real command, one
   process per core): 2 responses per certificate (SHA-1 and SHA-256
   CertIDs), its responses/s and the ratio to the raw ceiling;
4. the same response built and signed one process by the asn1crypto
   reference encoder and by the byte templates (why the generator has own code);
5. serving: ``certstatus serve`` over the generated store (it serves at once;
   its background generator finds nothing left to sign), 1 000 random serials asked over
   HTTP and compared byte for byte with the store; worker RSS from /proc.

Load only ever goes to 127.0.0.1. The machine may be shared: run it three
times and quote medians.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import multiprocessing
import os
import random
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from common import postgres_schema

from certstatus.demo_pki import ML_DSA_KEY_TYPES, make_demo_pki
from certstatus.protocol import fast_response as fast
from certstatus.protocol.certid import issuer_hashes
from certstatus.signing.keys import load_certificates, load_private_key
from certstatus.signing.signer import ResponseSigner
from certstatus.store.factory import open_store
from cryptography.x509.ocsp import OCSPCertStatus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: the tests' reference encoders
from tests import ocsp_reference  # noqa: E402
from tests.ocsp_reference import SingleAnswer, encode_response_data  # noqa: E402

CERTSTATUS = str(Path(sys.executable).with_name("certstatus"))


def synthesize_index(path: Path, serials: int, seed: int = 1) -> list[int]:
    """Write an index.txt as `openssl ca` does: V lines, every 100th R (keyCompromise); return the serials."""
    rng = random.Random(seed)
    numbers = []
    with open(path, "w") as out:
        for i in range(serials):
            serial = rng.getrandbits(127) | 1 << 127
            numbers.append(serial)
            if i % 100 == 0:
                out.write(f"R\t280101000000Z\t250601000000Z,keyCompromise\t{serial:032X}\tunknown\t/CN=leaf{i}\n")
            else:
                out.write(f"V\t280101000000Z\t\t{serial:032X}\tunknown\t/CN=leaf{i}\n")
    return numbers


def _signer(pki_folder: Path) -> ResponseSigner:
    ca = load_certificates(pki_folder / "ca.pem")[0]
    key = load_private_key(pki_folder / "ocsp.key", None).key
    return ResponseSigner(key, load_certificates(pki_folder / "ocsp.pem")[0], ca)


def _sample_response_data(signer: ResponseSigner) -> bytes:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    prefix = fast.cert_id_prefix("sha256", *issuer_hashes(signer.ca_certificate, "sha256"))
    return ocsp_reference.fast_encode_response_data(
        signer.responder_id.dump(), fast.generalized_time(now), fast.encode_cert_id(prefix, 2**127 + 12345),
        fast.encode_cert_status(OCSPCertStatus.GOOD), fast.generalized_time(now),
        fast.generalized_time(now + dt.timedelta(days=1)),
    )  # fmt: skip


def _raw_sign_worker(pki_folder: str, seconds: float) -> tuple[int, float, float]:
    signer = _signer(Path(pki_folder))
    data = _sample_response_data(signer)
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            signer.signature(data)
        count += 50
    return count, time.perf_counter() - start, time.process_time() - cpu


def raw_signing_rate(pki_folder: Path, processes: int, seconds: float = 4.0) -> tuple[float, float]:
    """(signatures/s summed over ``processes`` processes signing at once, signatures per CPU-second)."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(_raw_sign_worker, [(str(pki_folder), seconds)] * processes)
    return sum(n / wall for n, wall, _ in results), sum(n for n, _, _ in results) / sum(cpu for _, _, cpu in results)


def encoder_comparison(pki_folder: Path, rounds: int) -> tuple[float, float]:
    """µs per response (encode + sign + wrap), asn1crypto reference vs byte templates, one process."""
    signer = _signer(pki_folder)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    later = now + dt.timedelta(days=1)
    prefix = fast.cert_id_prefix("sha256", *issuer_hashes(signer.ca_certificate, "sha256"))
    wrapper = fast.ResponseWrapper(signer.signature_algorithm_der, signer.certificates_der)
    responder_der, now_der, later_der = signer.responder_id.dump(), fast.generalized_time(now), fast.generalized_time(later)
    start = time.perf_counter()
    for i in range(rounds):
        cert_id = fast.encode_cert_id(prefix, 2**127 + i)
        data = encode_response_data(
            responder_id=signer.responder_id, produced_at=now, answers=[SingleAnswer(cert_id, OCSPCertStatus.GOOD, now, later)]
        )
        signer.sign(data)
    library = (time.perf_counter() - start) / rounds * 1e6
    start = time.perf_counter()
    for i in range(rounds):
        data = ocsp_reference.fast_encode_response_data(
            responder_der, now_der, fast.encode_cert_id(prefix, 2**127 + i), b"\x80\x00", now_der, later_der
        )
        wrapper.wrap(data, signer.signature(data))
    template = (time.perf_counter() - start) / rounds * 1e6
    return library, template


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _process_tree(pid: int) -> list[int]:
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [pid] + [grandchild for child in children for grandchild in _process_tree(child)]


class _CpuSplit:
    """CPU seconds of a command's own process and of its child processes, polled from /proc until :meth:`stop`;
    with the seconds its children spent runnable but waiting for a CPU (``/proc/PID/schedstat``: other load)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.last: dict[int, float] = {}
        self.waited: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._done.wait(0.1):
            try:
                pids = _process_tree(self.pid)
            except OSError:
                continue
            for pid in pids:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.last[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
                try:
                    self.waited[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
                except (OSError, IndexError, ValueError):
                    pass

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def waited_for_cpu(self) -> float:
        """Seconds the child processes were runnable but not running (summed), up to 0.1 s short of the end."""
        return sum(wait for pid, wait in self.waited.items() if pid != self.pid)

    def seconds(self) -> tuple[float, float]:
        """(the command's process, its children): the last values seen, up to 0.1 s short of the end."""
        return self.last.get(self.pid, 0.0), sum(cpu for pid, cpu in self.last.items() if pid != self.pid)


def serve_check(folder: Path, config: Path, database: Path | str, serials: list[int], asks: int) -> None:
    """Serve the generated store, ask ``asks`` random serials over HTTP GET, compare with the store."""
    from certstatus.protocol.certid import issuer_hashes as hashes_of
    import base64

    port = _free_port()
    text = re.sub(r'listen = "[^"]*"', f'listen = "127.0.0.1:{port}"', config.read_text())
    config.write_text(text)
    log = open(folder / "serve.log", "wb")
    started = time.perf_counter()
    server = subprocess.Popen([CERTSTATUS, "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > 600:
                    raise RuntimeError(f"certstatus serve did not start; see {folder / 'serve.log'}") from None
                time.sleep(0.2)
        ready = time.perf_counter() - started
        signer = _signer(folder / "pki")
        prefix = fast.cert_id_prefix("sha1", *hashes_of(signer.ca_certificate, "sha1"))
        rng = random.Random(7)
        # The complete DER, certificates spliced back as the request path reads it (SQLite or PostgreSQL).
        store = open_store(database)
        issuer_id = store.register_issuer("big", signer.ca_certificate.public_bytes(serialization.Encoding.DER))
        same = 0
        start = time.perf_counter()
        for serial in rng.sample(serials, asks):
            cert_id = fast.encode_cert_id(prefix, serial)
            request = fast.tlv(0x30, fast.tlv(0x30, fast.tlv(0x30, fast.tlv(0x30, cert_id))))
            url = f"http://127.0.0.1:{port}/" + base64.b64encode(request).decode()
            body = urllib.request.urlopen(url, timeout=10).read()
            stored = store.precomputed(issuer_id, serial, "sha1")
            same += stored is not None and stored.der == body
        elapsed = time.perf_counter() - start
        store.close()
        print(f"serve: listening {ready:.1f} s after start (store already fresh); {asks} random serials over GET "
              f"(one at a time, {asks / elapsed:.0f} req/s sequential, not a load test): {same}/{asks} byte-identical to the store")
        for pid in _process_tree(server.pid):
            now_kib, peak_kib = _rss_kib(pid)
            role = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:90]
            print(f"serve: pid {pid} RSS {now_kib / 1024:.0f} MiB (peak {peak_kib / 1024:.0f} MiB): {role}")
    finally:
        server.terminate()
        server.wait(60)
        log.close()


@contextlib.contextmanager
def _store(uri: str | None, folder: Path):
    """The store to generate into: ``uri`` with a fresh schema of its own (dropped afterwards), or a new SQLite file."""
    folder.mkdir(parents=True, exist_ok=True)
    if uri is None:
        database = folder / "store.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        yield database
        return
    with postgres_schema(uri, "bench_generate") as schema_uri:
        yield schema_uri


def _store_bytes(database: Path | str) -> int:
    """The store's size on disk: the SQLite file and its WAL, or every relation of the PostgreSQL schema (indexes, TOAST)."""
    if isinstance(database, Path):
        return sum(Path(f"{database}{s}").stat().st_size for s in ("", "-wal") if Path(f"{database}{s}").exists())
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        return conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        ).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serials", type=int, default=1_000_000)
    parser.add_argument("--key", choices=["ec", "rsa", *ML_DSA_KEY_TYPES], default="ec",
                        help="responder key: ECDSA P-256, RSA-2048 or ML-DSA (of an ECDSA P-256 CA)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--no-serve", action="store_true")
    parser.add_argument("--database", metavar="URI",
                        help="a postgresql:// database to generate into (a schema of its own is created there and "
                             "dropped at the end; default: an SQLite file in the work folder)")  # fmt: skip
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="certstatus-bench-") as tmp, _store(args.database, Path(args.dir or tmp)) as database:
        folder = args.dir or Path(tmp)
        post_quantum = args.key in ML_DSA_KEY_TYPES
        make_demo_pki(folder / "pki", key_type="ec" if post_quantum else args.key, responder_key_type=args.key if post_quantum else None)
        index = folder / "index.txt"
        started = time.perf_counter()
        serials = synthesize_index(index, args.serials)
        print(f"synthesized index.txt: {args.serials:,} certificates in {time.perf_counter() - started:.1f} s")
        if isinstance(database, str):
            subprocess.run([CERTSTATUS, "db", "upgrade", "--db", database], check=True, capture_output=True)
        config = folder / "certstatus.toml"
        config.write_text(
            f'[server]\nlisten = "127.0.0.1:8080"\nworkers = 1\ndatabase = "{database}"\n\n'
            f'[ca.big]\ncertificate = "pki/ca.pem"\nindex = "{index}"\n'
            'signer_certificate = "pki/ocsp.pem"\nsigner_key = "pki/ocsp.key"\nmode = "precomputed"\n'
        )

        started = time.perf_counter()
        subprocess.run([CERTSTATUS, "import", "--config", str(config)], check=True, capture_output=True)
        imported = time.perf_counter() - started
        print(f"import: {args.serials:,} certificates in {imported:.1f} s ({args.serials / imported:,.0f}/s), "
              "certstatus import (parse + store, one transaction)")

        key_name = {"ec": "ECDSA P-256", "rsa": "RSA-2048"}.get(args.key, args.key.upper())
        raw_before, raw_cpu_before = raw_signing_rate(folder / "pki", args.processes)
        started = time.perf_counter()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        command = subprocess.Popen(
            [CERTSTATUS, "generate", "--config", str(config), "--no-import", "--processes", str(args.processes)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        split = _CpuSplit(command.pid)
        stdout, stderr = command.communicate()
        split.stop()
        if command.returncode:
            sys.exit(f"certstatus generate failed ({command.returncode}):\n{stderr}")
        done = subprocess.CompletedProcess(command.args, command.returncode, stdout, stderr)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter() - started
        raw_after, raw_cpu_after = raw_signing_rate(folder / "pki", args.processes)
        raw, raw_cpu = (raw_before + raw_after) / 2, (raw_cpu_before + raw_cpu_after) / 2
        # The generator's CPU: the command and its worker processes (waited for, so counted in RUSAGE_CHILDREN).
        cpu = sum(getattr(children_after, f) - getattr(children_before, f) for f in ("ru_utime", "ru_stime"))
        match = re.search(r"([\d,]+) responses in ([\d.]+) s: ([\d,]+) responses/s", done.stderr)
        responses, seconds, rate = int(match[1].replace(",", "")), float(match[2]), float(match[3].replace(",", ""))
        print(f"generate: {responses:,} responses in {seconds:.1f} s ({wall:.1f} s with start-up): "
              f"{rate:,.0f} responses/s, {args.processes} processes, {key_name}; "
              f"{cpu:.1f} CPU-s = {responses / cpu:,.0f} responses per CPU-second")
        parent, workers = split.seconds()
        print(f"generate: CPU of the command's own process {parent:.1f} s = {parent / responses * 1e6:.2f} us per response "
              f"(start-up included), of its signing processes {workers:.1f} s = {workers / responses * 1e6:.2f} us "
              "per response (from /proc, sampled every 0.1 s)")
        print(f"generate: its processes waited {split.waited_for_cpu():.1f} s (summed) runnable for a CPU other load held "
              f"(/proc/PID/schedstat); {args.processes} x {wall:.1f} s of wall clock")
        print(f"raw signing: {raw:,.0f} signatures/s on {args.processes} processes "
              f"(before {raw_before:,.0f}, after {raw_after:,.0f}); {raw_cpu:,.0f} signatures per CPU-second")
        print(f"generator / raw signing × cores, wall clock: {rate / raw:.0%} (target >= 80%; moves with other load)")
        print(f"generator / raw signing, CPU time:           {responses / cpu / raw_cpu:.0%} (what the code costs; "
              "other load barely moves it)")
        library, template = encoder_comparison(folder / "pki", 2000 if args.key == "ec" else 300)
        print(f"one response, one process: asn1crypto encoder + sign {library:.0f} us, byte templates + sign "
              f"{template:.0f} us ({library / template:.1f}x)")
        size = _store_bytes(database)
        print(f"store: {size / 2**20:,.0f} MiB for {args.serials:,} certificates ({size / responses:.0f} bytes per response)")
        if not args.no_serve:
            serve_check(folder, config, database, serials, min(1000, args.serials))


if __name__ == "__main__":
    main()
