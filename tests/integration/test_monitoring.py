"""The Prometheus alert rules and the Grafana dashboard against what a running certstatus exports.

Two real servers are scraped (``GET /metrics`` on the admin listener):

* one over SQLite with four CAs — ``healthy`` (fresh CRL), ``stale-crl`` (a PKI made ten days ago:
  its CRL's nextUpdate passed three days ago), ``expiring`` (its responder certificate ends in
  4 days, no successor, and its CRL reaches nextUpdate in 30 minutes) and ``signed``
  (precomputed: the background generator reports) — scraped before and after ~3 s of traffic to
  ``healthy`` and ``stale-crl`` and a worker killed with SIGKILL (the supervisor starts another);
* one over a private PostgreSQL cluster that is then stopped (the store unreachable).

The scrapes become promtool rule unit tests (``promtool test rules``): every series of the metrics
an alert reads, with the labels Prometheus adds (job, instance). Counters grow each minute by what
they grew between the two scrapes (steady traffic), or step once from the first value to the
second (one worker restart); gauges keep the value scraped; a ``*_timestamp_seconds`` value is
shifted so that the scrape happened at the test's time 0 (promtool's ``time()`` starts at 0).
Each alert is expected to fire for exactly the CAs the servers were made to show, with its
labels and annotations, and not for the others. The generator backlog cannot be made to stall
in a running server without breaking its signer, so that one test checks that the recorded
(drained) series do not fire, then holds the same series at 500 pending serials with no
signature and expects the alert.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from certstatus.clock import UTC
from certstatus.demo_pki import make_demo_pki, sign_crl
from tests.ocsp_client import request_der
from tests.processes import run_certstatus
from tests.servers import ADMIN_TOKEN, Asker, demo_ca_table, free_port, server_tables, start_server, table
from tests.throwaway_postgres import throwaway_postgres

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "certstatus.json"
PROMTOOL = "promtool"
METRIC = re.compile(r"\bcertstatus_[a-z0-9_]+\b")
DEADLINE = 60.0  # seconds: a bound for something that must happen, not a speed check


@dataclass
class Scrape:
    """One ``/metrics`` answer: Unix time of the scrape and value by (sample name, sorted labels)."""

    at: float
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    instance: str

    @classmethod
    def of(cls, admin_url: str, instance: str) -> "Scrape":
        text = httpx.get(admin_url + "/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30).text
        at = time.time()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return cls(at, samples, instance)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, tuple(sorted(labels.items())))]


def _notation(name: str, labels: tuple[tuple[str, str], ...], instance: str) -> str:
    every = dict(labels, job="certstatus", instance=instance)
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in sorted(every.items()))
    return f"{name}{{{inner}}}"


def gauges(scrape: Scrape, name: str, minutes: int, *, value: float | None = None) -> list[dict]:
    """Every series of gauge ``name`` held at its scraped value (or ``value``) for ``minutes``; a
    ``_timestamp_seconds`` value is taken relative to the scrape time."""
    found = []
    for labels, scraped in scrape.series(name).items():
        held = scraped if value is None else value
        if name.endswith("_timestamp_seconds"):
            held -= scrape.at
        found.append({"series": _notation(name, labels, scrape.instance), "values": f"{held:g}x{minutes}"})
    return found


def counters(before: Scrape, after: Scrape, name: str, minutes: int, *, step_at: int | None = None) -> list[dict]:
    """Every series of counter ``name`` (a series first seen in ``after`` starts from 0): growing each
    minute by what it grew between the scrapes, or (``step_at``) stepping once at that minute."""
    found = []
    for labels, last in after.series(name).items():
        first = before.series(name).get(labels, 0.0)
        if step_at is None:
            values = f"{first:g}+{last - first:g}x{minutes}"
        else:
            values = f"{first:g}x{step_at - 1} {last:g}x{minutes - step_at}"
        found.append({"series": _notation(name, labels, after.instance), "values": values})
    return found


def _rules() -> dict[str, dict]:
    return {rule["alert"]: rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}


def expected(alert: str, instance: str, **labels: str) -> dict:
    """One firing of ``alert``: its labels (the series' plus the rule's) and annotations rendered with them."""
    rule = _rules()[alert]
    every = {"job": "certstatus", "instance": instance, **labels}
    render = lambda text: re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: every[m.group(1)], text)  # noqa: E731
    return {"exp_labels": {**every, **rule.get("labels", {})},
            "exp_annotations": {key: render(text) for key, text in rule.get("annotations", {}).items()}}


def run_promtool_tests(tmp_path: Path, name: str, tests: list[dict]) -> None:
    """Write a promtool rule test file over deploy/prometheus/alerts.yml and run it; AssertionError with its output."""
    path = tmp_path / f"{name}.test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
    done = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool test rules {path}:\n{done.stdout}{done.stderr}"


def _fresh_crl(pki, folder: Path, next_update: dt.timedelta) -> Path:
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    crl = sign_crl(ca, key, [], crl_number=2, this_update=now - dt.timedelta(minutes=1), next_update=now + next_update)
    path = folder / "short-crl.pem"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


def _listening_workers(supervisor: int, port: int) -> list[int]:
    """The children of ``supervisor`` that hold the socket listening on 127.0.0.1:``port`` (its workers)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            inode = fields[9]
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    workers = []
    for child in children:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{child}/fd").iterdir()]
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            workers.append(int(child))
    return workers


