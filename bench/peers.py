"""The precomputed-serving peers, each started on a 127.0.0.1 port (live signing is
compared with `openssl ocsp` in bench/load.py).

* nginx serving one static response file (the ceiling for precomputed serving).
* CFSSL ``ocspserve`` fed a response file (one base64 DER response per line).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from common import SERVER_CPU, server

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
    listen 127.0.0.1:{port}{tls};
    {location}
  }}
}}
"""


def _nginx_config(folder: Path, port: int, location: str, tls: tuple[Path, Path] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "nginx.conf"
    # TLS 1.2 and 1.3, as certstatus ([tls] min_version = "1.2"); nginx 1.22 offers 1.3 only when told.
    listen = f" ssl;\n    ssl_certificate {tls[0]};\n    ssl_certificate_key {tls[1]};\n    ssl_protocols TLSv1.2 TLSv1.3" if tls else ""
    config.write_text(_NGINX_COMMON.format(dir=folder, port=port, location=location, tls=listen))
    return config


@contextmanager
def nginx_static(folder: Path, port: int, response_der: bytes, *, cpus: str | None = SERVER_CPU,
                 tls: tuple[Path, Path] | None = None):
    """nginx answering every GET/POST with one static OCSP response file; over TLS with ``tls``
    (certificate, key: PEM files), nginx's TLS defaults otherwise (session tickets, no session cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "response.der").write_bytes(response_der)
    # POST to a static file is 405 in nginx: error_page turns it into an internal GET of the file.
    location = (
        f"root {folder}; default_type application/ocsp-response; "
        "location / { error_page 405 =200 /response.der; try_files /response.der =404; } "
        "location = /response.der { }"
    )
    config = _nginx_config(folder, port, location, tls)
    with server(["nginx", "-c", str(config), "-p", str(folder)], port, cpus=cpus, https=tls is not None) as process:
        yield process


@contextmanager
def cfssl_ocspserve(responses_file: Path, port: int, *, cpus: str | None = SERVER_CPU):
    """CFSSL's ``ocspserve`` loading ``responses_file`` (base64 DER responses, one per line)."""
    command = ["cfssl", "ocspserve", "-address", "127.0.0.1", "-port", str(port),
               "-responses", str(responses_file), "-loglevel", "5"]  # fmt: skip
    with server(command, port, cpus=cpus) as process:
        yield process
