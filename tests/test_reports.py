"""Delivery figures, ``watui report`` and ``watui export`` against real SQLite and PostgreSQL,
over outcomes and deliveries rows seeded with counters equal to the rows."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.delivery_seed import Outcomes, big_counters, seed_big_campaign, seed_outcomes
from tests.factories import make_campaign
from watui.cli.main import main
from watui.errors import BackendError
from watui.service import exports
from watui.service.exports import export_to_file
from watui.storage import Database
from watui.storage.campaigns import counters_match_rows
from watui.storage.reports import delivery_percentiles, iter_export_rows

ROOT = Path(__file__).resolve().parent.parent
MIXED = Outcomes(read=20, delivered=30, sent_only=10, failed_before=5, failed_after=7,
                 in_doubt=3, unconfirmed=2, skipped=1)


@pytest.fixture
def seeded(database_url: str) -> int:
    """A 100-recipient campaign "spring" with every kind of outcome (CLI tests run the real
    ``main``, which starts its own event loop, so the seeding runs in one of its own too)."""

    async def seed() -> int:
        async with Database(database_url) as db:
            campaign_id = await make_campaign(db, "spring", recipients_per_step=100)
            await seed_outcomes(db, campaign_id, MIXED)
            assert await counters_match_rows(db, campaign_id) == {}
            return campaign_id

    return asyncio.run(seed())


def run(database_url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--database-url", database_url, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_json_has_the_delivery_figures_and_the_invariant_holds(
    seeded: int, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(database_url, capsys, "status", "spring", "--json")
    shown = json.loads(out)
    assert code == 0
    assert (shown["delivered"], shown["read"], shown["unconfirmed"], shown["failed_after"]) == (
        50, 20, 2, 7)
    parts = ("sent", "failed", "skipped", "in_doubt", "unconfirmed", "pending")
    assert shown["total"] == sum(shown[name] for name in parts) == 100
    assert shown["read"] <= shown["delivered"] <= shown["sent"]
    assert shown["failures_by_code"] == {
        "131049": {"count": 7, "meaning": shown["failures_by_code"]["131049"]["meaning"],
                   "before_acceptance": 0, "after_acceptance": 7},
        "131026": {"count": 5, "meaning": "message undeliverable (not on WhatsApp or an old app)",
                   "before_acceptance": 5, "after_acceptance": 0},
    }
    assert "engagement" in shown["failures_by_code"]["131049"]["meaning"]
    assert sum(item["count"] for item in shown["failures_by_code"].values()) == shown["failed"]


def test_human_status_shows_delivered_and_read_shares(
    seeded: int, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(database_url, capsys, "status", "spring")
    assert code == 0
    assert "Delivered:" in out and "50 (83.3% of sent)" in out
    assert "20 (33.3% of sent)" in out and "Unconfirmed:" in out
    assert "131049" in out and "131026" in out


def test_report_json_funnel_codes_countries_pricing_and_percentiles(
    seeded: int, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(database_url, capsys, "report", "spring", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["funnel"]["accepted"] == 67  # 60 sent + 7 failed after acceptance
    assert (report["funnel"]["delivered"], report["funnel"]["read"]) == (50, 20)
    assert report["funnel"]["delivered_share"] == pytest.approx(50 / 67)
    assert report["by_country"] == [
        {"region": "US", "name": "United States", "recipients": 100, "delivered": 50}]
    assert report["by_pricing_category"] == {"marketing": 50, "none": 7}
    # Delivered 2 s after acceptance plus 1 s per recipient (the read ones first: 0..19, then
    # the delivered ones 0..29): 50 values, nearest rank.
    expected = sorted([2.0 + i for i in range(20)] + [2.0 + i for i in range(30)])
    assert report["delivery_seconds"] == {
        "p50": expected[24], "p90": expected[44], "p99": expected[49]}
    assert report["failures_by_code"]["131049"]["after_acceptance"] == 7
    over_time = report["over_time"]
    assert len(over_time) == 60 and over_time[0]["from"] == "2026-05-28T20:26:42Z"
    assert sum(span["delivered"] for span in over_time) == 50
    assert sum(span["read"] for span in over_time) == 20 and over_time[-1]["read"] == 1


def test_report_text_draws_the_funnel(
    seeded: int, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(database_url, capsys, "report", "spring")
    assert code == 0
    funnel = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:6]}
    assert funnel == {"accepted": ["67", "100.0%"], "delivered": ["50", "74.6%"],
                      "read": ["20", "29.9%"]}
    assert "United States" in out and "Time to deliver: p50 14.0 s, p90 " in out


async def test_percentiles_are_none_before_any_delivery(database: Database) -> None:
    campaign_id = await make_campaign(database, "quiet", recipients_per_step=10)
    assert await delivery_percentiles(database, campaign_id, (0.5,)) == {0.5: None}


def test_export_csv_and_jsonl_carry_every_recipient_and_the_late_failure(
    seeded: int, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(database_url, capsys, "export", "spring")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 100
    first = rows[0]
    assert first["status"] == "sent" and first["delivered_at"].endswith("Z")
    assert first["read_at"] and first["pricing_category"] == "marketing"
    assert first["accepted_at"] == "2026-05-28T20:26:40Z"
    late = [row for row in rows if row["error_code"] == "131049"]
    assert len(late) == 7 and all(row["failed_at"] and row["error_details"] for row in late)
    code, out, _ = run(database_url, capsys, "export", "spring", "--format", "jsonl",
                       "--status", "failed")
    failed = [json.loads(line) for line in out.splitlines()]
    assert len(failed) == 12 and {row["error_code"] for row in failed} == {131026, 131049}
    assert failed[0]["accepted_at"] is None


def test_export_to_a_file_writes_it_whole(
    seeded: int, database_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "out.jsonl"
    code, _, err = run(database_url, capsys, "export", "spring", "--format", "jsonl",
                       "--output", str(target))
    assert code == 0 and "100 recipients written" in err
    assert len(target.read_text().splitlines()) == 100
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


async def test_an_export_that_fails_leaves_no_file_behind(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await make_campaign(database, "spring", recipients_per_step=20_000)
    target = tmp_path / "out.csv"
    chunks = 0

    async def fail_after_two_chunks(*args: object, **kwargs: object) -> AsyncIterator[object]:
        nonlocal chunks
        async for row in iter_export_rows(database, seeded, chunk=1_000):
            yield row
            chunks += 1
            if chunks == 2_500:
                raise RuntimeError("the database went away")

    monkeypatch.setattr(exports, "iter_export_rows", fail_after_two_chunks)
    with pytest.raises(RuntimeError):
        await export_to_file(database, seeded, target, "csv")
    assert chunks == 2_500
    assert list(tmp_path.glob("*out.csv*")) == []
    with pytest.raises(BackendError, match="cannot write"):
        await export_to_file(database, seeded, tmp_path / "missing" / "out.csv", "csv")


@pytest.mark.parametrize(("argv", "fragment"), [
    (("export", "spring", "--status", "nope"), "unknown status 'nope'"),
    (("export", "spring", "--format", "xml"), "unknown format 'xml'"),
    (("export", "ghost"), "no campaign named 'ghost'"),
    (("report", "ghost"), "no campaign named 'ghost'"),
])
def test_bad_export_and_report_input_is_one_line_exit_2(
    seeded: int, database_url: str, capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...], fragment: str,
) -> None:
    code, out, err = run(database_url, capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("watui: error: ") and err.count("\n") == 1 and fragment in err


@pytest.mark.slow
def test_a_million_recipient_export_streams_in_constant_memory(tmp_path: Path) -> None:
    """1,000,000 recipients with deliveries rows, exported by a real ``watui export``
    process: every row once, the late failures' codes, and a peak RSS that does not grow
    with the campaign (a list of the rows alone would take over 500 MB)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'big.db'}"

    async def seed() -> None:
        async with Database(url) as db:
            await seed_big_campaign(db, "big", 1_000_000)

    asyncio.run(seed())
    output = tmp_path / "big.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "watui", "--database-url", url, "export", "big", "--output",
         str(output)], env={**os.environ, "PYTHONPATH": str(ROOT)})
    peak = peak_rss_mb(process, seconds=120)
    assert process.wait() == 0
    assert 0 < peak < 200, f"peak RSS {peak:.0f} MB"
    expected = big_counters(1_000_000)
    statuses: Counter[str] = Counter()
    delivered = late = 0
    with output.open(newline="") as handle:
        for row in csv.DictReader(handle):
            statuses[row["status"]] += 1
            delivered += bool(row["delivered_at"])
            late += row["error_code"] == "131049"
    assert sum(statuses.values()) == 1_000_000
    assert statuses["sent"] == expected["sent"] and statuses["failed"] == expected["failed"]
    assert delivered == expected["delivered"] and late == expected["failed_after"]


def peak_rss_mb(process: subprocess.Popen[bytes], seconds: float) -> float:
    """The process's own peak RSS (VmHWM restarts at exec; a child's rusage would count the
    big test process it was forked from), read until it ends; killed after ``seconds``."""
    peak = 0.0
    deadline = time.monotonic() + seconds
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the export took more than {seconds} s")
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
        time.sleep(0.1)
    return peak
