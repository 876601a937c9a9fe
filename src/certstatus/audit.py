"""The audit/billing log writer: one JSON line per request, written off the request path.

:meth:`AuditLog.write` only puts the record (a dict) on a queue; a
background thread serialises records in batches and appends them with one
``write(2)`` per batch (it gathers records for up to :data:`LINGER` seconds
first, so a busy server makes few system calls). To a file, the lines are appended with ``O_APPEND``,
so every worker process can share one file. With rotation on, each batch is
written under an ``flock`` on ``<file>.lock``: the writer that would take
the file past ``max_bytes`` renames ``file`` → ``file.1`` → ... →
``file.N`` first; the other processes see the inode change and reopen. A
file renamed by an external tool (logrotate without ``copytruncate``) is
reopened the same way. To standard
output (``"-"``), each line is one ``write(2)`` of less than ``PIPE_BUF``
bytes, so lines of several processes never interleave.

If the disk stalls and the queue fills up (:data:`QUEUE_SIZE` records),
further records are dropped and counted, and an error is logged: losing
billing lines is something an operator must act on.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path

log = logging.getLogger("certstatus.audit")

#: Records waiting for the writer thread before new ones are dropped.
QUEUE_SIZE = 100_000
#: Records serialised and written together, at most.
BATCH = 1024
#: Seconds the writer gathers records before it writes (fewer system calls under load).
LINGER = 0.05
_STOP = object()


def _json_default(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_line(record: dict) -> bytes:
    """One audit line: compact JSON, datetimes as ISO 8601 UTC with ``Z``, and a newline."""
    return json.dumps(record, separators=(",", ":"), default=_json_default, ensure_ascii=False).encode() + b"\n"


class _FileSink:
    """Append to ``path``, rotating by size across processes (see the module docstring)."""

    def __init__(self, path: str, max_bytes: int, backup_count: int) -> None:
        self.path = path
        self.max_bytes = max_bytes if backup_count > 0 else 0
        self.backup_count = backup_count
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.fd = self._open()
        self.lock_fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640) if self.max_bytes else None

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def _reopen(self) -> None:
        os.close(self.fd)
        self.fd = self._open()

    def _moved(self) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(self.fd).st_ino
        except FileNotFoundError:
            return True

    def write(self, data: bytes) -> None:
        if not self.max_bytes:
            if self._moved():
                self._reopen()
            self._append(data)
            return
        # Check, rotate and append under the lock: writers of other processes wait.
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            for chunk in _chunks(data, self.max_bytes):
                if self._moved():
                    self._reopen()
                size = os.fstat(self.fd).st_size
                if size and size + len(chunk) > self.max_bytes:
                    self._rotate()
                self._append(chunk)
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def _rotate(self) -> None:
        for index in range(self.backup_count - 1, 0, -1):
            older = f"{self.path}.{index}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{index + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._reopen()

    def close(self) -> None:
        os.close(self.fd)
        if self.lock_fd is not None:
            os.close(self.lock_fd)


def _chunks(data: bytes, size: int) -> list[bytes]:
    """Split ``data`` at line ends into pieces of at most ``size`` bytes (a longer line stays whole)."""
    chunks, start = [], 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + size) + 1
        if end <= start:
            end = data.find(b"\n", start + size) + 1 or len(data)
        chunks.append(data[start:end])
        start = end
    return chunks


class _StdoutSink:
    def write(self, data: bytes) -> None:
        for line in data.splitlines(keepends=True):
            os.write(1, line)

    def close(self) -> None:
        pass


class AuditLog:
    """Write audit records as JSON lines to ``target`` (a file path, or ``"-"`` for stdout).

    ``max_bytes`` (0: never) and ``backup_count`` rule file rotation.
    Thread-safe; :meth:`close` flushes what is queued.
    """

    def __init__(self, target: str, *, max_bytes: int = 0, backup_count: int = 10) -> None:
        self.target = target
        self.sink = _StdoutSink() if target == "-" else _FileSink(target, max_bytes, backup_count)
        self.queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="certstatus-audit", daemon=True)
        self._thread.start()

    def write(self, record: dict) -> None:
        """Queue one record (never blocks); values are JSON types or aware datetimes."""
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.error("audit log %s cannot keep up: %d records dropped; check the disk", self.target, self.dropped)

    def close(self, timeout: float = 10.0) -> None:
        """Write everything queued, then stop the thread and close the file."""
        if self._thread.is_alive():
            self.queue.put(_STOP)
            self._thread.join(timeout)
        self.sink.close()

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            if batch[0] is not _STOP:
                time.sleep(LINGER)  # sleeping, not waiting on the queue: producers wake nobody
            while len(batch) < BATCH and batch[-1] is not _STOP:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            data = b"".join(encode_line(item) for item in batch if item is not _STOP)
            if data:
                try:
                    self.sink.write(data)
                except OSError as exc:
                    log.error("cannot write the audit log %s: %s; %d lines lost", self.target, exc, data.count(b"\n"))
            if stop:
                return
