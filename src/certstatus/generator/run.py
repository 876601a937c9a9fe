"""Generation passes: sign every known status of the precomputed/cached CAs, on every core.

A pass walks each CA's work in the order of
:data:`~certstatus.store.base.WORK_KINDS` — serials whose status changed,
then serials never signed, then responses due for renewal
(:func:`certstatus.response_refresh.renew_at`) — in batches read from the store, and
hands the batches to a pool of worker processes
(:mod:`certstatus.generator.signing`), at most two per process in flight.
Workers write their own batches, so the pass needs no state of its own: a
pass killed half-way leaves every finished batch in the store as fresh
responses, and the next pass starts with what is still missing.

A kind is finished (every batch stored) before the next one is read, so a
serial is signed once per pass.

A pass first drops the stored responses that carry a responder certificate
the CA's own data now revokes (:meth:`Generator.drop_revoked_signers`): they
become missing, and the pass signs them again with the signer that took over
(the signing processes re-check their signers' revocation whenever the
issuer's change counter moved).

Processes sharing one store (a fleet of ``serve`` processes and ``certstatus
generate`` runs over one PostgreSQL database) sign one CA at a time: a pass
signs only the CAs whose generator claim this process holds
(:meth:`GeneratorStore.claim_generator`) and logs which process generates the
others.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from certstatus.clock import Clock, SystemClock
from certstatus.config import CaSettings, Settings
from certstatus.errors import CertstatusError, SignerUnavailable
from certstatus.generator import signing
from certstatus.observability import configure_logging, log_level
from certstatus.signing.algorithms import is_post_quantum_key
from certstatus.signing.keys import load_certificates
from certstatus.signing.loader import scan_signers_dir
from certstatus.signing.settings import SignerSettings, configured_signers
from certstatus.store.base import WORK_KINDS, GeneratorStore
from certstatus.store.sqlite_precomputed import PRECOMPUTED_HASH_ALGORITHMS

DEFAULT_BATCH_SIZE = 2000
#: A CA whose signers are all ML-DSA gets batches this many times smaller: an ML-DSA signature costs
#: 10 to 40 ECDSA ones, and a batch should stay a fraction of a second of signing, so that the last
#: batches of a pass keep every process busy (a 2 000-serial ML-DSA-65 batch is 1 to 3 s of one core).
POST_QUANTUM_BATCH_DIVISOR = 20

log = logging.getLogger("certstatus.generator")


class Progress(Protocol):
    """Receives the progress of a pass, in serials (each one is a response per hash algorithm)."""

    def start(self, total: int) -> None: ...

    def advance(self, serials: int) -> None: ...


@dataclass
class CaSummary:
    """What a pass did for one CA: responses ``signed``, serials ``removed`` (no longer known).

    ``generated_by`` names the other process that generates the CA (its
    claim on the shared store), when this pass skipped it; None otherwise.
    ``unavailable`` says why the pass stopped signing for the CA (no signer
    valid now: expired, not yet valid, revoked, or its token unreachable);
    None when it signed all that was pending. The other CAs are signed anyway.
    """

    name: str
    signed: int = 0
    removed: int = 0
    generated_by: str | None = None
    unavailable: str | None = None


@dataclass
class GenerationSummary:
    """The outcome of one pass: per CA counts, wall-clock ``seconds``, ``processes`` used (0: inline)."""

    cas: dict[str, CaSummary] = field(default_factory=dict)
    seconds: float = 0.0
    processes: int = 0

    @property
    def signed(self) -> int:
        return sum(ca.signed for ca in self.cas.values())

    @property
    def removed(self) -> int:
        return sum(ca.removed for ca in self.cas.values())

    @property
    def responses_per_second(self) -> float:
        return self.signed / self.seconds if self.seconds > 0 else 0.0


def generated_cas(settings: Settings) -> tuple[CaSettings, ...]:
    """The CAs a generator signs for: those in precomputed or cached mode."""
    return tuple(ca for ca in settings.cas if ca.mode != "live")


class _InlineExecutor(Executor):
    """Runs tasks in the calling process (``processes=0``: tests, tiny stores)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future


def _init_pool_worker(settings_json: str, write_lock, log_level: str) -> None:
    # JSON lines, as the parent's: an initializer that fails is logged by concurrent.futures, which
    # would otherwise print its traceback as raw text.
    configure_logging(log_level)
    # Ctrl-C reaches the whole process group: the parent stops the pool, workers finish their batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    signing.init_worker(settings_json, write_lock)
    # Start-up objects (modules, signers, settings) live as long as the worker: keep them out of the
    # collector's full passes, which a batch's thousands of row tuples would otherwise trigger again and again.
    gc.freeze()


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent died (killed, SIGTERM without clean-up) exits instead of waiting forever."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


