"""The default size of a worker's answer cache (``server.response_cache_bytes`` not set).

The cache (the pipeline's answer cache and the HTTP edge's, one byte
budget: :class:`~certstatus.pipeline.cache.ByteBudget`) is least recently
used out. Under the requests OCSP responders see — many distinct serials,
each asked for now and then, and clients or CDNs that walk a CA's
certificates in turn — a bound below the working set buys little: uniform
requests over N answers hit a C-byte cache C/N of the time, and a cyclic walk
over more answers than it holds hits nothing at all (each answer is evicted
just before it is asked for again). A cache that holds every answer hits
every request after its first. So the default is all or the floor:

* the pre-signed set of the worker's ``precomputed`` and ``cached`` CAs
  (serials with responses in the store, read at the worker's start) times
  :data:`ANSWER_BYTES`, when that fits under the ceiling: every answer fits;
* otherwise :data:`FLOOR_BYTES` (the hot part of a skewed load still fits;
  a bigger partial cache would cost memory for a few per cent of hits).

The ceiling is the smaller of :data:`CEILING_BYTES` and
:data:`MEMORY_SHARE` of the host's memory (or of the cgroup's limit, when
lower) divided by the workers. Figures behind the constants:
``docs/configuration.md`` and ``docs/precomputed.md``. An explicit
``response_cache_bytes`` is used as written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

#: Budget bytes one pre-signed serial of a precomputed CA takes in the cache, as counted by the edge
#: once its fill at the worker's start (:mod:`certstatus.server.preload`) kept it: the POST entry
#: (request key ~75 B, header block ~200 B, DER ~330 B CA-signed to ~760 B with a delegated
#: responder certificate, entry overhead 300 B: ~1 350 B) and the GET key sharing it (~110 B
#: URL-encoded base64 and 150 B: ~260 B): ~1 610 B, rounded up.
ANSWER_BYTES = 1_700
#: The cache when the pre-signed set does not fit under the ceiling (the former fixed default).
FLOOR_BYTES = 64 * 1024 * 1024
#: The largest default per worker, whatever the host's memory.
CEILING_BYTES = 512 * 1024 * 1024
#: Share of the memory all workers' default caches may take together.
MEMORY_SHARE = 0.25
#: ``now`` far enough ahead that every pre-signed response is "due": counts them all.
_END_OF_TIME = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)


def default_cache_bytes(answers: int, *, workers: int, memory_bytes: int) -> int:
    """The default cache bound per worker (bytes) for ``answers`` pre-signed answers, ``workers``
    worker processes and ``memory_bytes`` of memory (see the module docstring)."""
    ceiling = min(CEILING_BYTES, int(memory_bytes * MEMORY_SHARE / max(1, workers)))
    wanted = answers * ANSWER_BYTES
    return wanted if FLOOR_BYTES < wanted <= ceiling else FLOOR_BYTES


def fill_fits(answers: int, max_bytes: int) -> bool:
    """Whether ``answers`` pre-signed serials fit whole in a cache of ``max_bytes`` (the rule of the
    sized default, :func:`default_cache_bytes`, applied to any size): the edge cache is filled from
    the store at a worker's start only then (:mod:`certstatus.server.preload`)."""
    return 0 < answers and answers * ANSWER_BYTES <= max_bytes


def memory_bytes(cgroup: Path = Path("/sys/fs/cgroup/memory.max")) -> int:
    """This host's physical memory in bytes, or the cgroup v2 limit of this process when lower."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = cgroup.read_text().strip()
    except OSError:
        return total
    return min(total, int(limit)) if limit.isdigit() else total


def presigned_answers(settings, registry, store) -> int:
    """Serials with pre-signed responses in ``store`` for the ``precomputed`` and ``cached`` CAs of ``settings``."""
    total = 0
    for ca in settings.cas:
        if ca.mode == "live":
            continue
        served = registry.by_name.get(ca.name)
        if served is not None:
            total += store.count_pending(served.issuer_id, "due", now=_END_OF_TIME)
    return total


def with_cache_size(settings, registry, store, answers: int | None = None):
    """``settings`` with ``server.response_cache_bytes`` set: as configured, or the default for
    the store's pre-signed set (:func:`default_cache_bytes`; ``answers``: its size when already
    counted, :func:`presigned_answers`) when not configured (None)."""
    server = settings.server
    if server.response_cache_bytes is not None:
        return settings
    workers = server.workers or os.cpu_count() or 1
    if answers is None:
        answers = presigned_answers(settings, registry, store)
    size = default_cache_bytes(answers, workers=workers, memory_bytes=memory_bytes())
    return dataclasses.replace(settings, server=dataclasses.replace(server, response_cache_bytes=size))