def _until(predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def recorded(demo_pki, tmp_path_factory):
    """(before, after) scrapes of the SQLite server, as described above."""
    now = dt.datetime.now(UTC)
    folder = tmp_path_factory.mktemp("monitoring")
    stale = make_demo_pki(tmp_path_factory.mktemp("pki-stale"), now=now - dt.timedelta(days=10))
    expiring = make_demo_pki(tmp_path_factory.mktemp("pki-expiring"), now=now - dt.timedelta(days=360))
    signed = make_demo_pki(tmp_path_factory.mktemp("pki-signed"))
    port, admin = free_port(), free_port()
    config = (server_tables(port, workers=2, admin=admin) + demo_ca_table("healthy", demo_pki)
              + demo_ca_table("stale-crl", stale, path="/stale/")
              + demo_ca_table("expiring", expiring, crl=_fresh_crl(expiring, folder, dt.timedelta(minutes=30)), path="/expiring/")
              + demo_ca_table("signed", signed, path="/signed/", mode="precomputed"))  # fmt: skip
    server = start_server(folder, config, port=port, admin_port=admin)
    try:
        instance = f"127.0.0.1:{admin}"
        _until(lambda: Scrape.of(server.admin_url, instance).series("certstatus_generator_pending_serials"), "the generator reports")
        before = Scrape.of(server.admin_url, instance)
        askers = [Asker(server.url, request_der(demo_pki.leaves["good"], demo_pki.ca_cert)),
                  Asker(server.url + "stale/", request_der(stale.leaves["good"], stale.ca_cert))]
        for asker in askers:
            asker.start()
        time.sleep(3)
        for asker in askers:
            asker.stop.set()
            asker.join()
        assert askers[0].answers > 0 and askers[1].failures, "the stale CA answers tryLater (HTTP 503)"
        workers = _listening_workers(server.process.pid, port)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        _until(lambda: Scrape.of(server.admin_url, instance).value("certstatus_worker_restarts_total") == 1, "the restart is counted")
        after = Scrape.of(server.admin_url, instance)
    finally:
        server.stop()
    return before, after


@pytest.fixture(scope="module")
def store_down(demo_pki, tmp_path_factory):
    """A scrape of a server whose PostgreSQL store was stopped under it."""
    folder = tmp_path_factory.mktemp("monitoring-pg")
    with throwaway_postgres() as postgres:
        port, admin = free_port(), free_port()
        config = (table("server", listen=f"127.0.0.1:{port}", workers=1, database=postgres.dsn)
                  + table("admin", listen=f"127.0.0.1:{admin}", token_file="admin.token") + demo_ca_table("healthy", demo_pki))  # fmt: skip
        (folder / "certstatus.toml").write_text(config)
        run_certstatus("db", "upgrade", "--config", str(folder / "certstatus.toml"))
        server = start_server(folder, config, port=port, admin_port=admin)
        try:
            instance = f"127.0.0.1:{admin}"
            assert Scrape.of(server.admin_url, instance).value("certstatus_store_up") == 1
            postgres.stop()
            _until(lambda: Scrape.of(server.admin_url, instance).value("certstatus_store_up") == 0, "the scrape sees the store down")
            return Scrape.of(server.admin_url, instance)
        finally:
            server.stop()


def test_alert_rules_pass_promtool_check():
    done = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_every_metric_a_rule_or_panel_names_is_in_a_scrape_of_a_running_server(recorded, store_down, tmp_path):
    exported = recorded[1].names() | store_down.names()
    named = {}
    for rule in _rules().values():
        for name in METRIC.findall(rule["expr"]):
            named.setdefault(name, f"alert {rule['alert']}")
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    expressions = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']} has no query"
        for target in panel["targets"]:
            expressions.append((panel["title"], target["expr"]))
            for name in METRIC.findall(target["expr"]):
                named.setdefault(name, f"panel {panel['title']}")
    for variable in dashboard["templating"]["list"]:
        for name in METRIC.findall(json.dumps(variable.get("query", ""))):
            named.setdefault(name, f"variable {variable['name']}")
    missing = {name: where for name, where in named.items() if name not in exported}
    assert not missing, f"named but not exported: {missing}"
    assert {"certstatus_requests_total", "certstatus_generator_pending_serials", "certstatus_signer_expiry_warning"} <= set(named)
    # Every panel query is valid PromQL: promtool checks them as recording rules (Grafana's variables filled in).
    filled = [re.sub(r"\$__rate_interval", "5m", re.sub(r"\$(job|instance|ca)\b", ".*", expr)) for _, expr in expressions]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(filled)]}]}
    queries = tmp_path / "dashboard-queries.rules.yml"
    queries.write_text(yaml.safe_dump(rules))
    done = subprocess.run([PROMTOOL, "check", "rules", str(queries)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_crl_alerts_fire_for_the_stale_and_the_nearly_due_ca(recorded, tmp_path):
    _, after = recorded
    series = gauges(after, "certstatus_data_next_update_timestamp_seconds", 40)
    assert len(series) == 4  # one CRL per CA
    run_promtool_tests(tmp_path, "crl", [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "CertstatusCRLPastNextUpdate",
             "exp_alerts": [expected("CertstatusCRLPastNextUpdate", after.instance, ca="stale-crl")]},
            {"eval_time": "20m", "alertname": "CertstatusCRLNearNextUpdate",
             "exp_alerts": [expected("CertstatusCRLNearNextUpdate", after.instance, ca="expiring")]},
            {"eval_time": "5m", "alertname": "CertstatusCRLNearNextUpdate", "exp_alerts": []},  # not yet for 15 min
        ],
    }])  # fmt: skip