class Generator:
    """Signs pre-computed responses for ``cas`` (default: :func:`generated_cas`) into the store.

    ``processes`` worker processes (None: one per core; 0: sign in this
    process); each loads the signers and opens the store itself. Time comes
    from ``clock`` (thisUpdate of each batch, and what is due). Use as a
    context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings,
        store: GeneratorStore,
        *,
        clock: Clock | None = None,
        processes: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cas: Sequence[CaSettings] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.cas = tuple(generated_cas(settings) if cas is None else cas)
        self.settings = Settings(settings.server, self.cas)
        self.store = store
        self.clock = clock or SystemClock()
        self.processes = (os.cpu_count() or 1) if processes is None else processes
        self.batch_size = batch_size
        self.ca_certificates = {ca.name: load_certificates(ca.certificate)[0] for ca in self.cas}
        #: Serials per batch for each CA (:data:`POST_QUANTUM_BATCH_DIVISOR`).
        self.batch_sizes = {ca.name: batch_size_for(ca, batch_size) for ca in self.cas}
        self.issuer_ids = {
            ca.name: store.register_issuer(ca.name, self.ca_certificates[ca.name].public_bytes(serialization.Encoding.DER))
            for ca in self.cas
        }
        self._responders: dict[tuple[str, int], int | None] = {}  # (CA, certs id) -> its responder's serial, if the CA issued it
        self._dropped: set[tuple[int, int]] = set()  # (issuer id, certs id) whose responses were dropped as revoked
        self._executor: Executor | None = None
        self._write_lock = None  # the workers' shared write lock (with a pool)
        #: CA name -> the process that holds its generator claim (None: this one; absent: not asked yet).
        self.holders: dict[str, str | None] = {}
        #: Called with each finished batch's :class:`~certstatus.generator.signing.BatchResult` (metrics).
        self.on_batch: Callable[[signing.BatchResult], None] | None = None

    def claim(self) -> list[str]:
        """Claim (or keep) the generator of every CA (:meth:`GeneratorStore.claim_generator`); return the CAs newly claimed.

        Logs once per change of holder which CAs another process generates:
        with one database shared by a fleet, one process signs per CA. A CA
        newly claimed has its rows of another signing profile made due
        (:meth:`GeneratorStore.expire_other_profiles`).
        """
        gained = []
        for ca in self.cas:
            holder = self.store.claim_generator(self.issuer_ids[ca.name])
            before = self.holders.get(ca.name, "")
            if holder is None and before is not None:
                gained.append(ca.name)
                if before:
                    log.info("CA %s: this process is its generator now (the previous holder released the lock)", ca.name)
                self._expire_other_profiles(ca)
            elif holder is not None and holder != before:
                log.info(
                    "CA %s: not generating in this process: %s holds its generator lock on the shared store "
                    "(one generator per CA; this process takes over if that one stops)", ca.name, holder,
                )  # fmt: skip
            self.holders[ca.name] = holder
        return gained

    def _expire_other_profiles(self, ca: CaSettings) -> None:
        """Bring the rows signed under another signing profile (another configuration, an older
        release) to the front of the "due" work; they are not served meanwhile."""
        expired = self.store.expire_other_profiles(self.issuer_ids[ca.name], ca.signing_profile)
        if expired:
            log.info(
                "CA %s: %d pre-signed responses were signed under other settings or by an older release; "
                "they are signed live until this generator has signed them again", ca.name, expired,
            )  # fmt: skip

    def mine(self) -> tuple[CaSettings, ...]:
        """The CAs whose generator claim this process held at the last :meth:`claim`."""
        return tuple(ca for ca in self.cas if self.holders.get(ca.name, "") is None)

    def __enter__(self) -> "Generator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (pending batches are cancelled; running ones finish)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.processes == 0:
                signing.init_worker(self.settings.to_json())
                self._executor = _InlineExecutor()
            else:
                context = multiprocessing.get_context("spawn")
                self._write_lock = context.Lock()
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=context,
                    initializer=_init_pool_worker,
                    initargs=(self.settings.to_json(), self._write_lock, log_level()),
                )
                for _ in range(self.processes):  # the pool starts a process per task submitted, up to max_workers
                    self._executor.submit(os.getpid)
        return self._executor

    def drop_revoked_signers(self) -> int:
        """Drop the stored responses of this process's CAs that carry a responder certificate the CA's own
        data now revokes (RFC 6960 §4.2.2.2: it may sign no more); return how many serials lost theirs.

        They are pending as missing, so the pass signs them again with the signer now current; the request
        path stopped serving them already (:class:`~certstatus.pipeline.precomputed.PrecomputedLookup`).
        Each (CA, signer) is dropped once while it stays revoked.
        """
        certificates = None
        dropped = 0
        for ca in self.mine():
            issuer_id = self.issuer_ids[ca.name]
            if certificates is None:
                certificates = self.store.precomputed_certificates()
            for certs_id, element in certificates.items():
                serial = self._responder_serial(ca.name, certs_id, element)
                if serial is None:
                    continue
                record = self.store.lookup(issuer_id, serial)
                key = (issuer_id, certs_id)
                if record is None or record.revoked is None:
                    self._dropped.discard(key)  # (no longer) revoked: its responses are served
                elif key not in self._dropped:
                    count = self.store.drop_precomputed(issuer_id, certs_id)
                    self._dropped.add(key)
                    dropped += count
                    log.debug("CA %s: %d pre-signed responses carry the revoked responder certificate (serial %X): "
                              "dropped, signing them again", ca.name, count, serial)  # the supervisor warned
        return dropped

    def _responder_serial(self, ca_name: str, certs_id: int, element: bytes) -> int | None:
        """Serial number of the responder certificate (the first) of a certificates element, when the CA issued it."""
        key = (ca_name, certs_id)
        if key not in self._responders:
            self._responders[key] = None
            try:
                first = asn1_ocsp.Certificates.load(element, explicit=0)[0]
                responder = x509.load_der_x509_certificate(first.dump())
                responder.verify_directly_issued_by(self.ca_certificates[ca_name])
                self._responders[key] = responder.serial_number
            except (ValueError, TypeError, IndexError, InvalidSignature):
                pass  # not a responder of this CA (another CA's, a locally trusted one)
        return self._responders[key]

    def pending(self, kinds: Sequence[str] = WORK_KINDS) -> int:
        """Serials a pass over ``kinds`` would sign now (reads the store; for progress bars)."""
        now = self.clock.now()
        return sum(
            self.store.count_pending(self.issuer_ids[ca.name], kind, now=now) for ca in self.mine() for kind in kinds
        )

    def run_pass(self, kinds: Sequence[str] = WORK_KINDS, progress: Progress | None = None) -> GenerationSummary:
        """Sign everything of ``kinds`` that is pending now, for the CAs this process claims; return what was done.

        A CA without a signer valid now (:class:`~certstatus.errors.SignerUnavailable` from its
        batches) is left with what its finished batches signed, noted in its
        :attr:`CaSummary.unavailable`, and the pass goes on with the other CAs. Raises
        what a worker raised otherwise (e.g. :class:`~certstatus.errors.SignerError`).
        """
        started = time.perf_counter()
        self.claim()
        summary = GenerationSummary(
            cas={ca.name: CaSummary(ca.name, generated_by=self.holders.get(ca.name)) for ca in self.cas},
            processes=self.processes,
        )
        if not self.mine():
            if progress is not None:
                progress.start(0)
            return summary
        self.drop_revoked_signers()
        pool = self._pool()  # the signing processes start (import, load the signers) while this one counts
        if progress is not None:
            progress.start(self.pending(kinds))
        window = 2 * max(1, self.processes)
        now = self.clock.now()
        in_flight: dict[Future, None] = {}

        def collect(block_until_below: int) -> None:
            """Wait for batches until fewer than ``block_until_below`` are in flight; count their results.
            A batch without a signer raises SignerUnavailable once the others waited for are counted."""
            unavailable: SignerUnavailable | None = None
            while len(in_flight) > block_until_below:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    del in_flight[future]
                    try:
                        result: signing.BatchResult = future.result()
                    except SignerUnavailable as exc:
                        unavailable = unavailable or exc
                        continue
                    summary.cas[result.ca].signed += result.signed
                    summary.cas[result.ca].removed += result.removed
                    if self.on_batch is not None:
                        self.on_batch(result)
                    if progress is not None and result.serials:
                        progress.advance(result.serials)
            if unavailable is not None:
                raise unavailable

        # SQLite: the WAL is copied into the database from a thread of this process, not in the workers' commits.
        checkpoints = getattr(self.store, "background_checkpoints", None)
        background = contextlib.nullcontext() if checkpoints is None or self._write_lock is None else checkpoints(self._write_lock)
        try:
            with background:
                for ca in self.mine():
                    try:
                        for kind in kinds:
                            units = signing.work_units(
                                self.store, self.issuer_ids[ca.name], kind, now=now, batch_size=self.batch_sizes[ca.name]
                            )
                            for work in units:
                                collect(window - 1)
                                in_flight[pool.submit(signing.sign_task, ca.name, work, self.clock.now().timestamp())] = None
                            collect(0)  # this kind is stored before the next is read
                    except SignerUnavailable as exc:  # this CA's signers: the others are signed all the same
                        with contextlib.suppress(SignerUnavailable):
                            collect(0)  # its batches still in flight
                        summary.cas[ca.name].unavailable = str(exc)
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise
        summary.seconds = time.perf_counter() - started
        return summary


def batch_size_for(ca: CaSettings, batch_size: int) -> int:
    """``batch_size``, divided by :data:`POST_QUANTUM_BATCH_DIVISOR` when every signer certificate of ``ca``
    (configured or in its ``signers_dir``) holds an ML-DSA key, so that its default signer is post-quantum."""
    found = [*configured_signers(ca), *(s for s in scan_signers_dir(ca) if isinstance(s, SignerSettings))]
    try:
        keys = [load_certificates(signer.certificate)[0].public_key() for signer in found]
    except CertstatusError:  # the workers say what is wrong with it when they load the signers
        return batch_size
    if keys and all(is_post_quantum_key(key) for key in keys):
        return max(1, batch_size // POST_QUANTUM_BATCH_DIVISOR)
    return batch_size


#: Responses per serial: one per CertID hash algorithm.
RESPONSES_PER_SERIAL = len(PRECOMPUTED_HASH_ALGORITHMS)
