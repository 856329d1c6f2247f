"""The command line contract: campaign and status commands, their output and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.spec import spec_errors
from watui.cli.main import main
from watui.storage import Database, claims
from watui.storage.campaigns import get_campaign
from watui.storage.schema import templates
from watui.whatsapp.payload import build_template_message

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str]):
    """Run ``watui --database-url URL ...`` in-process; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--database-url", database_url, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(
        "phone,first_name,order\n+34612345678,Ana,A-1\n612345679,Bo,A-2\n+34612345678,Cy,A-3\n"
    )
    return path


def create_args(name: str, path: Path, *extra: str) -> list[str]:
    return [
        "campaign", "create", name, "--template", "welcome", "--language", "en_US",
        "--contacts", str(path), "--body-params", "first_name,order", *extra,
    ]  # fmt: skip


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert err.startswith("watui: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_create_list_status_rejects_delete(cli, contacts: Path) -> None:
    code, out, err = cli(*create_args("spring", contacts, "--rate", "40"))
    assert (code, err) == (0, "")
    assert "Created campaign 'spring'" in out
    assert "Total: 1 queued, 1 invalid, 1 duplicates" in out
    assert "watui campaign rejects spring" in out

    code, out, _ = cli("campaign", "list")
    header, row = out.splitlines()
    assert header.split() == [
        "NAME", "STATUS", "TOTAL", "SENT", "FAILED", "PENDING", "INVALID", "CREATED", "(UTC)",
    ]  # fmt: skip
    assert row.split()[:7] == ["spring", "draft", "1", "0", "0", "1", "2"]
    assert header.index("TOTAL") + len("TOTAL") == row.index("1") + 1  # numbers right-aligned

    code, out, _ = cli("campaign", "list", "--json")
    assert [c["name"] for c in json.loads(out)] == ["spring"]

    code, out, _ = cli("status", "spring", "--json")
    status = json.loads(out)
    for key in ("name", "status", "total", "sent", "failed", "pending", "retrying", "in_doubt",
                "invalid", "skipped", "paused_reason", "started_at", "finished_at", "rate",
                "steps"):  # fmt: skip
        assert key in status
    assert (status["total"], status["invalid"], status["rate"]) == (1, 2, 40)

    code, out, _ = cli("status", "spring")
    assert code == 0 and "Pending:" in out and "welcome (en_US)" in out

    code, out, _ = cli("campaign", "rejects", "spring")
    lines = out.splitlines()
    assert lines[0].split() == ["STEP", "LINE", "PHONE", "REASON"]
    assert lines[1].split()[:3] == ["1", "3", "612345679"] and "no country code" in lines[1]
    assert lines[2].split()[:3] == ["1", "4", "+34612345678"]
    assert lines[2].endswith("duplicate of line 2")

    code, out, _ = cli("campaign", "rejects", "spring", "--csv")
    assert out.splitlines()[0] == "step,line,phone,reason"
    assert out.splitlines()[2] == "1,4,+34612345678,duplicate of line 2"

    assert cli("campaign", "delete", "spring")[0] == 0
    assert cli("campaign", "list", "--json")[1].strip() == "[]"


def test_pause_resume_cancel(cli, contacts: Path) -> None:
    cli(*create_args("spring", contacts))
    assert cli("campaign", "pause", "spring")[0] == 0
    status = json.loads(cli("status", "spring", "--json")[1])
    assert status["status"] == "paused" and status["paused_reason"]
    code, _, err = cli("campaign", "pause", "spring")
    assert_one_line_error(code, err, "already paused")
    assert cli("campaign", "resume", "spring")[0] == 0
    code, out, _ = cli("campaign", "cancel", "spring")
    assert code == 0 and "1 recipients skipped" in out
    status = json.loads(cli("status", "spring", "--json")[1])
    assert (status["status"], status["skipped"], status["pending"]) == ("cancelled", 1, 0)


def test_spec_with_two_steps(cli, contacts: Path, tmp_path: Path) -> None:
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "b.csv").write_text("Mobile;code\n0034612345670;X\n")
    spec = tmp_path / "spring.toml"
    spec.write_text(
        'name = "spring"\nrate = 20\n'
        '[[steps]]\ntemplate = "welcome"\nlanguage = "en_US"\ncontacts = "contacts.csv"\n'
        'body_params = ["first_name", "order"]\n'
        '[[steps]]\ntemplate = "reminder"\nlanguage = "es"\ncontacts = "more/b.csv"\n'
        'body_params = ["code"]\nphone_column = "mobile"\ndefault_region = "ES"\n'
    )
    code, _, err = cli("campaign", "create", "--spec", str(spec))
    assert (code, err) == (0, ""), err
    status = json.loads(cli("status", "spring", "--json")[1])
    assert [(s["template"], s["total"]) for s in status["steps"]] == [
        ("welcome", 1),
        ("reminder", 1),
    ]
    assert status["rate"] == 20


