"""Coverage-guided fuzzing (atheris / libFuzzer) of every parser of outside bytes.

Targets (tests/fuzz_world.py): OCSP request DER through the HTTP edge (POST),
GET paths, CRLs (load_crl), index.txt, issued lists, admin push batches (JSON),
configuration TOML, and HTTP/1.1 framing: raw client bytes through the
HTTP edge (server/connection.py, httptools) on one connection, cut into
chunks by the variant byte, checked by the rules of tests/fuzz_framing.py
(well-formed responses in order, no 5xx but tryLater, close after refusals). The first byte of an input picks the target, the second a
variant (URL prefix, method, admin endpoint), the rest is the data. The seed
corpus is tests/vectors/fuzz/<target>/ (real requests by openssl and
cryptography, real CRLs, ...) plus the same kinds made fresh for this run's
demo PKI, so requests reach the signer.

A finding is any exception a parser does not document, an HTTP 5xx other than
503 tryLater, an internalError answer, or an unreadable OCSP response. Findings
are written to --findings (one file per input, with the traceback beside it)
and fuzzing goes on; the exit status is 1 when there was any finding or when an
input took longer than --max-ms (default 50 ms).

    .venv/bin/python bench/fuzz.py --runs 1000000          # 10^6 inputs (about 15-30 min on 2 cores)
    .venv/bin/python bench/fuzz.py --seconds 20            # what CI runs (tests/unit/test_fuzz_harness.py)
    .venv/bin/python bench/fuzz.py --target request --runs 100000
    .venv/bin/python bench/fuzz.py --target framing --runs 1000000  # HTTP framing alone

Prints inputs run, inputs/s, and per target the count, median, p99 and max
latency per input (ms), then the findings. The 5 slowest inputs of each target
are run again 5 times at the end and the best time kept ("max re-timed"): an
input that is slow by itself stays slow, a stall of the shared machine (other
processes, swapping) does not; the < --max-ms check applies to that figure.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from array import array
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["certstatus", "asn1crypto"]):
    import certstatus.admin.api  # noqa: F401
    import certstatus.config  # noqa: F401
    import certstatus.protocol.request  # noqa: F401
    import certstatus.server.http  # noqa: F401
    import certstatus.server.connection  # noqa: F401
    import certstatus.sources.crl  # noqa: F401
    import certstatus.sources.index_txt  # noqa: F401
    import certstatus.sources.issued  # noqa: F401
    import certstatus.sources.push  # noqa: F401

from tests.fuzz_world import TARGETS, FuzzWorld  # noqa: E402

CORPUS = ROOT / "tests" / "vectors" / "fuzz"


class Harness:
    """Runs inputs, times each one, keeps findings; reports when ``runs`` or ``seconds`` is reached."""

    def __init__(self, world: FuzzWorld, targets: tuple[str, ...], runs: int | None, seconds: float | None, findings: Path, max_ms: float) -> None:
        self.world = world
        self.targets = targets
        self.runs = runs
        self.deadline = time.monotonic() + seconds if seconds else None
        self.findings_dir = findings
        self.max_ms = max_ms
        self.latencies = {t: array("d") for t in targets}
        self.slowest: dict[str, list[tuple[float, bytes]]] = {t: [] for t in targets}  # min-heaps of the 5 slowest
        self.findings: dict[str, tuple[str, Path]] = {}
        self.count = 0
        self.started = time.monotonic()

    def one_input(self, data: bytes) -> None:
        if len(data) < 2:
            return
        target = self.targets[data[0] % len(self.targets)]
        begin = time.perf_counter()
        try:
            self.world.feed(target, data[2:], data[1])
        except Exception as exc:  # noqa: BLE001 - every undocumented exception is a finding
            self._finding(target, data, exc)
        took = (time.perf_counter() - begin) * 1000
        self.latencies[target].append(took)
        slowest = self.slowest[target]
        if len(slowest) < 5:
            heapq.heappush(slowest, (took, data))
        elif took > slowest[0][0]:
            heapq.heapreplace(slowest, (took, data))
        self.count += 1
        if (self.runs is not None and self.count >= self.runs) or (self.deadline is not None and self.count % 64 == 0 and time.monotonic() >= self.deadline):
            self.report()

    def _finding(self, target: str, data: bytes, exc: Exception) -> None:
        key = f"{target}: {type(exc).__name__}: {str(exc)[:160]}"
        if key in self.findings:
            return
        self.findings_dir.mkdir(parents=True, exist_ok=True)
        path = self.findings_dir / f"{target}-{hashlib.sha256(data).hexdigest()[:16]}"
        path.write_bytes(data[2:])
        path.with_suffix(".txt").write_text(f"target {target}, variant {data[1]}\n" + "".join(traceback.format_exception(exc)))
        self.findings[key] = (target, path)
        print(f"FINDING {key} -> {path}", file=sys.stderr, flush=True)

    def _retime(self, target: str, data: bytes) -> float:
        """The best of 5 runs of one input (ms): a slow input stays slow, a stall of the machine does not."""
        best = float("inf")
        for _ in range(5):
            begin = time.perf_counter()
            try:
                self.world.feed(target, data[2:], data[1])
            except Exception:  # noqa: BLE001 - already reported as a finding
                pass
            best = min(best, (time.perf_counter() - begin) * 1000)
        return best

    def report(self) -> None:
        elapsed = time.monotonic() - self.started
        slow = []
        print(f"\ninputs run: {self.count} in {elapsed:.1f} s = {self.count / elapsed:.0f} inputs/s (atheris-instrumented)")
        print(f"{'target':<8} {'inputs':>9} {'median ms':>10} {'p99 ms':>8} {'max ms':>8} {'max re-timed ms':>16}")
        for target, values in self.latencies.items():
            if not values:
                continue
            ordered = sorted(values)
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            retimed, slowest = max((self._retime(target, data), data) for _took, data in self.slowest[target])
            print(f"{target:<8} {len(ordered):>9} {statistics.median(ordered):>10.3f} {p99:>8.3f} {ordered[-1]:>8.3f} {retimed:>16.3f}")
            if retimed >= self.max_ms:
                self.findings_dir.mkdir(parents=True, exist_ok=True)
                path = self.findings_dir / f"slow-{target}-{hashlib.sha256(slowest).hexdigest()[:16]}"
                path.write_bytes(slowest[2:])
                slow.append(f"{target} {retimed:.1f} ms (input: {path}, variant {slowest[1]})")
        print(f"findings: {len(self.findings)}")
        for key, (_target, path) in self.findings.items():
            print(f"  {key}\n    input: {path}")
        print(f"inputs over {self.max_ms:g} ms when re-timed: {', '.join(slow) if slow else 'none'}")
        sys.stdout.flush()
        self.world.close()
        shutil.rmtree(self.world.folder.parent, ignore_errors=True)
        os._exit(1 if self.findings or slow else 0)


def seed_corpus(world: FuzzWorld, targets: tuple[str, ...], folder: Path) -> Path:
    """The committed corpus plus this run's fresh seeds, each prefixed with its target byte."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, target in enumerate(targets):
        seeds = list(world.seeds[target])
        if (CORPUS / target).is_dir():
            seeds += [p.read_bytes() for p in sorted((CORPUS / target).iterdir())]
        for seed in seeds:
            data = bytes([index, 0]) + seed
            (folder / hashlib.sha256(data).hexdigest()[:16]).write_bytes(data)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, help="stop after this many inputs")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--target", choices=TARGETS, action="append", help="fuzz only these targets (repeatable)")
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"), help="where failing inputs are written")
    parser.add_argument("--max-ms", type=float, default=50.0, help="an input slower than this fails the run")
    parser.add_argument("--seed", type=int, default=0, help="libFuzzer -seed (0: random)")
    parser.add_argument("--write-corpus", action="store_true", help="(re)write the seed corpus in tests/vectors/fuzz and exit")
    args, libfuzzer_args = parser.parse_known_args()
    if args.runs is None and args.seconds is None and not args.write_corpus:
        parser.error("give --runs or --seconds")
    targets = tuple(args.target or TARGETS)
    folder = Path(tempfile.mkdtemp(prefix="certstatus-fuzz-"))
    try:
        world = FuzzWorld.build(folder / "world")
        if args.write_corpus:
            for target in targets:
                (CORPUS / target).mkdir(parents=True, exist_ok=True)
                for number, seed in enumerate(world.seeds[target]):
                    (CORPUS / target / f"seed-{number}").write_bytes(seed)
            world.close()
            return
        corpus = seed_corpus(world, targets, folder / "corpus")
        harness = Harness(world, targets, args.runs, args.seconds, args.findings.resolve(), args.max_ms)
        argv = [sys.argv[0], str(corpus), "-max_len=16384", f"-seed={args.seed}", "-print_final_stats=0", *libfuzzer_args]
        atheris.Setup(argv, harness.one_input)
        atheris.Fuzz()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