def test_signer_alert_fires_for_the_signer_without_successor(recorded, tmp_path):
    _, after = recorded
    assert after.value("certstatus_signer_expiry_warning", ca="expiring", signer="ocsp") == 1
    run_promtool_tests(tmp_path, "signer", [{
        "interval": "1m", "input_series": gauges(after, "certstatus_signer_expiry_warning", 30),
        "alert_rule_test": [{"eval_time": "15m", "alertname": "CertstatusSignerExpiringWithoutSuccessor",
                             "exp_alerts": [expected("CertstatusSignerExpiringWithoutSuccessor", after.instance, ca="expiring", signer="ocsp")]}],
    }])  # fmt: skip


def test_try_later_alert_fires_for_the_stale_ca_only(recorded, tmp_path):
    before, after = recorded
    assert after.value("certstatus_requests_total", ca="stale-crl", response_status="tryLater", source="") > 0
    run_promtool_tests(tmp_path, "trylater", [{
        "interval": "1m", "input_series": counters(before, after, "certstatus_requests_total", 30),
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "CertstatusTryLaterRateHigh",
             "exp_alerts": [expected("CertstatusTryLaterRateHigh", after.instance, ca="stale-crl")]},
            {"eval_time": "3m", "alertname": "CertstatusTryLaterRateHigh", "exp_alerts": []},  # not yet for 5 min
        ],
    }])  # fmt: skip


