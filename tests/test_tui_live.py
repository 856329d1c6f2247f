"""Pilot tests of the main flows on the REAL stack: LiveBackend over a SQLite file, the real
engine and client, and the mock Cloud API on loopback. The screens are driven as a person would;
the database and the mock's ledger say what really happened."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from tests.factories import running_mock
from tests.spec import spec_errors
from watui.demo_data import write_demo_contacts
from watui.errors import BackendError, CampaignError
from watui.mockapi.server import MockCloudApi
from watui.service.live import LiveBackend
from watui.service.models import (
    ButtonColumn,
    CampaignSpec,
    CampaignState,
    RecipientState,
    RetryFilter,
    StepSpec,
)
from watui.service.open import open_live_backend
from watui.service.settings_view import SECRET_MASK
from watui.settings import Settings
from watui.storage import campaigns as campaign_store
from watui.storage import templates as template_store
from watui.storage.database import Database
from watui.tui.app import WatuiApp
from watui.tui.screens.campaigns import CampaignsScreen
from watui.tui.screens.monitor import MonitorScreen
from watui.tui.screens.retry_queue import RetryQueueScreen
from watui.tui.screens.setup import SetupScreen
from watui.whatsapp.client import WhatsAppClient

pytestmark = pytest.mark.usefixtures("tui_deterministic")

TOKEN = "live-test-token"


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, latency=(0.0, 0.005), seed=3) as mock:
        yield mock


@pytest.fixture
async def backend(
    sqlite_url: str, mock_api: MockCloudApi
) -> AsyncIterator[LiveBackend]:
    settings = Settings(
        database_url=sqlite_url,
        whatsapp={"access_token": TOKEN, "phone_number_id": "1000001", "waba_id": "2000002",
                  "api_base_url": mock_api.base_url},
        send={"rate": 200, "flush_interval_ms": 50},
        retry={"max_retries": 1, "delays": [0.2]},
    )
    live = await open_live_backend(
        settings, lambda: WhatsAppClient(settings.whatsapp, settings.http)
    )
    await template_store.sync_templates(live.db, live.client)
    try:
        yield live
    finally:
        await live.shutdown()


def contacts(tmp_path: Path, count: int) -> Path:
    return write_demo_contacts(tmp_path / "contacts.csv", count, bad_every=10)


def live_app(backend: LiveBackend, tmp_path: Path) -> WatuiApp:
    return WatuiApp(backend, refresh_interval=0.1, start_dir=tmp_path)


async def wait_for(pilot: Pilot[int], ready: Callable[[], bool], seconds: float = 10) -> None:
    """Let the app run (timers, workers, the engine) until ``ready()``; fail after ``seconds``."""
    for _ in range(int(seconds / 0.05)):
        if ready():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"not ready after {seconds} s")


async def fill_setup(pilot: Pilot[int], app: WatuiApp, name: str, path: Path) -> SetupScreen:
    """Open setup and fill one step: order_update with its image header, from ``path``."""
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen))
    screen = app.screen
    assert isinstance(screen, SetupScreen)
    await wait_for(pilot, lambda: len(screen.query_one("#template", Select)._options) > 1)
    screen.query_one("#name", Input).value = name
    screen.query_one("#template", Select).value = "order_update|en_US"
    screen.query_one("#contacts", Input).value = str(path)
    await wait_for(pilot, lambda: screen.query_one("#contacts-preview", DataTable).row_count > 0)
    screen.query_one("#body-params", Input).value = "first_name, order"
    screen.query_one("#header-param", Input).value = "photo"
    return screen


async def db_status(db: Database, name: str) -> dict:  # type: ignore[type-arg]
    return (await campaign_store.campaign_status(db, name)).as_json()


async def assert_consistent(db: Database, name: str, mock: MockCloudApi) -> dict:  # type: ignore[type-arg]
    """No in_doubt, counters equal rows, nobody accepted twice by the API."""
    summary = await db_status(db, name)
    assert summary["in_doubt"] == 0
    assert await campaign_store.counters_match_rows(db, summary["id"]) == {}
    per_phone = Counter(entry.to for entry in mock.ledger)
    assert per_phone and max(per_phone.values()) == 1
    return summary


async def make_campaign(backend: LiveBackend, path: Path, name: str, rate: float) -> None:
    await backend.create_campaign(CampaignSpec(
        name, (StepSpec("order_update", "en_US", str(path), ("first_name", "order"), "photo"),),
        rate=rate, max_retries=1, retry_delays=(0.2,),
    ))


async def test_create_through_setup_then_watch_it_complete(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    path = contacts(tmp_path, 150)
    app = live_app(backend, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fill_setup(pilot, app, "live-promo", path)
        screen.query_one("#rate", Input).value = "45"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        monitor = app.screen
        progress = monitor.query_one("#progress", Static)
        seen: list[str] = []

        def moved() -> bool:
            text = str(progress.content)
            if not seen or seen[-1] != text:
                seen.append(text)
            return "135/135" in text

        await wait_for(pilot, moved, seconds=15)
        assert len(seen) >= 3, f"the progress never moved in between: {seen}"
        await wait_for(pilot, lambda: "completed" in str(monitor.query_one("#status-line",
                                                                          Static).content))
    summary = await assert_consistent(backend.db, "live-promo", mock_api)
    # 150 rows, every 10th invalid: 135 queued, all sent at the rate chosen on the screen.
    assert (summary["status"], summary["sent"], summary["invalid"]) == ("completed", 135, 15)
    assert summary["rate"] == 45
    assert len(mock_api.ledger) == 135


async def test_pause_and_resume_from_the_monitor(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    await make_campaign(backend, contacts(tmp_path, 200), "pausable", rate=60)
    await backend.start("pausable")
    app = live_app(backend, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        status_line = app.screen.query_one("#status-line", Static)
        await wait_for(pilot, lambda: "RUNNING" in str(status_line.content))
        await wait_for(pilot, lambda: len(mock_api.ledger) >= 20)
        await pilot.press("space")
        await wait_for(pilot, lambda: "PAUSED" in str(status_line.content))
        paused = await db_status(backend.db, "pausable")
        assert paused["status"] == "paused" and paused["in_doubt"] == 0
        assert 0 < paused["sent"] < 180
        accepted_at_pause = len(mock_api.ledger)
        await pilot.pause(0.3)
        assert len(mock_api.ledger) == accepted_at_pause, "sent while paused"
        await pilot.press("space")
        await wait_for(pilot, lambda: "RUNNING" in str(status_line.content)
                       or "completed" in str(status_line.content))
        assert (await db_status(backend.db, "pausable"))["status"] in ("running", "completed")
        await wait_for(pilot, lambda: "completed" in str(status_line.content), seconds=15)
        log = "\n".join(strip.text for strip in app.screen.query_one("#events").lines)
        assert "pause" in log.lower()
    summary = await assert_consistent(backend.db, "pausable", mock_api)
    assert (summary["status"], summary["sent"]) == ("completed", 180)


async def test_retry_failed_from_the_retry_queue(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    mock_api.update_config({"fail_suffixes": {"3": 131000}})  # every number ending in 3
    await make_campaign(backend, contacts(tmp_path, 100), "flaky", rate=200)
    await backend.start("flaky")
    app = live_app(backend, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: backend.is_sending("flaky") is False, seconds=15)
        failed = await db_status(backend.db, "flaky")
        assert failed["status"] == "completed" and failed["failed"] == 10  # 3, 13, ..., 93
        mock_api.update_config({"fail_suffixes": {}})
        await app.push_screen(RetryQueueScreen("flaky"))
        screen = app.screen
        await wait_for(pilot, lambda: screen.query_one(DataTable).row_count == 10)
        await pilot.press("R")
        await pilot.press("y")
        await wait_for(pilot, lambda: backend.is_sending("flaky") is False
                       and screen.current_page is not None and screen.current_page.total == 0,
                       seconds=15)
        await pilot.press("q")
        assert isinstance(app.screen, CampaignsScreen)
    summary = await assert_consistent(backend.db, "flaky", mock_api)
    assert (summary["status"], summary["sent"], summary["failed"]) == ("completed", 90, 0)


async def test_monitor_before_and_after_a_run(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    await make_campaign(backend, contacts(tmp_path, 20), "draft-one", rate=100)
    row = await backend.campaign_status("draft-one")
    assert row.status is CampaignState.DRAFT and row.rate is None and row.eta_seconds is None
    assert await backend.metrics("draft-one") is None  # never sent: "Not sending."
    await backend.start("draft-one")
    for _ in range(200):
        if not backend.is_sending("draft-one"):
            break
        await asyncio.sleep(0.05)
    after = await backend.metrics("draft-one")
    assert after is not None and after.sent == 18 and after.pending == 0
    assert after.eta_seconds is None and sum(after.sent_per_s) <= 18
    assert 1 <= len(after.sent_per_s) <= 5, "the chart shows the run, not minutes before it"
    await asyncio.sleep(1.1)  # the last second of the run is complete now
    assert sum((await backend.metrics("draft-one")).sent_per_s) == 18  # type: ignore[union-attr]
    row = await backend.campaign_status("draft-one")
    assert row.status is CampaignState.COMPLETED and row.rate is None
    page = await backend.retry_queue("draft-one", RetryFilter(), 0, 50)
    assert page.total == 0 and page.rows == ()


async def test_validation_report_matches_what_the_import_rejects(
    backend: LiveBackend, tmp_path: Path
) -> None:
    path = tmp_path / "dupes.csv"
    path.write_text(
        "phone,first_name,order,photo\n"
        "+12015550001,Ana,A-1,https://x/1.jpg\n"
        "12-3,Bruno,A-2,https://x/2.jpg\n"
        "+1 201 555 0001,Chen,A-3,https://x/3.jpg\n"
        "+12015550002,Dara,A-4,https://x/4.jpg\n",
        encoding="utf-8",
    )
    report = await backend.validate_contacts(path, "phone", None)
    assert (report.valid, report.invalid_total, report.duplicate_total) == (2, 1, 1)
    assert report.duplicates[0].line == 4 and report.duplicates[0].reason == "duplicate of line 2"
    await make_campaign(backend, path, "dupes", rate=10)
    rejects = await campaign_store.list_rejects(backend.db, "dupes")
    assert [(r.line, r.reason) for r in rejects][1] == (4, "duplicate of line 2")
    assert (await db_status(backend.db, "dupes"))["total"] == report.valid


async def test_send_test_uses_the_templates_header_kind_and_the_first_rows_values(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    path = contacts(tmp_path, 3)
    payloads: list[dict] = []  # type: ignore[type-arg]
    send = backend.client.send

    async def recording(payload):  # type: ignore[no-untyped-def]
        payloads.append(payload)
        return await send(payload)

    backend.client.send = recording
    step = StepSpec("order_update", "en_US", str(path), ("first_name", "order"), "photo")
    result = await backend.send_test(step, "+1 201 555 7777")
    assert result.ok and result.detail.startswith("accepted: wamid.")
    await make_campaign(backend, path, "saved", rate=10)
    assert (await backend.send_test("saved", "+12015557778")).ok
    for payload in payloads:
        header, body = payload["template"]["components"]
        assert header["parameters"][0]["image"]["link"].startswith("https://example.com/orders/")
        assert [item["text"] for item in body["parameters"]][1] == "A-10000"
    sent = [entry.to for entry in mock_api.ledger]
    assert sent == ["+12015557777", "+12015557778"]
    mock_api.update_config({"fail_suffixes": {"7779": 131026}})
    refused = await backend.send_test("saved", "+12015557779")
    assert not refused.ok and refused.detail.startswith("131026")
    with pytest.raises(BackendError, match="phone"):
        await backend.send_test(step, "12")


async def test_settings_view_masks_the_token_and_the_database_password(
    backend: LiveBackend,
) -> None:
    rows = {row.name: row.value for row in backend.settings_view()}
    assert rows["whatsapp.access_token"] == SECRET_MASK and TOKEN not in repr(rows)
    assert rows["send.rate"] == "200"


async def test_retry_queue_pages_filters_exports_and_skips_on_the_database(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    mock_api.update_config({"fail_suffixes": {"3": 131026}})  # permanent: failed at once
    await make_campaign(backend, contacts(tmp_path, 100), "bounced", rate=500)
    await backend.start("bounced")
    for _ in range(200):
        if not backend.is_sending("bounced"):
            break
        await asyncio.sleep(0.05)
    first = await backend.retry_queue("bounced", RetryFilter(), 0, 6)
    second = await backend.retry_queue("bounced", RetryFilter(), 6, 6)
    assert (first.total, len(first.rows), len(second.rows), second.offset) == (10, 6, 4, 6)
    assert not {row.id for row in first.rows} & {row.id for row in second.rows}
    assert {(row.status, row.code, row.attempts) for row in first.rows} == {
        (RecipientState.FAILED, 131026, 1)
    }
    assert "undeliverable" in first.rows[0].meaning
    assert (await backend.retry_queue("bounced", RetryFilter(code=131000), 0, 50)).total == 0
    assert (await backend.retry_queue(
        "bounced", RetryFilter(status=RecipientState.RETRY), 0, 50)).total == 0
    exported = tmp_path / "out" / "bounced.csv"
    exported.parent.mkdir()
    assert await backend.export_retry_queue("bounced", RetryFilter(code=131026), exported) == 10
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("phone,status,attempts,error_code") and len(lines) == 11
    assert ",failed,1,131026," in lines[1]
    with pytest.raises(BackendError, match="cannot write"):
        await backend.export_retry_queue("bounced", RetryFilter(), tmp_path / "no" / "x.csv")
    assert await backend.skip("bounced", (first.rows[0].id,)) == 1
    summary = await db_status(backend.db, "bounced")
    assert (summary["failed"], summary["skipped"]) == (9, 1)
    assert await campaign_store.counters_match_rows(backend.db, summary["id"]) == {}


async def test_retry_policy_chosen_in_setup_is_stored_for_every_process(
    backend: LiveBackend, tmp_path: Path
) -> None:
    """`watui run` and a restarted UI read the policy from the campaign's row, not this process."""
    step = StepSpec("order_update", "en_US", str(contacts(tmp_path, 5)), ("first_name", "order"),
                    "photo")  # fmt: skip
    await backend.create_campaign(CampaignSpec("own", (step,), max_retries=0, retry_delays=(3,)))
    stored = (await campaign_store.campaign_status(
        backend.db, "own", retry_defaults=backend.settings.retry
    )).as_json()
    assert stored["retry"] == {
        "max_retries": 0, "delays": (3.0,), "max_retries_from": "campaign", "delays_from": "campaign",
    }  # fmt: skip
    with pytest.raises(CampaignError, match="max_retries 11 is out of range"):
        await backend.create_campaign(CampaignSpec("too-many", (step,), max_retries=11))


