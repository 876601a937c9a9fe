"""The connection slots of the admin listener: the limits, the deadlines, and who gives way.

:class:`ConnectionSlots` admits at most :data:`MAX_CONNECTIONS` connections,
:data:`MAX_PER_ADDRESS` of them from one client address. A connection whose
request has not been admitted (authenticated) yet gives its slot up to a
newer one when the slots are all taken (the oldest first): silent or slow
clients that cannot authenticate never keep an operator out. Only admitted
requests make a newcomer wait, and it is then closed at once.

Each connection has a deadline for the whole of its current phase, not for
a single read: the request head within ``head_timeout`` of the accept; the
body within ``body_timeout`` plus a second per :data:`BODY_BYTES_PER_SECOND`
declared, from its admission. :meth:`ConnectionSlots.sweep` closes overdue
connections. Closing means ``shutdown()`` on the socket: its thread's
blocked read returns and the thread ends. What was closed is logged at most
every :data:`LOG_INTERVAL` seconds, counted.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

log = logging.getLogger("certstatus.admin")

#: Admin connections open at once.
MAX_CONNECTIONS = 16
#: Admin connections open at once from one client address.
MAX_PER_ADDRESS = 8
#: The slowest upload rate the body deadline allows for (bytes per second): 256 MiB in ~4.5 min.
BODY_BYTES_PER_SECOND = 1024 * 1024
#: Seconds between two log lines about connections the listener closed.
LOG_INTERVAL = 10.0


@dataclass(eq=False)
class Slot:
    """One open connection: its client address, socket descriptor, accept time and deadline
    (``time.monotonic()`` seconds; None while the listener itself works on it)."""

    address: str
    fd: int
    opened: float
    deadline: float | None
    authenticated: bool = False


class ConnectionSlots:
    """The open connections of one listener: the limits, the deadlines and who gives way (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[Slot] = []
        self._closed: collections.Counter[str] = collections.Counter()
        self._refused = 0
        self._logged_at = float("-inf")

    def take(self, address: str, fd: int, head_timeout: float) -> Slot | None:
        """A slot for a connection just accepted, or None (close it: authenticated requests hold them all)."""
        with self._lock:
            mine = [slot for slot in self._open if slot.address == address]
            full = len(mine) >= MAX_PER_ADDRESS and not self._make_room(mine, "to make room for a newer connection from the same address")
            full = full or (len(self._open) >= MAX_CONNECTIONS and not self._make_room(self._open, "to make room for a newer connection"))
            if full:
                self._refused += 1
                return None
            now = time.monotonic()
            slot = Slot(address, fd, now, now + head_timeout)
            self._open.append(slot)
            return slot

    def _make_room(self, among: list[Slot], why: str) -> bool:
        waiting = [slot for slot in among if not slot.authenticated]
        if not waiting:
            return False
        self._close(min(waiting, key=lambda slot: slot.opened), why)
        return True

    def _close(self, slot: Slot, why: str) -> None:
        """Shut the connection down under its thread's feet; the lock is held, so that thread has
        not released the slot, nor closed the descriptor (it releases first, then closes)."""
        self._open.remove(slot)
        self._closed[why] += 1
        try:
            with socket.socket(fileno=os.dup(slot.fd)) as twin:
                twin.shutdown(socket.SHUT_RDWR)  # its blocked read returns: the thread ends
        except OSError:
            pass

    def wait(self, slot: Slot) -> None:
        """The listener works on this connection now (admission, the API): no deadline runs."""
        with self._lock:
            slot.deadline = None

    def authenticated(self, slot: Slot, body_bytes: int, body_timeout: float) -> None:
        """Its request was admitted: it no longer gives way, and its body has its deadline."""
        with self._lock:
            slot.authenticated = True
            slot.deadline = time.monotonic() + body_timeout + body_bytes / BODY_BYTES_PER_SECOND

    def holds(self, slot: Slot) -> bool:
        """False once the listener has closed the connection (to make room, or at its deadline)."""
        with self._lock:
            return slot in self._open

    def release(self, slot: Slot) -> None:
        """The connection's thread is done with it (call before closing the socket)."""
        with self._lock:
            if slot in self._open:
                self._open.remove(slot)

    def sweep(self) -> None:
        """Close the connections past their deadline; log what was closed, at most every LOG_INTERVAL."""
        with self._lock:
            now = time.monotonic()
            for slot in [s for s in self._open if s.deadline is not None and s.deadline < now]:
                self._close(slot, "request head not complete in time" if not slot.authenticated else "body not complete in time")
            if (self._closed or self._refused) and now - self._logged_at >= LOG_INTERVAL:
                closed = ", ".join(f"{count} {why}" for why, count in self._closed.items())
                if self._refused:
                    log.warning("admin listener: %d new connection(s) closed unanswered: authenticated requests hold "
                                "every slot (%d, %d per address)%s", self._refused, MAX_CONNECTIONS, MAX_PER_ADDRESS,
                                f"; also closed: {closed}" if closed else "")  # fmt: skip
                else:
                    log.info("admin listener closed connection(s): %s", closed)
                self._closed.clear()
                self._refused = 0
                self._logged_at = now
