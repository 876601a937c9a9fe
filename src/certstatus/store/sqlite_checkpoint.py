"""The SQLite WAL checkpointer of the generator's parent process: a thread beside the writers.

Used by :meth:`certstatus.store.sqlite_precomputed.PrecomputedSQLite.background_checkpoints`
while the generator's worker processes write pre-signed responses under one shared lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("certstatus.store")


class WalCheckpointer:
    """Copies the WAL into the database file from a thread, outside the generator's write lock (a context manager).

    SQLite checkpoints in the commit that finds the WAL past
    ``wal_autocheckpoint`` pages: with the generator's workers, inside the
    shared write lock, so the other workers waited ~0.1-0.2 s for every
    ~40 MB written (copy and fsync). This thread, in the generator's parent
    process, runs a passive checkpoint every ``interval`` seconds beside the
    writers (SQLite lets a checkpoint run while a transaction writes; the
    sqlite3 module releases the GIL meanwhile). A passive checkpoint cannot
    finish while writers keep appending, and the WAL file is only reused
    from its start after one has: once the WAL holds ``restart_bytes``
    of pages (20 MiB: 5000 pages of 4 KiB, 1280 of 16 KiB), the thread
    copies what is left under ``write_lock`` (the pages of the last
    fraction of a second) so the next writer starts the WAL over. The
    writers' own autocheckpoint stays as the backstop.
    """

    def __init__(
        self, path: str, write_lock, *, interval: float = 0.5, restart_bytes: int = 20 * 2**20
    ) -> None:
        self.path = path
        self.write_lock = write_lock
        self.interval = interval
        self.restart_bytes = restart_bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="wal-checkpoint")

    def __enter__(self) -> "WalCheckpointer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            log.warning("%s: no background checkpoints (%s); writers checkpoint themselves", self.path, exc)
            return
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            while not self._stop.wait(self.interval):
                frames = self._checkpoint(db)
                if frames * page_size >= self.restart_bytes:
                    self._checkpoint(db)  # most of what came meanwhile, outside the lock
                    if self.write_lock.acquire(timeout=1.0):  # a worker that died holding it: skip
                        try:
                            self._checkpoint(db)
                        finally:
                            self.write_lock.release()
        except sqlite3.Error as exc:
            log.warning("%s: background checkpoints stopped (%s); writers checkpoint themselves", self.path, exc)
        finally:
            db.close()

    @staticmethod
    def _checkpoint(db: sqlite3.Connection) -> int:
        """One passive checkpoint; return the pages in the WAL (0 when it is not in WAL mode)."""
        _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return max(frames, 0)