@pytest.mark.parametrize(
    ("spec_text", "fragments"),
    [
        ('rate = 5\n[[steps]]\ntemplate="t"\nlanguage="en"\ncontacts="c.csv"\n', ['"name"']),
        ('name = "x"\n', ["[[steps]]"]),
        ('name = "x"\n[[steps]]\ntemplate="t"\ncontacts="c.csv"\n', ["step 1", "'language'"]),
        ('name = "x"\n[[steps]]\ntemplate="t"\nlanguage="en"\ncontacts="c.csv"\nbody_params="a"\n',
         ["body_params must be an array"]),
        ('name = "x"\n[[steps]]\ntemplate="t"\nlanguage="en"\ncontacts="c.csv"\nbody="a"\n',
         ["unknown key 'body'"]),
        ('name = "x"\nsteps = [\n', ["not valid TOML"]),
    ],
)  # fmt: skip
def test_malformed_spec(cli, tmp_path: Path, spec_text: str, fragments: list[str]) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(spec_text)
    code, _, err = cli("campaign", "create", "--spec", str(spec))
    assert_one_line_error(code, err, str(spec), *fragments)
    assert cli("campaign", "list", "--json")[1].strip() == "[]"


def test_button_params_from_options_and_spec(
    cli, database_url: str, contacts: Path, tmp_path: Path
) -> None:
    """A URL button's suffix and a quick reply's payload come from columns, into every request."""
    with_buttons = tmp_path / "buttons.csv"
    with_buttons.write_text("phone,first_name,order,link\n+34612345678,Ana,A-1,track/A-1\n")
    code, _, err = cli(*create_args("opts", with_buttons, "--button-param", "0:link",
                                    "--button-param", "1:order:quick_reply"))  # fmt: skip
    assert (code, err) == (0, "")
    spec = tmp_path / "buttons.toml"
    spec.write_text(
        'name = "spec"\n[[steps]]\ntemplate = "welcome"\nlanguage = "en_US"\n'
        'contacts = "buttons.csv"\nbody_params = ["first_name", "order"]\n'
        'buttons = [{ index = 1, column = "order", sub_type = "quick_reply" }, '
        '{ index = 0, column = "link" }]\n'
    )
    code, _, err = cli("campaign", "create", "--spec", str(spec))
    assert (code, err) == (0, "")
    for name in ("opts", "spec"):
        body = asyncio.run(first_request(database_url, name))
        assert spec_errors("TemplateMessage", body) == []
        assert body["template"]["components"][1:] == [
            {"type": "button", "sub_type": "url", "index": "0",
             "parameters": [{"type": "text", "text": "track/A-1"}]},
            {"type": "button", "sub_type": "quick_reply", "index": "1",
             "parameters": [{"type": "payload", "payload": "A-1"}]},
        ]  # fmt: skip


async def first_request(database_url: str, name: str) -> dict[str, object]:
    """The body the engine would send to the campaign's first recipient."""
    async with Database(database_url) as db:
        campaign = await get_campaign(db, name)
        step = await claims.current_step(db, campaign.id)
        assert step is not None
        claimed = await claims.claim(db, step.id, "test", 1, lease_seconds=60, now=time.time())
    return build_template_message(claimed[0].phone, step.template_name, step.language,
                                  claimed[0].params, None)  # fmt: skip


@pytest.mark.parametrize(
    ("buttons", "fragments"),
    [
        ('"link"', ["buttons must be an array of tables"]),
        ('[{ column = "link" }]', ["button 1: index must be"]),
        ('[{ index = 0 }]', ["button 1: column must name"]),
        ('[{ index = 0, column = "link", kind = "url" }]', ["unknown key 'kind'"]),
        ('[{ index = 0, column = "link", sub_type = "copy_code" }]', ["not 'copy_code'"]),
    ],
)  # fmt: skip
def test_bad_buttons_in_spec(cli, contacts: Path, tmp_path: Path, buttons: str, fragments: list[str]) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        'name = "x"\n[[steps]]\ntemplate = "welcome"\nlanguage = "en_US"\n'
        f'contacts = "contacts.csv"\nbody_params = ["first_name", "order"]\nbuttons = {buttons}\n'
    )
    code, _, err = cli("campaign", "create", "--spec", str(spec))
    assert_one_line_error(code, err, "step 1", *fragments)
    assert cli("campaign", "list", "--json")[1].strip() == "[]"


def status_retry(cli, name: str) -> dict[str, object]:
    return json.loads(cli("status", name, "--json")[1])["retry"]


