"""The default bound of the answer cache: every pre-signed answer when they fit, else the floor."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import pytest

from certstatus.app import build_application, prepare
from certstatus.cache_size import (
    ANSWER_BYTES,
    CEILING_BYTES,
    FLOOR_BYTES,
    default_cache_bytes,
    fill_fits,
    memory_bytes,
    presigned_answers,
)
from certstatus.clock import ManualClock
from certstatus.config import load_config
from certstatus.errors import ConfigError
from certstatus.generator.run import Generator
from certstatus.store.postgres import PostgresStore
from certstatus.store.sqlite import SQLiteStore
from tests.precomputed_helpers import ca_settings, copy_pki, settings_for

GIB = 1 << 30


def test_a_pre_signed_set_that_fits_is_held_whole():
    answers = 100_000  # 170 MB: above the floor, under the ceiling of a 24 GB host with 2 workers
    assert default_cache_bytes(answers, workers=2, memory_bytes=24 * GIB) == answers * ANSWER_BYTES


def test_a_set_beyond_the_ceiling_gets_the_floor_not_a_partial_cache():
    # 10 million answers would want 17 GB: a partial cache hits little under uniform or cyclic requests.
    assert default_cache_bytes(10_000_000, workers=2, memory_bytes=24 * GIB) == FLOOR_BYTES
    assert default_cache_bytes(CEILING_BYTES // ANSWER_BYTES + 1, workers=1, memory_bytes=1 << 50) == FLOOR_BYTES


def test_the_edge_cache_is_filled_at_start_only_when_the_default_holds_the_whole_set():
    """server/preload.py fills when the set fits whole: under the sized default, never at the floor a store
    too large for the ceiling gets (10 million serials: the worker's memory stays bounded)."""
    for answers in (1_000, 100_000, CEILING_BYTES // ANSWER_BYTES):
        assert fill_fits(answers, default_cache_bytes(answers, workers=1, memory_bytes=1 << 50))
    for answers in (10_000_000, CEILING_BYTES // ANSWER_BYTES + 1):
        assert not fill_fits(answers, default_cache_bytes(answers, workers=1, memory_bytes=1 << 50))
    assert not fill_fits(0, FLOOR_BYTES)  # nothing signed yet: nothing to fill
    assert fill_fits(1000, 1000 * ANSWER_BYTES) and not fill_fits(1000, 1000 * ANSWER_BYTES - 1)  # a size set in the file


def test_the_ceiling_shrinks_with_memory_per_worker():
    answers = 200_000  # 340 MB
    assert default_cache_bytes(answers, workers=2, memory_bytes=4 * GIB) == answers * ANSWER_BYTES  # 512 MB each
    assert default_cache_bytes(answers, workers=8, memory_bytes=4 * GIB) == FLOOR_BYTES  # 128 MB each


def test_a_small_set_keeps_the_floor():
    assert default_cache_bytes(0, workers=1, memory_bytes=GIB) == FLOOR_BYTES
    assert default_cache_bytes(1000, workers=1, memory_bytes=GIB) == FLOOR_BYTES


def test_memory_is_the_cgroup_limit_when_lower(tmp_path):
    limit = tmp_path / "memory.max"
    limit.write_text("max\n")
    host = memory_bytes(limit)
    assert host > 0
    limit.write_text(f"{256 << 20}\n")
    assert memory_bytes(limit) == min(host, 256 << 20)
    assert memory_bytes(tmp_path / "absent") == host


@contextmanager
def _worker(demo_pki, tmp_path, cache_bytes, database=None):
    """(settings, store, application) of one worker of the demo CA in precomputed mode, its
    responses generated; ``database`` a PostgreSQL DSN, or None for SQLite."""
    pki = copy_pki(demo_pki, tmp_path / "pki")
    settings = settings_for(database or tmp_path / "store.sqlite3", ca_settings(pki, "precomputed"), cache_bytes=cache_bytes)
    if database is not None:
        PostgresStore(database, upgrade=True).close()
    clock = ManualClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
    prepare(settings, clock)
    store = PostgresStore(database) if database is not None else SQLiteStore(settings.server.database)
    try:
        generator = Generator(settings, store, clock=clock, processes=0)
        generator.run_pass()
        generator.close()
        application = build_application(settings, clock, watch=False)
        try:
            yield settings, store, application
        finally:
            application.close()
    finally:
        store.close()


def _stored(application, store) -> int:
    stored = len(list(store.stored_responses(application.registry.by_name["demo"].issuer_id, "sha1")))
    assert stored > 0
    return stored


def test_not_configured_the_cache_is_sized_from_the_pre_signed_set_at_the_worker_start(demo_pki, tmp_path):
    with _worker(demo_pki, tmp_path, None) as (settings, store, application):
        stored = _stored(application, store)
        assert presigned_answers(settings, application.registry, store) == stored
        resolved = application.settings.server.response_cache_bytes
        assert resolved == default_cache_bytes(stored, workers=1, memory_bytes=memory_bytes())
        assert application.pipeline.cache.cache.budget.max_bytes == resolved


def test_a_configured_size_is_used_as_written(demo_pki, tmp_path):
    with _worker(demo_pki, tmp_path, 12345) as (_settings, _store, application):
        assert application.settings.server.response_cache_bytes == 12345
        assert application.pipeline.cache.cache.budget.max_bytes == 12345


def test_the_pre_signed_set_is_counted_in_a_postgresql_store_too(demo_pki, tmp_path, postgres_dsn):
    with _worker(demo_pki, tmp_path, None, postgres_dsn) as (settings, store, application):
        assert presigned_answers(settings, application.registry, store) == _stored(application, store)


def _config(tmp_path, line: str):
    path = tmp_path / "certstatus.toml"
    path.write_text(f'[server]\ndatabase = "{tmp_path / "s.sqlite3"}"\n{line}\n\n[ca.issuing]\ncertificate = "ca.pem"\n'
                    'crl = "ca.crl"\nsigner_certificate = "ocsp.pem"\nsigner_key = "ocsp.key"\n')
    return path


def test_the_file_leaves_the_size_open_unless_it_sets_one(tmp_path):
    assert load_config(_config(tmp_path, "")).server.response_cache_bytes is None
    assert load_config(_config(tmp_path, "response_cache_bytes = 0")).server.response_cache_bytes == 0
    assert load_config(_config(tmp_path, "response_cache_bytes = 1048576")).server.response_cache_bytes == 1 << 20


@pytest.mark.parametrize("value", ["-1", '"64M"', "true"])
def test_a_size_that_is_not_one_names_the_key_and_the_range(tmp_path, value):
    with pytest.raises(ConfigError) as error:
        load_config(_config(tmp_path, f"response_cache_bytes = {value}"))
    assert "server.response_cache_bytes" in str(error.value)
    assert "0 or more" in str(error.value)

