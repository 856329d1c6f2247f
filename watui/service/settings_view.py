"""The settings as the UI's settings screen shows them: dotted names, every secret masked."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, SecretStr

from watui.service.models import SettingRow

SECRET_MASK = "********"
#: What an unset setting means where it is not "watui sizes it itself".
UNSET_MEANINGS = {"send.max_outage_s": "wait forever"}


def settings_rows(settings: BaseModel, prefix: str = "") -> list[SettingRow]:
    """Flatten a settings model into dotted names, masking every secret that is set."""
    rows: list[SettingRow] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            rows.extend(settings_rows(value, prefix=f"{dotted}."))
        elif isinstance(value, SecretStr):
            rows.append(
                SettingRow(dotted, SECRET_MASK if value.get_secret_value() else "(not set)")
            )
        elif name == "database_url":
            rows.append(SettingRow(dotted, mask_url_password(str(value))))
        elif value is None:
            rows.append(SettingRow(dotted, UNSET_MEANINGS.get(dotted, "auto")))
        else:
            rows.append(SettingRow(dotted, _format_value(value)))
    return rows


def mask_url_password(url: str) -> str:
    """``postgresql+asyncpg://user:secret@host/db`` -> ``...user:********@host/db``."""
    return _URL_PASSWORD.sub(rf"\1{SECRET_MASK}@", url)


_URL_PASSWORD = re.compile(r"(//[^:/@]*:)[^@/]*@")


def _format_value(value: object) -> str:
    if value is None:
        return "auto"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ", ".join(_format_value(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