def test_worker_restart_and_readiness_alerts_fire(recorded, tmp_path):
    before, after = recorded
    assert after.value("certstatus_ready") == 0  # the stale CA keeps the instance out of rotation
    inputs = counters(before, after, "certstatus_worker_restarts_total", 40, step_at=5) + gauges(after, "certstatus_ready", 40)
    run_promtool_tests(tmp_path, "workers", [{
        "interval": "1m", "input_series": inputs,
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "CertstatusWorkerRestarts", "exp_alerts": []},
            {"eval_time": "6m", "alertname": "CertstatusWorkerRestarts", "exp_alerts": [expected("CertstatusWorkerRestarts", after.instance)]},
            {"eval_time": "30m", "alertname": "CertstatusWorkerRestarts", "exp_alerts": []},  # 15 min after the restart
            {"eval_time": "10m", "alertname": "CertstatusNotReady", "exp_alerts": [expected("CertstatusNotReady", after.instance)]},
        ],
    }])  # fmt: skip


def test_store_alert_fires_when_the_store_is_down_and_not_before(recorded, store_down, tmp_path):
    _, after = recorded
    run_promtool_tests(tmp_path, "store", [
        {"interval": "1m", "input_series": gauges(store_down, "certstatus_store_up", 10),
         "alert_rule_test": [{"eval_time": "3m", "alertname": "CertstatusStoreUnreachable",
                              "exp_alerts": [expected("CertstatusStoreUnreachable", store_down.instance)]}]},
        {"interval": "1m", "input_series": gauges(after, "certstatus_store_up", 10),
         "alert_rule_test": [{"eval_time": "3m", "alertname": "CertstatusStoreUnreachable", "exp_alerts": []}]},
    ])  # fmt: skip


def test_generator_backlog_alert_needs_pending_serials_and_no_signature(recorded, tmp_path):
    before, after = recorded
    assert after.value("certstatus_generator_pending_serials", ca="signed") == 0  # the generator drained it
    assert after.value("certstatus_generator_responses_signed_total", ca="signed") > 0
    signed = counters(before, after, "certstatus_generator_responses_signed_total", 40, step_at=2)
    run_promtool_tests(tmp_path, "generator", [
        {"interval": "1m", "input_series": gauges(after, "certstatus_generator_pending_serials", 40) + signed,
         "alert_rule_test": [{"eval_time": "20m", "alertname": "CertstatusGeneratorBacklogNotDraining", "exp_alerts": []}]},
        {"interval": "1m",
         "input_series": gauges(after, "certstatus_generator_pending_serials", 40, value=500)
                         + gauges(after, "certstatus_generator_responses_signed_total", 40),
         "alert_rule_test": [
             {"eval_time": "10m", "alertname": "CertstatusGeneratorBacklogNotDraining", "exp_alerts": []},  # not yet for 15 min
             {"eval_time": "20m", "alertname": "CertstatusGeneratorBacklogNotDraining",
              "exp_alerts": [expected("CertstatusGeneratorBacklogNotDraining", after.instance, ca="signed")]},
         ]},
    ])  # fmt: skip