def test_retry_policy_from_options_and_spec_shown_by_status(
    cli, contacts: Path, tmp_path: Path
) -> None:
    code, _, err = cli(*create_args("own", contacts, "--max-retries", "0", "--retry-delays", "5, 2.5"))
    assert (code, err) == (0, "")
    assert status_retry(cli, "own") == {
        "max_retries": 0, "delays": [5.0, 2.5],
        "max_retries_from": "campaign", "delays_from": "campaign",
    }  # fmt: skip
    out = cli("status", "own")[1]
    assert "Max retries:" in out and "0 (this campaign's own)" in out
    assert "5, 2.5 (this campaign's own)" in out

    assert cli(*create_args("plain", contacts))[0] == 0
    assert status_retry(cli, "plain") == {  # the settings' defaults
        "max_retries": 2, "delays": [5.0, 10.0],
        "max_retries_from": "settings", "delays_from": "settings",
    }  # fmt: skip
    assert "5, 10 (from settings)" in cli("status", "plain")[1]

    spec = tmp_path / "spec.toml"
    spec.write_text(
        'name = "spec"\nmax_retries = 4\nretry_delays = [30, 60]\n'
        '[[steps]]\ntemplate = "welcome"\nlanguage = "en_US"\ncontacts = "contacts.csv"\n'
    )
    assert cli("campaign", "create", "--spec", str(spec), "--max-retries", "1")[0] == 0
    assert status_retry(cli, "spec") == {  # the command line wins over the file
        "max_retries": 1, "delays": [30.0, 60.0],
        "max_retries_from": "campaign", "delays_from": "campaign",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--max-retries", "11"], ["max_retries 11 is out of range", "0 to 10"]),
        (["--retry-delays", "5,soon"], ["--retry-delays '5,soon'", "e.g. --retry-delays 5,10"]),
        (["--retry-delays", "5,0"], ["above 0"]),
        (["--retry-delays", ","], ["at least one delay"]),
        (["--button-param", "link"], ["'link' is not INDEX:COLUMN", "--button-param 0:order_link"]),
        (["--button-param", "x:link"], ["is not INDEX:COLUMN"]),
        (["--button-param", "0:link:call"], ["must be url or quick_reply, not 'call'"]),
        (["--button-param", "12:link"], ["buttons 0 to 9, not 12"]),
        (["--button-param", "0:first_name", "--button-param", "0:order"], ["button 0 is given twice"]),
        (["--button-param", "0:nope"], ["'nope'"]),
    ],
)  # fmt: skip
def test_bad_create_options_are_one_line_and_create_nothing(
    cli, contacts: Path, options: list[str], fragments: list[str]
) -> None:
    code, _, err = cli(*create_args("spring", contacts, *options))
    assert_one_line_error(code, err, *fragments)
    assert cli("campaign", "list", "--json")[1].strip() == "[]"


@pytest.mark.parametrize(
    ("top", "fragments"),
    [
        ('max_retries = "2"', ["max_retries must be a whole number"]),
        ("max_retries = 2.5", ["max_retries must be a whole number"]),
        ("max_retries = 99", ["max_retries 99 is out of range"]),
        ("retry_delays = 5", ["retry_delays must be an array of seconds"]),
        ('retry_delays = ["5"]', ["retry_delays must be an array of seconds"]),
        ("retry_delays = []", ["at least one delay"]),
        ("retries = 2", ["unknown key 'retries'", "name, rate, max_retries, retry_delays, senders, steps"]),
    ],
)
def test_bad_retry_keys_in_spec(cli, contacts: Path, tmp_path: Path, top: str, fragments: list[str]) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        f'name = "x"\n{top}\n'
        '[[steps]]\ntemplate = "welcome"\nlanguage = "en_US"\ncontacts = "contacts.csv"\n'
    )
    code, _, err = cli("campaign", "create", "--spec", str(spec))
    assert_one_line_error(code, err, *fragments)
    assert cli("campaign", "list", "--json")[1].strip() == "[]"


