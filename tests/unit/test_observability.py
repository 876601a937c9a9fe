"""Logs are JSON lines, tracebacks included: nothing reaches stderr as raw text."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap

from certstatus.errors import StoreError
from certstatus.observability import process_main

#: A process that lets an exception escape everywhere one can: an asyncio callback (uvloop, as the
#: workers run), a thread, a finaliser, a warning, and at last its main thread.
_EVERYWHERE = textwrap.dedent("""
    import asyncio, gc, threading, warnings
    import uvloop
    from certstatus.observability import configure_logging

    configure_logging("info")
    loop = uvloop.new_event_loop()
    loop.call_soon(lambda: 1 / 0)
    loop.run_until_complete(asyncio.sleep(0.05))
    thread = threading.Thread(target=lambda: {}["missing"], name="refresher")
    thread.start()
    thread.join()

    class Finalised:
        def __del__(self):
            raise RuntimeError("in a finaliser")

    Finalised()
    gc.collect()
    warnings.warn("deprecated thing")
    raise ValueError("in the main thread")
""")


def _json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as JSON (AssertionError naming the first line that is not)."""
    entries = []
    for line in text.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"raw text on stderr: {line!r}\n{text}") from None
    return entries


def test_an_uncaught_exception_anywhere_in_a_process_is_one_json_line_with_its_traceback() -> None:
    done = subprocess.run([sys.executable, "-c", _EVERYWHERE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    entries = _json_lines(done.stderr)
    messages = [entry["message"] for entry in entries]
    assert len(entries) == 5, messages
    callback, thread, finaliser, warning, main = entries
    assert callback["logger"] == "asyncio" and "ZeroDivisionError" in callback["exception"]
    assert thread["level"] == "critical" and "thread refresher" in thread["message"] and "KeyError" in thread["exception"]
    assert finaliser["level"] == "error" and "RuntimeError: in a finaliser" in finaliser["exception"]
    assert warning["logger"] == "py.warnings" and "deprecated thing" in warning["message"]
    assert main["level"] == "critical" and main["exception"].startswith("Traceback") and "ValueError" in main["message"]


def _bug() -> None:
    raise ZeroDivisionError("a bug in a child process")


def _database_down() -> None:
    raise StoreError("postgresql://certstatus:s3cret@db.example/certstatus", "cannot connect to PostgreSQL.")


def test_a_child_process_that_fails_logs_one_json_line_and_exits_1(capfd) -> None:
    context = multiprocessing.get_context("spawn")
    for target in (_bug, _database_down):
        process = context.Process(target=process_main, args=("info", target), name=f"test{target.__name__}")
        process.start()
        process.join(60)
        assert process.exitcode == 1
    bug, down = _json_lines(capfd.readouterr().err)
    assert bug["level"] == "critical" and "test_bug failed: ZeroDivisionError" in bug["message"]
    assert "Traceback" in bug["exception"]
    # An operator's problem is its message, no traceback; its DSN without the password.
    assert down["level"] == "error" and "exception" not in down
    assert down["message"] == "test_database_down stopped: postgresql://certstatus:***@db.example/certstatus: cannot connect to PostgreSQL."


def test_an_admin_request_that_raises_is_one_log_line_not_a_traceback_on_stderr(caplog, capfd) -> None:
    """socketserver prints a failing handler's traceback to stderr; the admin listener logs it instead."""
    import logging
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler

    from certstatus.admin.server import _AdminHTTPServer

    class Broken(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            raise RuntimeError("a bug in an admin route")

    server = _AdminHTTPServer(("127.0.0.1", 0), Broken, None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    caplog.set_level(logging.INFO, logger="certstatus.admin")
    try:
        with socket.create_connection(server.server_address, timeout=10) as client:
            client.sendall(b"GET /v1/sources HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(1024) == b""  # the connection is closed without an answer
    finally:
        server.shutdown()
        server.server_close()
    (record,) = [r for r in caplog.records if r.name == "certstatus.admin"]
    assert record.levelno == logging.ERROR and record.exc_info[0] is RuntimeError
    assert "Traceback" not in capfd.readouterr().err


def test_configuration_warnings_are_one_line_per_kind_when_grouped_and_debug_when_held(caplog) -> None:
    import logging

    from certstatus.observability import config_warning, grouped_config_warnings, held_config_warnings

    caplog.set_level(logging.DEBUG, logger="certstatus.config")
    with grouped_config_warnings():
        for ca in ("a", "b", "a"):  # a process that loads a CA twice (prepare, then readiness) says it once
            config_warning("locally trusted responders", f"CA {ca}: signer s")
        config_warning("no nocheck", "s.pem")
        assert caplog.records == []  # nothing before the loading is over
    with held_config_warnings():
        config_warning("locally trusted responders", "CA a: signer s")
    config_warning("no nocheck", "t.pem")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "locally trusted responders (2): CA a: signer s; CA b: signer s"),
        ("WARNING", "no nocheck (1): s.pem"),
        ("DEBUG", "locally trusted responders: CA a: signer s"),
        ("WARNING", "no nocheck: t.pem"),
    ]
    assert caplog.records[0].items == ["CA a: signer s", "CA b: signer s"]
