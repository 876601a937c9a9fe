"""Worker processes for the HTTP edge: one listening socket, N worker processes.

The supervisor binds the socket once (so a bind error stops start-up, and
port 0 resolves to one port for every worker), then starts the workers with
the ``spawn`` method (the supervisor runs threads — the source refresher —
and forking a threaded process is unsafe); each inherits the socket and
accepts from it in turn, the kernel handing each connection to one of them.
Each worker builds its own application from the settings the supervisor's
:class:`~certstatus.supervisor.lifecycle.Lifecycle` handed over (the file named by
``CERTSTATUS_SETTINGS_FILE``, read at each worker's start, database passwords in
passfiles: :func:`~certstatus.server.worker_settings.worker_settings`) and runs a
uvloop event loop.

Signals to the supervisor: SIGTERM/SIGINT stop — workers stop accepting,
answer requests in progress and those that arrive with ``Connection: close``,
close each connection without a request in progress once it has been quiet
for :data:`~certstatus.server.connection.DRAIN_QUIET_SECONDS` (since accepted
or last answered: a busy client's next request is on its way), and exit when
their connections are gone or after ``GRACE_SECONDS``. SIGHUP calls
``on_reload`` and replaces every worker (new ones first, then the old ones
drain), which reloads signers. A worker that dies on its own is replaced.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable

try:
    import uvloop
except ImportError:  # pragma: no cover - a dependency everywhere but Windows, where asyncio's loop serves
    uvloop = None

from certstatus.metrics import SUPERVISOR
from certstatus.observability import process_main
from certstatus.server.connection import HttpProtocol, ServerState
from certstatus.server.listen import bind_address, start_listening
from certstatus.server.overload import OverloadGuard, refused_counter
from certstatus.server.preload import HEAD_START_SECONDS
from certstatus.server.responder import Responder

log = logging.getLogger("certstatus.server")

#: Seconds a worker waits for open connections to finish after SIGTERM.
GRACE_SECONDS = 10.0
#: A worker dying sooner than this after its start failed at start-up: it is restarted after a
#: back-off (a database that is down for a moment), not at once (a crash loop).
MIN_WORKER_LIFETIME = 2.0
#: Back-off before restarting a worker that failed at start-up: doubled per failure in a row.
START_BACKOFF = (1.0, 15.0)  # (first, longest) seconds
#: Failures at start-up in a row after which, with no worker running, the server gives up (~30 s).
MAX_START_FAILURES = 5


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """Return a listening TCP socket on (host, port); port 0 picks a free port.

    Raises ``OSError`` when the address is in use or not local.
    """
    return start_listening(bind_address(host, port), backlog)


def run_worker(
    sock: socket.socket,
    make_responder: Callable[[], Responder],
    *,
    client_timeout: float,
    max_header_bytes: int,
    grace_seconds: float = GRACE_SECONDS,
    max_connections: int | None = None,
    max_in_flight: int = 64,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Serve ``sock`` in this process until SIGTERM/SIGINT, then drain and return.

    ``max_connections`` (None: no limit) is the worker's connection limit and
    ``max_in_flight`` the number of forwarded requests it waits for at once,
    each in a thread (:mod:`certstatus.server.overload`); ``tls`` the server
    context of a TLS listener (:func:`certstatus.server.tls.server_context`).
    """
    loop = asyncio.new_event_loop() if uvloop is None else uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    guard = None
    if max_connections is not None:
        guard = OverloadGuard(max_connections, max_in_flight, counter=refused_counter())
    state = ServerState(make_responder(), client_timeout=client_timeout, max_header_bytes=max_header_bytes,
                        guard=guard, tls=tls)
    # What start-up built lives as long as the worker: out of the collector's sight, a full
    # collection no longer walks it (~30 ms for ~65 000 objects, a p99 spike every time).
    gc.collect()
    gc.freeze()
    if signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor handles SIGHUP (a terminal sends it to all)
    try:
        loop.run_until_complete(_serve(loop, sock, state, grace_seconds))
    finally:
        loop.close()


