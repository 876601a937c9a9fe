"""The peers certstatus is measured against, each started on a 127.0.0.1 port.

* ``openssl ocsp`` (the live-signing baseline), always with ``-multi N``.
  OpenSSL 3.0's responder loops forever reading a connection closed before
  any byte arrived — exactly what wrk's address probe does before the run.
  With ``-multi`` the responders are children that the parent replaces when
  they die, so :class:`ProbeReaper` kills a child whose connection sits in
  CLOSE_WAIT (only the probe's does: wrk never closes first) and the run
  goes on with a fresh one.
* nginx serving one static response file (the ceiling for precomputed serving).
* CFSSL ``ocspserve`` fed a response file (one base64 DER response per line).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from common import SERVER_CPU, children, server

_NGINX_COMMON = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  server {{
    listen 127.0.0.1:{port};
    {location}
  }}
}}
"""


def _nginx_config(folder: Path, port: int, location: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(_NGINX_COMMON.format(dir=folder, port=port, location=location))
    return config


@contextmanager
def nginx_static(folder: Path, port: int, response_der: bytes, *, cpus: str | None = SERVER_CPU):
    """nginx answering every GET/POST with one static OCSP response file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "response.der").write_bytes(response_der)
    location = (
        f"location / {{ root {folder}; default_type application/ocsp-response; "
        "try_files /response.der =404; error_page 405 =200 /response.der; }"
    )
    config = _nginx_config(folder, port, location)
    with server(["nginx", "-c", str(config), "-p", str(folder)], port, cpus=cpus) as process:
        yield process


def _close_wait_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "08":  # CLOSE_WAIT: the peer closed, this side did not
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return inodes


class ProbeReaper(threading.Thread):
    """Kill `openssl ocsp -multi` children spinning on a connection the client closed."""

    def __init__(self, parent_pid: int) -> None:
        super().__init__(daemon=True)
        self.parent_pid = parent_pid
        self.stop = threading.Event()
        self.reaped = 0

    def run(self) -> None:
        suspects: set[int] = set()
        while not self.stop.wait(0.1):
            closed = _close_wait_inodes()
            stuck = {pid for pid in children(self.parent_pid) if _socket_inodes(pid) & closed}
            for pid in stuck & suspects:  # seen twice in a row: not a response being finished
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.reaped += 1
                except ProcessLookupError:
                    pass
            suspects = stuck


@contextmanager
def openssl_responder(fixture, port: int, *, multi: int = 1, cpus: str | None = SERVER_CPU):
    """``openssl ocsp -multi N`` answering from the fixture's index.txt, signing every response."""
    pki = fixture.pki
    command = [
        "openssl", "ocsp", "-index", str(fixture.index), "-port", str(port),
        "-rsigner", str(pki.ocsp_cert), "-rkey", str(pki.ocsp_key), "-CA", str(pki.ca_cert),
        "-ndays", "1", "-multi", str(multi),
    ]  # fmt: skip
    with server(command, port, cpus=cpus, cwd=fixture.folder) as process:
        reaper = ProbeReaper(process.pid)
        reaper.start()
        try:
            yield process
        finally:
            reaper.stop.set()
            reaper.join()


@contextmanager
def cfssl_ocspserve(responses_file: Path, port: int, *, cpus: str | None = SERVER_CPU):
    """CFSSL's ``ocspserve`` loading ``responses_file`` (base64 DER responses, one per line)."""
    command = ["cfssl", "ocspserve", "-address", "127.0.0.1", "-port", str(port),
               "-responses", str(responses_file), "-loglevel", "5"]  # fmt: skip
    with server(command, port, cpus=cpus) as process:
        yield process