async def test_button_parameters_from_setup_reach_the_api(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    """The synced template's buttons are offered, and the columns chosen for them travel in
    every request of the campaign and of a test send."""
    parcel = {t.name: t for t in await backend.list_templates()}["parcel_tracking"]
    assert [(b.kind, b.needs_param) for b in parcel.buttons] == [("url", True), ("quick_reply", False)]
    payloads: list[dict] = []  # type: ignore[type-arg]
    send = backend.client.send

    async def recording(payload, on_written=None, url=None):  # type: ignore[no-untyped-def]
        payloads.append(payload)
        return await send(payload, on_written, url)

    backend.client.send = recording
    buttons = (ButtonColumn(0, "url", "order"), ButtonColumn(1, "quick_reply", "first_name"))
    step = StepSpec("parcel_tracking", "en_US", str(contacts(tmp_path, 5)), ("first_name", "order"),
                    buttons=buttons)  # fmt: skip
    assert (await backend.send_test(step, "+12015557777")).ok
    await backend.create_campaign(CampaignSpec("parcels", (step,), start_now=True))
    for _ in range(200):
        if (await db_status(backend.db, "parcels"))["status"] == "completed":
            break
        await asyncio.sleep(0.05)
    await assert_consistent(backend.db, "parcels", mock_api)
    assert len(payloads) == 6
    for payload in payloads:
        assert spec_errors("TemplateMessage", payload) == []
        url, reply = payload["template"]["components"][1:]
        assert (url["sub_type"], url["index"], reply["sub_type"], reply["index"]) == (
            "url", "0", "quick_reply", "1")
        assert url["parameters"][0]["text"].startswith("A-100")
        assert reply["parameters"][0]["payload"] == payload["template"]["components"][0][
            "parameters"][0]["text"]  # the first name, as mapped


async def test_setup_dry_run_shows_what_starting_then_sends(
    backend: LiveBackend, mock_api: MockCloudApi, tmp_path: Path
) -> None:
    path = contacts(tmp_path, 30)  # every 10th row invalid: 27 to send
    app = live_app(backend, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await fill_setup(pilot, app, "checked", path)
        await pilot.pause()
        await pilot.press("ctrl+t")
        panel = screen.query_one("#check", Static)
        await wait_for(pilot, lambda: "will be sent" in str(panel.content))
        assert "step 1: order_update (UTILITY) en_US: 27 will be sent; not sent: 3 invalid" in str(
            panel.content)
        assert isinstance(app.screen, SetupScreen)  # the draft is saved; the screen stays
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await wait_for(pilot, lambda: "completed" in str(app.screen.query_one("#status-line",
                                                                             Static).content))
    assert len(mock_api.ledger) == 27
