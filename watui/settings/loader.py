"""Find the settings file, merge every source, and turn a bad value into one clear line."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError as SourceError

from watui.errors import SettingsError
from watui.settings.model import APP_NAME, TOML_FILE, Settings


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """``--config PATH``, else ``$WATUI_CONFIG``, else ``./watui.toml``, else the user config dir.

    A file named explicitly (option or variable) must exist; the implicit ones are optional.
    """
    named = explicit if explicit is not None else os.environ.get("WATUI_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            source = "--config" if explicit is not None else "WATUI_CONFIG"
            raise SettingsError(f"settings file {path} (from {source}) does not exist")
        return path
    for candidate in (Path("watui.toml"), Path(platformdirs.user_config_dir(APP_NAME)) / "watui.toml"):
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> Settings:
    """Build the settings from command-line ``overrides`` (nested dicts), env, the TOML file.

    Raises SettingsError naming the setting, where its value came from and what is allowed.
    """
    path = find_config_file(config_file)
    if path is not None:
        _check_toml_syntax(path)
    token = TOML_FILE.set(path)
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as error:
        raise SettingsError(_describe(error, overrides or {}, path)) from None
    except SourceError as error:  # a variable pydantic-settings cannot even parse (not JSON)
        first = str(error).strip().splitlines()[0] if str(error).strip() else "cannot parse a setting"
        raise SettingsError(
            f"{first}: a whole group in one variable must be a JSON object, e.g. "
            "WATUI_SEND='{\"rate\": 80}' (or set one field: WATUI_SEND__RATE=80)"
        ) from None
    finally:
        TOML_FILE.reset(token)


def _check_toml_syntax(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"settings file {path} is not valid TOML: {error}") from None
    except OSError as error:
        raise SettingsError(f"settings file {path} cannot be read: {error.strerror}") from None


def _describe(error: ValidationError, overrides: Mapping[str, Any], path: Path | None) -> str:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    name = ".".join(loc)
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "is not a known setting (see settings.example.toml)"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    source = _source_of(loc, overrides, path)
    shown = "" if "secret" in first["type"] or _is_secret(loc) else _shown_input(first)
    return f"setting {name} {shown}from {source}: {message}".replace("  ", " ")


def _is_secret(loc: list[str]) -> bool:
    return bool(loc) and loc[-1] in {"access_token", "app_secret", "verify_token"}


def _shown_input(detail: ErrorDetails) -> str:
    value = detail.get("input")
    if value is None or (isinstance(value, (dict, list)) and len(repr(value)) > 60):
        return ""
    return f"= {value!r} "


def _source_of(loc: list[str], overrides: Mapping[str, Any], path: Path | None) -> str:
    if _dig(overrides, loc) is not _MISSING:
        return "the command line"
    env_name = "WATUI_" + "__".join(part.upper() for part in loc)
    for key in os.environ:
        if key.upper() == env_name or (len(loc) > 1 and key.upper() == "WATUI_" + loc[0].upper()):
            return f"environment variable {key}"
    if path is not None:
        return f"settings file {path}"
    return "the defaults"


_MISSING = object()


def _dig(data: Mapping[str, Any], loc: list[str]) -> object:
    current: object = data
    for part in loc:
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current
