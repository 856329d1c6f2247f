"""Settings: precedence, the settings file, one-line errors naming setting and source, secrets."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from watui.settings import Settings, SettingsError, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "settings.example.toml"
TOKEN = "EAAG-very-secret-token-123"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./watui.toml or user config from the developer's machine."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.send.rate == 80
    assert settings.retry.delays == [5.0, 10.0]
    assert settings.whatsapp.api_version == "v23.0"
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


def test_precedence_cli_over_env_over_toml_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_toml(tmp_path, "[send]\nrate = 10\nflush_max_rows = 7\n[http]\ntimeout = 9\n")
    monkeypatch.setenv("WATUI_SEND__RATE", "20")
    monkeypatch.setenv("WATUI_HTTP__TIMEOUT", "11")
    settings = load_settings({"send": {"rate": 30}}, config_file=path)
    assert settings.send.rate == 30  # command line beats env and file
    assert settings.http.timeout == 11  # env beats file
    assert settings.send.flush_max_rows == 7  # file beats default
    assert settings.send.flush_interval_ms == 200  # default
    del settings
    assert load_settings(config_file=path).send.rate == 20


def test_watui_config_variable_and_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "watui.toml").write_text("[send]\nrate = 5\n")
    assert load_settings().send.rate == 5
    other = tmp_path / "other.toml"
    other.write_text("[send]\nrate = 6\n")
    monkeypatch.setenv("WATUI_CONFIG", str(other))
    assert load_settings().send.rate == 6


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=tmp_path / "nope.toml")
    message = str(caught.value)
    assert "nope.toml" in message and "--config" in message and "\n" not in message


@pytest.mark.parametrize(
    ("where", "expected_source"),
    [("toml", "settings file"), ("env", "environment variable WATUI_SEND__RATE"),
     ("cli", "the command line")],
)  # fmt: skip
def test_invalid_setting_names_setting_and_source(
    where: str, expected_source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = {}
    path = None
    if where == "toml":
        path = write_toml(tmp_path, "[send]\nrate = -1\n")
    elif where == "env":
        monkeypatch.setenv("WATUI_SEND__RATE", "-1")
    else:
        overrides = {"send": {"rate": -1}}
    with pytest.raises(SettingsError) as caught:
        load_settings(overrides, config_file=path)
    message = str(caught.value)
    assert "send.rate" in message and expected_source in message
    assert "greater than 0" in message and "\n" not in message


@pytest.mark.parametrize(
    ("retry", "expected"),
    [({"max_retries": 11}, "retry.max_retries"), ({"delays": [5, 0]}, "above 0"),
     ({"delays": [86_401]}, "at most 86400")],
)  # fmt: skip
def test_retry_settings_have_the_bounds_a_campaign_has(retry: dict, expected: str) -> None:
    """The setup form fills a campaign's retry policy from the settings: a value the settings
    accept must not be one that creating the campaign then refuses."""
    with pytest.raises(SettingsError) as caught:
        load_settings({"retry": retry})
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[send]\nrat = 5\n")
    with pytest.raises(SettingsError, match=r"send\.rat .*not a known setting"):
        load_settings(config_file=path)


def test_secret_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATUI_WHATSAPP__ACCESS_TOKEN", TOKEN)
    settings = load_settings()
    assert settings.whatsapp.access_token.get_secret_value() == TOKEN
    for text in (
        repr(settings),
        str(settings),
        repr(settings.whatsapp),
        settings.model_dump_json(),
    ):
        assert TOKEN not in text
    # A wrong value of a secret is reported without echoing it.
    path = write_toml(tmp_path, "[whatsapp]\naccess_token = 12345678901\n")
    monkeypatch.delenv("WATUI_WHATSAPP__ACCESS_TOKEN")
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file=path)
    assert "access_token" in str(caught.value)
    assert "12345678901" not in str(caught.value)


def _uncommented_example() -> str:
    """The example with every ``# key = value`` line uncommented (the first of repeated keys)."""
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    section = ""
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("["):
            section = line
            lines.append(line)
            continue
        match = re.match(r"^# (\w+) = (.+)$", line)
        if match and (section, match.group(1)) not in seen:
            seen.add((section, match.group(1)))
            lines.append(f"{match.group(1)} = {match.group(2)}")
    return "\n".join(lines)


def _field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            paths |= _field_paths(kind, f"{prefix}{name}.")
        else:
            paths.add(prefix + name)
    return paths


def _value_paths(data: dict, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict):
            paths |= _value_paths(value, f"{prefix}{key}.")
        else:
            paths.add(prefix + key)
    return paths


def test_example_documents_every_setting_and_validates(tmp_path: Path) -> None:
    text = _uncommented_example()
    assert _value_paths(tomllib.loads(text)) == _field_paths(Settings)
    path = tmp_path / "example.toml"
    path.write_text(text)
    settings = load_settings(config_file=path)  # as a user's fully uncommented copy would load
    assert settings.send.rate == 80 and settings.http.http2 is False


def test_example_defaults_match_the_model() -> None:
    """The values shown are the defaults (except the unset ones and the per-user database)."""
    values = tomllib.loads(_uncommented_example())
    defaults = Settings().model_dump()
    for group, fields in values.items():
        if not isinstance(fields, dict):
            continue
        for name, shown in fields.items():
            default = defaults[group][name]
            if default is None:
                continue
            if hasattr(default, "get_secret_value"):
                default = default.get_secret_value()
            assert shown == default, f"{group}.{name}: example shows {shown!r}, default {default!r}"
