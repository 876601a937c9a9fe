"""HTTP/1.1 bytes to and from :class:`~certstatus.server.connection.HttpProtocol` without sockets.

Shared by the HTTP edge's tests (edge cache, responder): an in-memory
transport (:class:`Wire`), a loop with only ``time()``, request builders
(:func:`post`, :func:`get`: the demo CA's path ``/demo``) and :func:`split`,
which cuts a written response into (status, headers, body).
"""

from __future__ import annotations

import base64
import time

NONCE = b"0123456789abcdef"


class Wire:
    """An in-memory asyncio transport: what the protocol writes, and whether it closed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Loop:
    def time(self) -> float:
        return time.monotonic()


def post(der: bytes, path: str = "/demo", *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: ocsp", "Content-Type: application/ocsp-request", f"Content-Length: {len(der)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + der


def get(der: bytes, method: str = "GET", *headers: str) -> bytes:
    lines = [f"{method} /demo/{base64.b64encode(der).decode()} HTTP/1.1", "Host: ocsp", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def exchange(state, raw: bytes) -> bytes:
    """Open a connection of :class:`~certstatus.server.connection.HttpProtocol` on ``state``, send
    ``raw``, return every byte written back."""
    from certstatus.server.connection import HttpProtocol

    wire = Wire()
    protocol = HttpProtocol(state, Loop())
    protocol.connection_made(wire)
    protocol.data_received(raw)
    return bytes(wire.data)
