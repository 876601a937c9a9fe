"""Open the listening socket before anything slow, and say in one line why an address cannot be had.

``certstatus serve`` binds the OCSP socket, and checks that the admin address
is free, right after reading its configuration: before the revocation data is
imported, which may take minutes. An address in use then stops start-up at
once with one paragraph (the address, the process holding it when ``/proc``
tells, the fix) and exit code 2, not a traceback after the import.
``certstatus config check`` runs the same check.

Who holds a port is read from ``/proc/net/tcp`` and ``/proc/net/tcp6`` (the
inode of the listening socket) and ``/proc/PID/fd`` (which process has it
open): Linux only, and only processes this user may look into; otherwise the
socket's owner is named, or nothing.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from certstatus.errors import ConfigError
from certstatus.secret_files import user_name

#: TCP state LISTEN in /proc/net/tcp (include/net/tcp_states.h: TCP_LISTEN = 10).
_LISTEN = "0A"
#: Characters of a command line shown in a message.
_COMMAND_CHARS = 120


@dataclass(frozen=True)
class PortHolder:
    """A process listening on a port: ``pid`` None and ``argv`` empty when ``/proc`` does not tell (another user's)."""

    user: str
    pid: int | None = None
    argv: tuple[str, ...] = ()

    @property
    def command(self) -> str:
        """The command line on one line, shortened to :data:`_COMMAND_CHARS`."""
        text = " ".join(" ".join(word.split()) for word in self.argv) or "?"
        return text if len(text) <= _COMMAND_CHARS else text[: _COMMAND_CHARS - 1] + "…"

    @property
    def is_certstatus(self) -> bool:
        """True when the holder runs ``certstatus`` (the command, or ``python -m certstatus``)."""
        words = self.argv[:4]
        return any(Path(word).name == "certstatus" for word in words[:2]) or any(
            words[i : i + 2] == ("-m", "certstatus") for i in range(len(words) - 1)
        )

    def __str__(self) -> str:
        if self.pid is None:
            return f"a process of user {self.user}"
        return f"process {self.pid} of user {self.user} ({self.command})"


def _listening_inodes(port: int, proc: Path) -> dict[str, int]:
    """{socket inode: owner uid} of the TCP sockets listening on ``port`` (any address, IPv4 and IPv6)."""
    found = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rpartition(":")[2], 16) == port:
                found[fields[9]] = int(fields[7])
    return found


def _parent(pid: int, proc: Path) -> int | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])  # the field after state; the name in (...) may hold spaces


def _argv(pid: int, proc: Path) -> tuple[str, ...]:
    try:
        words = (proc / str(pid) / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return ()
    return tuple(word.decode(errors="replace") for word in words)


def port_holder(port: int, proc: Path = Path("/proc")) -> PortHolder | None:
    """The process listening on TCP ``port``, best effort (see the module docstring); None when unknown.

    Of several processes sharing the socket (a supervisor and its workers)
    the one whose parent does not share it is named.
    """
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    links = {f"socket:[{inode}]" for inode in inodes}
    holders = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in links for fd in (entry / "fd").iterdir()):
                holders.add(int(entry.name))
        except OSError:  # gone, or another user's
            continue
    uid = next(iter(inodes.values()))
    if not holders:
        return PortHolder(user_name(uid))
    pid = min((p for p in holders if _parent(p, proc) not in holders), default=min(holders))
    return PortHolder(user_name(uid), pid, _argv(pid, proc))


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_error(exc: OSError, host: str, port: int, *, where: str, key: str) -> ConfigError:
    """The operator's error for a failed bind of (``host``, ``port``), set by ``key`` in ``where``."""
    address = _address(host, port)
    if exc.errno == errno.EADDRINUSE:
        holder = port_holder(port)
        by = f" by {holder}" if holder is not None else ""
        return ConfigError(where, key, f"{address} is already in use{by}.",
                           f"Stop that process, or choose another port for {key}.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(where, key, f"{host} is not an address of this host.",
                           "Use one of its addresses, or 0.0.0.0 (:: for IPv6) for all of them.")
    if exc.errno == errno.EACCES:
        return ConfigError(where, key, f"listening on port {port} needs privileges this process does not have.",
                           "Use a port from 1024 up, or give the service CAP_NET_BIND_SERVICE (AmbientCapabilities= in the systemd unit).")
    if isinstance(exc, socket.gaierror):
        return ConfigError(where, key, f"{host!r} is not a known host name ({exc.strerror}).", "Write an IP address or a name this host resolves.")
    return ConfigError(where, key, f"cannot listen on {address}: {exc.strerror or exc}.", "Check the address.")


#: Connections the kernel queues for the workers to accept.
BACKLOG = 2048


def bind_address(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (``host``, ``port``), not listening yet; ``OSError`` when the address cannot be had.

    Bound, it fails for an address another socket listens on; not listening,
    it accepts no connection until :func:`start_listening` (the single-CA
    ``serve`` generates responses before it listens).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def start_listening(sock: socket.socket, backlog: int = BACKLOG) -> socket.socket:
    """Let ``sock`` accept connections (non-blocking, as the workers' event loops want it); return it."""
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def bind_listener(host: str, port: int, *, where: str, key: str) -> socket.socket:
    """:func:`bind_address`, with :class:`ConfigError` (see :func:`listen_error`) when it fails."""
    try:
        return bind_address(host, port)
    except OSError as exc:
        raise listen_error(exc, host, port, where=where, key=key) from None


def check_address(host: str, port: int, *, where: str, key: str) -> None:
    """Bind (``host``, ``port``) and release it at once; :class:`ConfigError` as :func:`bind_listener`."""
    bind_listener(host, port, where=where, key=key).close()


def listen_key(settings) -> str:
    """The setting that names the OCSP listener's address, for messages."""
    return "--listen" if settings.server.where == "command line" else "server.listen"


def open_listener(settings) -> socket.socket:
    """Bind the OCSP listener of ``settings`` and check that the admin address is free (start-up, before the import).

    Returns the bound socket, not listening yet (:func:`start_listening`; the
    workers accept from it). Raises :class:`ConfigError` naming the address,
    its holder and the fix.
    """
    sock = bind_listener(settings.server.host, settings.server.port, where=settings.server.where, key=listen_key(settings))
    try:
        if settings.admin is not None:
            check_address(settings.admin.host, settings.admin.port, where=settings.server.where, key="admin.listen")
    except ConfigError:
        sock.close()
        raise
    return sock
