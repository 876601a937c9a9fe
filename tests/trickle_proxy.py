"""A TCP proxy that passes what a client sends at once and trickles the server's answer back, one byte at a time.

For the fetch deadline tests of protocols without a test server of their own
that can trickle (LDAP: a real slapd behind it).

    with TrickleProxy(("127.0.0.1", slapd.port), seconds_per_byte=1.0) as proxy:
        url = f"ldap://127.0.0.1:{proxy.port}/cn=CA,o=Test"
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TrickleProxy:
    """Listens on 127.0.0.1 (free port); each connection is relayed to ``upstream``. A context manager."""

    def __init__(self, upstream: tuple[str, int], seconds_per_byte: float = 1.0) -> None:
        self.upstream = upstream
        self.seconds_per_byte = seconds_per_byte
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()

    def __enter__(self) -> "TrickleProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress (closing does not)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pass, args=(client, server), daemon=True).start()
            threading.Thread(target=self._trickle, args=(server, client), daemon=True).start()

    @staticmethod
    def _pass(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)

    def _trickle(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError), source, sink:
            while not self._closed.is_set() and (data := source.recv(65536)):
                for byte in data:
                    sink.sendall(bytes([byte]))
                    time.sleep(self.seconds_per_byte)