def test_max_retries_must_be_a_number(cli, contacts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(*create_args("spring", contacts, "--max-retries", "many"))
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("watui: error: argument --max-retries") and err.count("\n") == 1


def test_bad_input_is_one_line_and_leaves_nothing(cli, contacts: Path, tmp_path: Path) -> None:
    code, _, err = cli(*create_args("a", tmp_path / "missing.csv"))
    assert_one_line_error(code, err, "missing.csv", "does not exist")
    no_phone = tmp_path / "nophone.csv"
    no_phone.write_text("name,first_name,order\nAna,A,1\n")
    code, _, err = cli(*create_args("b", no_phone))
    assert_one_line_error(code, err, "no 'phone' column", "--phone-column")
    code, _, err = cli(*create_args("c", contacts, "--default-region", "Spain"))
    assert_one_line_error(code, err, "not a known region code")
    code, _, err = cli("campaign", "create", "d", "--template", "welcome")
    assert_one_line_error(code, err, "--language", "--contacts")
    code, _, err = cli("status", "nope")
    assert_one_line_error(code, err, "no campaign named 'nope'")
    for action in ("delete", "rejects", "pause", "resume", "cancel"):
        code, _, err = cli("campaign", action, "nope")
        assert_one_line_error(code, err, "no campaign named 'nope'")
    assert cli("campaign", "list", "--json")[1].strip() == "[]"
    # A name that exists already is refused without touching the first campaign.
    assert cli(*create_args("spring", contacts))[0] == 0
    code, _, err = cli(*create_args("spring", contacts))
    assert_one_line_error(code, err, "already exists")
    assert json.loads(cli("status", "spring", "--json")[1])["total"] == 1


def test_invalid_setting_is_one_line(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATUI_SEND__RATE", "fast")
    code, _, err = cli("campaign", "list")
    assert_one_line_error(code, err, "send.rate", "WATUI_SEND__RATE")


def run_watui(
    *argv: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WATUI_")}
    environment.update(env or {}, PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(cwd / "xdg"))
    return subprocess.run(
        [sys.executable, "-m", "watui", *argv],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_real_process(sqlite_url: str, tmp_path: Path, contacts: Path) -> None:
    """``python -m watui`` as a user runs it: exit codes and one-line errors, no traceback."""
    base = ["--database-url", sqlite_url]
    missing = run_watui(*base, *create_args("a", tmp_path / "nope.csv"), cwd=tmp_path)
    assert missing.returncode == 2
    assert (
        missing.stderr.startswith("watui: error: contacts file") and missing.stderr.count("\n") == 1
    )
    unknown = run_watui(*base, "status", "nope", cwd=tmp_path)
    assert (unknown.returncode, unknown.stderr.count("\n")) == (2, 1)
    bad_setting = run_watui(*base, "campaign", "list", cwd=tmp_path,
                            env={"WATUI_HTTP__TIMEOUT": "-3"})  # fmt: skip
    assert bad_setting.returncode == 2 and "http.timeout" in bad_setting.stderr
    missing_config = run_watui("--config", str(tmp_path / "none.toml"), "campaign", "list",
                               cwd=tmp_path)  # fmt: skip
    assert missing_config.returncode == 2 and "none.toml" in missing_config.stderr
    created = run_watui(*base, *create_args("spring", contacts), cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    listed = run_watui(*base, "campaign", "list", "--json", cwd=tmp_path)
    assert [c["name"] for c in json.loads(listed.stdout)] == ["spring"]


async def _sync_one_template(database_url: str) -> None:
    """A synced 'welcome' template with an image header, two body parameters and a dynamic URL."""
    async with Database(database_url) as db, db.begin() as conn:
        await conn.execute(insert(templates), [{
            "name": "welcome", "language": "en_US", "status": "APPROVED", "body_param_count": 2,
            "header_format": "IMAGE", "synced_at": time.time(),
            "buttons": json.dumps([{"type": "URL", "text": "Track", "url": "https://s.test/{{1}}"}]),
        }])  # fmt: skip


def test_template_problems_name_the_options_or_the_spec_keys(
    cli, database_url: str, contacts: Path, tmp_path: Path
) -> None:
    """The core keys each problem by field; the command line words it as the option to fix, or
    in a spec as the step and key: all of them, on one line, and nothing is created."""
    asyncio.run(_sync_one_template(database_url))
    code, _, err = cli(*create_args("spring", contacts, "--rate", "0"))
    assert_one_line_error(
        code, err, "at most 100000 (--rate)", "has an image header: name its column (--header-param)",
        "button 0 is a URL with a parameter: name its column (--button-param INDEX:COLUMN",
    )  # fmt: skip
    spec = tmp_path / "spring.toml"
    spec.write_text(
        'name = "spring"\n[[steps]]\ntemplate = "welcome"\nlanguage = "en_US"\n'
        'contacts = "contacts.csv"\nbody_params = ["first_name"]\nheader_param = "order"\n'
        'buttons = [{ index = 0, column = "order" }]\n'
        '[[steps]]\ntemplate = "welcome"\nlanguage = "de"\ncontacts = "contacts.csv"\n'
    )
    code, _, err = cli("campaign", "create", "--spec", str(spec))
    assert_one_line_error(code, err, "takes 2 body parameter(s) but 1 column(s) are mapped",
                          "(step 1: body_params)", "has no de translation", "(step 2: language)")  # fmt: skip
    assert "--" not in err.split("error: ", 1)[1]
    assert cli("campaign", "list", "--json")[1].strip() == "[]"
