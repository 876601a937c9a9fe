"""OverloadGuard: the verdicts on connections and blocking work, the counter, the rate-limited log."""

from __future__ import annotations

import logging

import pytest
from cryptography.x509 import ocsp
from prometheus_client import CollectorRegistry

from certstatus.server.overload import LOG_INTERVAL, TRY_LATER, TRY_LATER_CLOSE, OverloadGuard, refused_counter


class Ticks:
    """A monotonic clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_connections_within_the_limit_are_served_beyond_refused_beyond_twice_closed():
    guard = OverloadGuard(3, 2)
    assert [guard.admit(n) for n in (1, 3, 4, 6, 7, 50)] == [
        None, None, "connections", "connections", "connections_hard", "connections_hard"]
    assert guard.refused_total == {"connections": 2, "connections_hard": 2, "in_flight": 0}


def test_in_flight_places_are_taken_and_given_back():
    guard = OverloadGuard(10, 2)
    assert guard.enter() and guard.enter()
    assert not guard.enter()  # the third waits for nothing: refused
    guard.leave()
    assert guard.enter()
    assert guard.in_flight == 2 and guard.refused_total["in_flight"] == 1
    assert guard.executor._max_workers == 2  # exactly as many threads as places: no queue behind them
    guard.close()


def test_run_blocking_runs_in_a_thread_and_gives_the_place_back_when_done():
    import asyncio
    import threading

    guard = OverloadGuard(10, 1)
    release = threading.Event()
    threads: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        first = guard.run_blocking(loop, lambda: (threads.append(threading.current_thread().name), release.wait(10)))
        assert first is not None and guard.in_flight == 1
        assert guard.run_blocking(loop, lambda: None) is None  # the only place is taken: refused at once
        release.set()
        await first
        await asyncio.sleep(0)  # the done callbacks run
        assert guard.in_flight == 0
        second = guard.run_blocking(loop, lambda: None)
        assert second is not None
        await second

    asyncio.run(scenario())
    assert threads and threads[0].startswith("certstatus-blocking")
    assert guard.refused_total["in_flight"] == 1
    guard.close()


def test_refusals_are_counted_by_reason_in_prometheus():
    registry = CollectorRegistry()
    guard = OverloadGuard(1, 1, counter=refused_counter(registry))
    guard.admit(2)
    guard.admit(5)
    guard.enter()
    guard.enter()
    samples = {s.labels["reason"]: s.value for s in next(iter(registry.collect())).samples if s.name.endswith("_total")}
    assert samples == {"connections": 1.0, "connections_hard": 1.0, "in_flight": 1.0}


def test_counter_is_off_without_the_metrics_folder(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert refused_counter() is None


def test_log_is_rate_limited_and_says_how_many_were_refused(caplog):
    ticks = Ticks()
    guard = OverloadGuard(1, 1, monotonic=ticks)
    with caplog.at_level(logging.WARNING, logger="certstatus.overload"):
        for _ in range(100):
            guard.admit(2)
        ticks.now += LOG_INTERVAL / 2
        guard.admit(2)
        ticks.now += LOG_INTERVAL
        guard.admit(2)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("overload: 1 refused (connections: 2 open connections, limit 1 per worker)")
    assert lines[1].startswith("overload: 101 refused (connections")


def test_try_later_responses_carry_the_ocsp_body():
    for response in (TRY_LATER, TRY_LATER_CLOSE):
        assert response.status == 503
        assert dict(response.headers)[b"content-type"] == b"application/ocsp-response"
        assert ocsp.load_der_ocsp_response(response.body).response_status is ocsp.OCSPResponseStatus.TRY_LATER
    assert dict(TRY_LATER_CLOSE.headers)[b"connection"] == b"close"


def test_limits_below_one_are_refused():
    with pytest.raises(ValueError):
        OverloadGuard(0, 1)
