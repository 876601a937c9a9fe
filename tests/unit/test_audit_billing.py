"""The audit log writer (lines, rotation shared by processes) and the billing report over it."""

from __future__ import annotations

import datetime as dt
import json
import os

from certstatus.audit import AuditLog
from certstatus.billing import billing_report, log_files

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)


def _record(n: int, requestor: str, issuer: str, statuses: list[str], status: str = "successful") -> dict:
    return {
        "time": T0 + dt.timedelta(hours=n), "client": "192.0.2.1", "tls_client": None, "requestor_name_claimed": None,
        "signer": None, "requestor": requestor, "issuer": issuer,
        "certs": [{"serial": f"{n:x}", "cert_id_hash": "sha1", "status": s} for s in statuses],
        "response_status": status, "source": "live", "nonce": False, "reason": None, "latency_us": 100,
    }


def test_records_become_one_json_line_each_with_utc_times(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    for n in range(3):
        log.write(_record(n, "CN=a", "ca1", ["good"]))
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["certs"][0]["serial"] for line in lines] == ["0", "1", "2"]
    assert lines[1]["time"] == "2026-11-01T13:00:00.000000Z"


def test_two_writers_share_one_file_and_rotate_it_without_losing_a_line(tmp_path):
    path = tmp_path / "audit.log"
    # Two writers on one file, as two worker processes have: each its own descriptor.
    first = AuditLog(str(path), max_bytes=4000, backup_count=50)
    second = AuditLog(str(path), max_bytes=4000, backup_count=50)
    for n in range(200):
        (first if n % 2 else second).write(_record(n, "CN=a", "ca1", ["good"]))
    first.close()
    second.close()
    files = log_files(path)
    assert len(files) > 2 and files[-1] == str(path)
    assert all(os.path.getsize(f) <= 4000 for f in files)
    serials = sorted(int(json.loads(line)["certs"][0]["serial"], 16) for f in files for line in open(f))
    assert serials == list(range(200))


def test_a_file_renamed_by_logrotate_is_reopened(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    log.write(_record(0, "CN=a", "ca1", ["good"]))
    log.close()  # flushed; a new writer below plays the running process after the rename
    log = AuditLog(str(path))
    os.rename(path, tmp_path / "audit.log-20261101")
    log.write(_record(1, "CN=a", "ca1", ["good"]))
    log.close()
    assert json.loads(path.read_text())["certs"][0]["serial"] == "1"


def test_billing_counts_certificates_of_successful_answers_per_requestor_and_day(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    records = [
        _record(0, "CN=a", "ca1", ["good", "revoked"]),
        _record(1, "CN=a", "ca2", ["unknown"]),
        _record(2, "CN=b", "ca1", [None], status="unauthorized"),
        _record(30, "CN=a", "ca1", ["good"]),  # the next day
        _record(80, "CN=b", "ca1", ["good"]),  # after the period
    ]
    for record in records:
        log.write(record)
    log.close()
    with open(path, "a") as handle:
        handle.write("not json\n")
    report = billing_report(log_files(path), T0, T0 + dt.timedelta(days=2), by="requestor", per="day")
    rows = {(row.key, row.period): row.counts for row in report.rows}
    assert rows[("CN=a", "2026-11-01")] == {"requests": 2, "certificates": 3, "good": 1, "revoked": 1, "unknown": 1, "refused": 0}
    assert rows[("CN=a", "2026-11-02")]["certificates"] == 1
    assert rows[("CN=b", "2026-11-01")] == {"requests": 1, "certificates": 0, "good": 0, "revoked": 0, "unknown": 0, "refused": 1}
    assert report.bad_lines == 1 and report.totals()["certificates"] == 4

    by_issuer = billing_report(log_files(path), T0, T0 + dt.timedelta(days=2), by="issuer")
    assert {row.key: row.counts["certificates"] for row in by_issuer.rows} == {"ca1": 3, "ca2": 1}


def test_billing_report_without_dates_counts_the_current_month(tmp_path):
    """`certstatus billing report --log FILE` alone: this month (UTC), from its first day to the next month's."""
    from click.testing import CliRunner

    from certstatus.cli import main
    from certstatus.cli.operations import month_bounds

    now = dt.datetime.now(dt.timezone.utc)
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    for when, requestor in ((first + dt.timedelta(minutes=1), "CN=this-month"), (first - dt.timedelta(minutes=1), "CN=last-month")):
        log.write({**_record(0, requestor, "ca1", ["good"]), "time": when})
    log.close()
    result = CliRunner().invoke(main, ["billing", "report", "--log", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["from"], report["to"]) == month_bounds(now)
    assert [row["requestor"] for row in report["rows"]] == ["CN=this-month"]


def test_month_bounds_cross_the_year():
    from certstatus.cli.operations import month_bounds

    assert month_bounds(dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.timezone.utc)) == ("2026-12-01", "2027-01-01")
    assert month_bounds(dt.datetime(2027, 2, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == ("2027-01-01", "2027-02-01")


def test_an_unauthenticated_request_is_billed_to_its_address_never_to_the_name_it_claims(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    claimed = _record(0, None, "ca1", ["good"])
    claimed["requestor_name_claimed"] = "CN=Big Customer"
    log.write(claimed)
    log.write(_record(1, "CN=a", "ca1", ["good"]))
    log.close()
    report = billing_report(log_files(path), T0, T0 + dt.timedelta(days=1), by="requestor")
    assert sorted(row.key for row in report.rows) == ["192.0.2.1", "CN=a"]
