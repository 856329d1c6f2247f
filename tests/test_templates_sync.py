"""`watui templates sync` against the mock fills the templates table; a refused token is one line.

The command runs in-process (it starts its own event loop), so the mock runs on a thread's loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.factories import mock_on_thread, unreachable_url
from watui.cli.main import main
from watui.mockapi.server import MockCloudApi, MockConfig
from watui.storage.database import Database
from watui.storage.rows import TemplateRecord
from watui.storage.templates import list_templates

TOKEN = "test-token-not-a-secret"


@pytest.fixture
def mock_url() -> Iterator[str]:
    """The mock on its own thread and loop, so the synchronous CLI can call it."""
    with mock_on_thread(MockCloudApi(MockConfig(access_token=TOKEN, latency=(0.0, 0.0)))) as api:
        yield api.base_url


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str, mock_url: str) -> str:
    monkeypatch.setenv("WATUI_DATABASE_URL", database_url)
    monkeypatch.setenv("WATUI_WHATSAPP__ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("WATUI_WHATSAPP__WABA_ID", "2000002")
    monkeypatch.setenv("WATUI_WHATSAPP__API_BASE_URL", mock_url)
    return database_url


def stored(database_url: str) -> list[TemplateRecord]:
    async def load() -> list[TemplateRecord]:
        async with Database(database_url) as db:
            return await list_templates(db)

    return asyncio.run(load())


def test_sync_fills_the_templates_table(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "sync"]) == 0
    rows = {row.name: row for row in stored(env)}
    assert capsys.readouterr().out.strip() == f"synced {len(rows)} templates"
    order = rows["order_update"]
    assert (order.status, order.header_format, order.body_param_count) == (
        "APPROVED", "IMAGE", 2)
    assert json.loads(order.buttons)[0]["type"] == "URL"
    assert rows["welcome"].body_param_count == 1  # one named placeholder
    assert {row.status for row in rows.values()} >= {"APPROVED", "PAUSED", "REJECTED"}
    assert main(["templates", "sync"]) == 0  # a second sync replaces, never duplicates
    assert len(stored(env)) == len(rows)


def test_list_json_shows_only_approved(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "sync"]) == 0
    capsys.readouterr()
    assert main(["templates", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed and {item["status"] for item in listed} == {"APPROVED"}


def test_wrong_token_exits_2_with_one_line(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATUI_WHATSAPP__ACCESS_TOKEN", "wrong-secret-value")
    assert main(["templates", "sync"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err and "wrong-secret-value" not in err
    assert stored(env) == []


def test_unreachable_api_exits_2_with_one_line(
    env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATUI_WHATSAPP__API_BASE_URL", unreachable_url())
    assert main(["templates", "sync"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("watui: error: cannot reach")
