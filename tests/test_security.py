"""Security: secrets never leave the process, webhooks are verified, the database is private,
and no shell command or SQL text is ever built from what a user typed."""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults import running_mock
from watui.mockapi.server import MockCloudApi, sign, status_update
from watui.service.live import LiveBackend
from watui.service.models import RetryFilter
from watui.settings import Settings
from watui.whatsapp.webhooks import verify_signature

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "EAAG-test-token-ZZ9-distinctive-7c1f0e4b"  # fake; hyphens keep it from looking real
APP_SECRET = "appsecretQQ5distinctive-90d2"
SECRETS = (TOKEN, APP_SECRET)


@pytest.fixture
async def mock_api() -> AsyncIterator[MockCloudApi]:
    async with running_mock(access_token=TOKEN, app_secret=APP_SECRET, latency=(0.0, 0.003),
                            reset_rate=0.1, fail_suffixes={"7": 131026}, seed=3) as mock:
        yield mock


async def watui(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watui", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        _, stderr = await process.communicate()
        raise AssertionError(f"watui {' '.join(args)} hung: {stderr.decode()[-2000:]}") from None
    return process.returncode or 0, stdout.decode(), stderr.decode()


def secret_env(tmp_path: Path, mock: MockCloudApi) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATUI_")}
    env.update({
        "WATUI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db' / 'watui.db'}",
        "WATUI_WHATSAPP__ACCESS_TOKEN": TOKEN,
        "WATUI_WHATSAPP__APP_SECRET": APP_SECRET,
        "WATUI_WHATSAPP__PHONE_NUMBER_ID": "1000001",
        "WATUI_WHATSAPP__WABA_ID": "2000002",
        "WATUI_WHATSAPP__API_BASE_URL": mock.base_url,
        "WATUI_RETRY__DELAYS": "[0.05, 0.1]",
        "WATUI_SAFETY__MAX_FAILURE_RATE": "1.0",
    })
    return env


def contacts_file(path: Path) -> Path:
    lines = ["phone,first_name"] + [f"+3460000{index:04d},Ana{index}" for index in range(1, 61)]
    lines += ["not-a-phone,Bad", "+34600000001,Duplicate"]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_a_full_run_never_writes_the_token_or_app_secret_anywhere(
    tmp_path: Path, mock_api: MockCloudApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    env = secret_env(tmp_path, mock_api)
    contacts = contacts_file(tmp_path / "contacts.csv")
    outputs: list[str] = []

    async def step(*args: str, expect: int | None = 0, extra: dict[str, str | None] | None = None) -> None:
        merged = {**env, **(extra or {})}
        code, stdout, stderr = await watui(
            *args, env={key: value for key, value in merged.items() if value is not None}
        )
        outputs.extend([stdout, stderr])
        if expect is not None:
            assert code == expect, (args, stderr)

    await step("templates", "sync")
    await step("campaign", "create", "spring", "--template", "flash_sale", "--language", "en_US",
               "--contacts", str(contacts), "--body-params", "first_name")
    await step("campaign", "create", "dupe", "--template", "t", "--language", "en_US",
               "--contacts", str(contacts))
    await step("run", "spring", "--rate", "500")
    await step("status", "spring")
    await step("status", "spring", "--json")
    await step("campaign", "list", "--json")
    await step("campaign", "rejects", "spring", "--csv")
    await step("retry", "spring", "--in-doubt")
    # Failures must not echo secrets either: a refused token, a bad setting, a bad database.
    await step("run", "dupe", expect=3, extra={"WATUI_WHATSAPP__ACCESS_TOKEN": TOKEN + "-wrong"})
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text(f'[whatsapp]\naccess_token = ["{TOKEN}"]\napp_secret = {{ s = "{APP_SECRET}" }}\n')
    await step("--config", str(bad_toml), "status", "spring", expect=2,
               extra={"WATUI_WHATSAPP__ACCESS_TOKEN": None, "WATUI_WHATSAPP__APP_SECRET": None})
    await step("status", "spring", expect=2, extra={"WATUI_WHATSAPP__ACCESS_TOKEN": "",
                                                     "WATUI_WHATSAPP__API_VERSION": "latest"})
    await step("templates", "sync", expect=None, extra={"WATUI_WHATSAPP__ACCESS_TOKEN": TOKEN + "x"})

    settings = Settings(database_url=env["WATUI_DATABASE_URL"], whatsapp={
        "access_token": TOKEN, "app_secret": APP_SECRET, "api_base_url": mock_api.base_url})
    backend = await LiveBackend.open(settings)
    try:
        exported = await backend.export_retry_queue("spring", RetryFilter(), tmp_path / "retry.csv")
        outputs.append(repr(settings))
        outputs.append(str(backend.settings_view()))
    finally:
        await backend.shutdown()
    assert exported > 0, "the export must hold rows for the check to mean anything"
    assert mock_api.stats()["accepted"] > 0

    files = [tmp_path / "retry.csv", *sorted((tmp_path / "db").iterdir()),
             *sorted((ROOT / "snapshots").rglob("*.svg"))]
    blobs = [text.encode() for text in outputs] + [path.read_bytes() for path in files]
    blobs.append(caplog.text.encode())
    for secret in SECRETS:
        for index, blob in enumerate(blobs):
            assert secret.encode() not in blob, f"secret found in output #{index}"
            assert secret.encode("utf-16-le") not in blob


async def test_the_database_file_the_cli_creates_is_private(tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "watui.db"
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATUI_")}
    env["WATUI_DATABASE_URL"] = f"sqlite+aiosqlite:///{database}"
    old_umask = os.umask(0o022)
    try:
        code, _, stderr = await watui("campaign", "list", env=env)
    finally:
        os.umask(old_umask)
    assert code == 0, stderr
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700


# ----- webhook signatures -----

def test_webhook_signature_from_the_mock_verifies() -> None:
    raw = (b'{"object":"whatsapp_business_account","entry":[]}')
    assert verify_signature(raw, sign(raw, APP_SECRET), APP_SECRET)
    import json

    update = json.dumps(status_update("wamid.X", "+34600000001", "delivered")).encode()
    assert verify_signature(update, sign(update, APP_SECRET), APP_SECRET)


@pytest.mark.parametrize("header", [
    None, "", "sha256=", "sha1=abc", "sha256=zz", "sha256=" + "0" * 64, "garbage",
    "sha256=ｆｆ", "SHA256=" + "0" * 64,
])
def test_webhook_signature_refuses_missing_and_garbled_headers(header: str | None) -> None:
    assert not verify_signature(b"{}", header, APP_SECRET)


def test_webhook_signature_refuses_tampered_bodies_and_wrong_secrets() -> None:
    raw = b'{"statuses":[{"status":"read"}]}'
    header = sign(raw, APP_SECRET)
    assert not verify_signature(raw.replace(b"read", b"sent"), header, APP_SECRET)
    assert not verify_signature(raw + b" ", header, APP_SECRET)
    assert not verify_signature(raw, header, APP_SECRET + "x")
    assert not verify_signature(raw, sign(raw, ""), "")  # no secret configured: never trust
    flipped = header[:-1] + ("0" if header[-1] != "0" else "1")
    assert not verify_signature(raw, flipped, APP_SECRET)
    assert verify_signature(raw, header.upper().replace("SHA256=", "sha256="), APP_SECRET)


def test_webhook_verifier_compares_in_constant_time() -> None:
    source = (ROOT / "watui" / "whatsapp" / "webhooks.py").read_text()
    assert "hmac.compare_digest" in source
    verifier = source.split("def verify_signature", 1)[1].split("\ndef ", 1)[0]
    assert "==" not in verifier


# ----- no shell, no SQL from user text -----

def _python_files() -> list[Path]:
    return sorted((ROOT / "watui").rglob("*.py"))


def test_no_shell_is_ever_started() -> None:
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"}:
                    offenders.append(f"{path}:{node.lineno} {name}")
                for keyword in node.keywords:
                    if keyword.arg == "shell" and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                    ):
                        offenders.append(f"{path}:{node.lineno} shell=")
                if name.endswith("create_subprocess_shell"):
                    offenders.append(f"{path}:{node.lineno} {name}")
    assert offenders == []


def test_no_sql_text_is_built_with_formatting() -> None:
    """text(), exec_driver_sql() and execute() take literal SQL only; values go in as binds."""
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = ast.unparse(node.func).rsplit(".", 1)[-1]
            if name not in {"text", "exec_driver_sql", "execute", "executemany", "executescript"}:
                continue
            first = node.args[0]
            built = isinstance(first, ast.JoinedStr | ast.BinOp) or (
                isinstance(first, ast.Call) and ast.unparse(first.func).endswith(".format")
            )
            if built:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(first)[:60]}")
    assert offenders == []


HOSTILE_NAMES = [
    "x'; DROP TABLE recipients; --",
    'Robert"); DELETE FROM campaigns; --',
    "a;b;c",
    "$(touch pwned) `id` | rm -rf /",
    "1 OR 1=1",
]


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
async def test_campaign_names_and_columns_with_sql_and_shell_text_are_just_text(
    tmp_path: Path, hostile: str
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATUI_")}
    env["WATUI_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'watui.db'}"
    column = hostile.replace(",", " ")
    contacts = tmp_path / "c.csv"
    quoted = '"' + column.replace('"', '""') + '"'
    contacts.write_text(f'phone,{quoted}\n+34600000001,"{hostile.replace(chr(34), chr(34) * 2)}"\n')
    code, stdout, stderr = await watui(
        "campaign", "create", hostile, "--template", "t", "--language", "en_US", "--contacts",
        str(contacts), "--body-params", column, env=env, )
    assert code == 0, stderr
    code, stdout, stderr = await watui("status", hostile, "--json", env=env)
    assert code == 0, stderr
    assert f'"name": {__import__("json").dumps(hostile)}' in stdout
    code, stdout, _ = await watui("campaign", "list", "--json", env=env)
    assert stdout.count('"name"') == 1
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    code, _, stderr = await watui("campaign", "delete", hostile, env=env)
    assert code == 0, stderr