async def _serve(loop: asyncio.AbstractEventLoop, sock: socket.socket, state: ServerState, grace: float) -> None:
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # The edge cache is filled from the store before the first accept, for a few seconds at most, then
    # in slices between requests (server/preload.py).
    preload = getattr(state.responder, "preload", None)
    filling = None
    if preload is not None:
        filling = loop.create_task(preload.run())
        stopping = loop.create_task(stop.wait())
        await asyncio.wait((filling, stopping), timeout=HEAD_START_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        preload.paced = True
    # partial, not a lambda: the factory runs once per connection, without a Python frame of its own.
    server = await loop.create_server(functools.partial(HttpProtocol, state, loop), sock=sock, backlog=2048)
    state.start_sweeping(loop)
    await stop.wait()
    if filling is not None:
        filling.cancel()
    server.close()
    state.draining = True
    log.info("worker %d draining: stopped accepting, %d connections open", os.getpid(), len(state.connections))
    deadline = loop.time() + grace
    while state.connections and loop.time() < deadline:
        now = loop.time()
        for connection in list(state.connections):
            connection.close_if_idle(now)
        await asyncio.sleep(0.05)
    for connection in list(state.connections):
        connection.time_out()
    if state.handshakes:  # each ends once its socket is closed
        await asyncio.wait(list(state.handshakes), timeout=1.0)
    state.stop_sweeping()
    if state.guard is not None:
        state.guard.close()  # the forwarding threads; one still waiting ends within its forward timeout
    await asyncio.sleep(0)


def serve_forever(
    sock: socket.socket,
    *,
    workers: int,
    client_timeout: float,
    max_header_bytes: int,
    log_level: str = "info",
    grace_seconds: float = GRACE_SECONDS,
    on_ready: Callable[[], None] | None = None,
    on_reload: Callable[[], bool | None] | None = None,
    worker_main: Callable[[socket.socket, float, int, float], None],
) -> None:
    """Run ``workers`` processes serving ``sock``; return after SIGTERM/SIGINT once all exited.

    ``worker_main(sock, client_timeout, max_header_bytes, grace_seconds)`` is the body of each
    spawned worker (a module-level function: it is pickled to the child), e.g.
    :func:`certstatus.supervisor.worker.worker_main`, which builds the application and calls
    :func:`run_worker`.

    Each worker builds the application from the settings the supervisor's
    ``Lifecycle`` exported (:func:`~certstatus.server.worker_settings.worker_settings`,
    read at each start so that a reload reaches new workers). ``on_ready`` runs here once the workers are started and signals
    handled; ``on_reload`` on SIGHUP — the workers are replaced unless it
    returns False (a refused reload). A worker that dies is started again; one that
    dies within :data:`MIN_WORKER_LIFETIME` of its start (it could not start: the
    database was down a moment, say) after a back-off of :data:`START_BACKOFF`,
    doubled per failure in a row; after :data:`MAX_START_FAILURES` in a row with
    none running, the server gives up (``SystemExit``).
    """
    context = multiprocessing.get_context("spawn")
    running: dict[int, tuple[multiprocessing.Process, float]] = {}
    pending: list[int] = []
    restarts: list[float] = []  # monotonic times at which a worker that failed at start-up is started again
    failures = 0  # start-up failures in a row

    def spawn() -> None:
        process = context.Process(
            target=process_main,  # JSON logging; an exception is one log line, not a raw traceback
            args=(log_level, worker_main, sock, client_timeout, max_header_bytes, grace_seconds),
            name="certstatus-worker",
        )
        process.start()
        running[process.sentinel] = (process, time.monotonic())

    def on_signal(signum, frame) -> None:
        pending.append(signum)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in handled}
    try:
        for _ in range(workers):
            spawn()
        if on_ready is not None:
            on_ready()
        while running or restarts:
            if running:
                ready = multiprocessing.connection.wait(list(running), timeout=0.2)
            else:
                ready = []
                time.sleep(0.2)
            _reap_replaced()
            while pending:
                signum = pending.pop(0)
                if signum == signal.SIGHUP:
                    log.info("SIGHUP: reloading and replacing the workers")
                    if on_reload is not None and on_reload() is False:
                        continue  # refused: the running workers keep serving the running configuration
                    old = list(running.values())
                    restarts.clear()
                    for _ in range(workers):
                        spawn()
                    for process, _started in old:
                        running.pop(process.sentinel, None)
                        process.terminate()  # SIGTERM: drains, then exits
                        _reap_later(process)
                else:
                    _stop_all(running, grace_seconds)
                    return
            now = time.monotonic()
            for due in [when for when in restarts if when <= now]:
                restarts.remove(due)
                spawn()
            for sentinel in ready:
                entry = running.pop(sentinel, None)
                if entry is None:
                    continue
                process, started = entry
                process.join()
                lived = time.monotonic() - started
                log.error("worker %d exited (status %s) after %.1f s", process.pid, process.exitcode, lived)
                SUPERVISOR.worker_restarted()
                if lived >= MIN_WORKER_LIFETIME:
                    failures = 0
                    spawn()
                    continue
                failures += 1
                if failures >= MAX_START_FAILURES and not running and not restarts:
                    raise SystemExit(f"every worker failed at start-up, {failures} times in a row; see the errors above")
                delay = min(START_BACKOFF[1], START_BACKOFF[0] * 2 ** (failures - 1))
                log.warning("starting a worker again in %.0f s (failure %d at start-up in a row)", delay, failures)
                restarts.append(time.monotonic() + delay)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()


_replaced: list[multiprocessing.Process] = []


def _reap_later(process: multiprocessing.Process) -> None:
    """Keep a replaced worker until it has drained (joined at shutdown, or when it is done)."""
    _reap_replaced()
    _replaced.append(process)


def _reap_replaced() -> None:
    """Forget the replaced workers that have exited (``is_alive`` reaps them: no zombie is left)."""
    _replaced[:] = [p for p in _replaced if p.is_alive()]


def _stop_all(running: dict, grace_seconds: float) -> None:
    processes = [process for process, _started in running.values()] + _replaced
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace_seconds + 5
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.error("worker %d did not stop in time; killing it", process.pid)
            process.kill()
            process.join()
    running.clear()
