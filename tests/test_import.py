"""CSV import on SQLite and PostgreSQL: encodings, separators, phone rules, duplicates, rejects."""

from __future__ import annotations

import json
import random
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import PhoneNumber
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE
from sqlalchemy import select

from watui.errors import ContactsError, InvalidPhone
from watui.storage import Database
from watui.storage.campaigns import counters_match_rows, list_rejects
from watui.storage.contacts import MAX_FIELD_CHARS, ContactsSource
from watui.storage.creation import NewStep, create_campaign
from watui.storage.phones import PhoneNormaliser, _country_rules
from watui.storage.schema import campaigns, recipients, steps


def write(tmp_path: Path, data: bytes | str, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


async def import_file(
    db: Database, path: Path, name: str = "c", **source: object
) -> tuple[int, list[dict], list[dict]]:
    """Create a one-step campaign; return its id, its recipients and its rejects."""
    created = await create_campaign(
        db, name, [NewStep("welcome", "en_US", ContactsSource(path=path, **source))]
    )
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(recipients.c.line_no, recipients.c.phone, recipients.c.params)
                .where(recipients.c.campaign_id == created.campaign_id)
                .order_by(recipients.c.line_no)
            )
        ).all()
    queued = [{"line": r.line_no, "phone": r.phone, "params": json.loads(r.params)} for r in rows]
    assert await counters_match_rows(db, created.campaign_id) == {}
    return created.campaign_id, queued, await list_rejects(db, name)


async def test_bom_crlf_semicolons_and_params(database: Database, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        b"\xef\xbb\xbfPhone;first_name;order\r\n"
        b"+34612345678;Ana;A-1\r\n+34 612 34 56 79;Bo;A-2\r\n",
    )
    _, queued, rejects = await import_file(database, path, body_params=("first_name", "order"))
    assert rejects == []
    assert queued == [
        {"line": 2, "phone": "+34612345678", "params": {"body": ["Ana", "A-1"]}},
        {"line": 3, "phone": "+34612345679", "params": {"body": ["Bo", "A-2"]}},
    ]


async def test_header_param_goes_into_params(database: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "phone,name,photo\n+34612345678,Ana,https://x.test/a.jpg\n")
    _, queued, _ = await import_file(database, path, body_params=("name",), header_param="photo")
    assert queued[0]["params"] == {"body": ["Ana"], "header": "https://x.test/a.jpg"}
    async with database.engine.connect() as conn:
        mapping = json.loads((await conn.execute(select(steps.c.mapping))).scalar_one())
    assert mapping["header"] == "photo" and mapping["header_format"] == "image"


async def test_national_numbers_with_default_region(database: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n612345678\n0034612345679\n020 7946 0958\n")
    _, queued, rejects = await import_file(database, path, default_region="es")
    assert [row["phone"] for row in queued] == ["+34612345678", "+34612345679"]
    assert [(r.line, r.phone) for r in rejects] == [(4, "020 7946 0958")]
    assert "not a valid phone number (default region ES)" in rejects[0].reason


async def test_bad_rows_are_rejected_with_line_and_reason(
    database: Database, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "phone,name\n"
        "+34612345678,Ana\n"  # 2 ok
        "612345678,Bo\n"  # 3 no country code, no region
        "+34612345678,Dup\n"  # 4 duplicate of 2
        "+1 202 555 0\n"  # 5 wrong field count
        ",Empty\n"  # 6 empty phone
        "+34612345680,\n"  # 7 empty parameter
        "not a phone,X\n"  # 8 garbage
        "\n"  # 9 blank: not a row
        '"+34612345681","Multi\nline"\n'  # 10-11 one row over two lines: ok
        "+999123456,Y\n"  # 12 unknown country code
        "+34 612-345-678,Dup2\n",  # 13 duplicate of 2 after normalisation
    )
    campaign_id, queued, rejects = await import_file(database, path, body_params=("name",))
    assert [(row["line"], row["phone"]) for row in queued] == [
        (2, "+34612345678"),
        (10, "+34612345681"),
    ]
    assert queued[1]["params"] == {"body": ["Multi\nline"]}
    reasons = {r.line: r.reason for r in rejects}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 12, 13]
    assert "has no country code" in reasons[3]
    assert reasons[4] == "duplicate of line 2"
    assert reasons[5] == "has 1 fields, the header has 2"
    assert reasons[6] == "empty phone"
    assert "empty value in column 'name'" in reasons[7]
    assert "not a phone number" in reasons[8]
    assert "country code" in reasons[12]
    assert reasons[13] == "duplicate of line 2"
    async with database.engine.connect() as conn:
        row = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).one()
    assert (row.total, row.invalid) == (2, 8)


async def test_same_number_in_two_steps_is_no_duplicate(database: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "phone\n+34612345678\n")
    source = ContactsSource(path=path)
    created = await create_campaign(
        database, "two", [NewStep("a", "en", source), NewStep("b", "en", source)]
    )
    assert [step.queued for step in created.steps] == [1, 1]
    assert await counters_match_rows(database, created.campaign_id) == {}


async def test_oversized_field_is_a_reject_not_a_crash(database: Database, tmp_path: Path) -> None:
    huge = "x" * (MAX_FIELD_CHARS + 10)
    path = write(tmp_path, f"phone,name\n+34612345678,{huge}\n+34612345679,Bo\n")
    _, queued, rejects = await import_file(database, path, body_params=("name",))
    assert [row["line"] for row in queued] == [3]
    assert rejects[0].line == 2 and "longer than" in rejects[0].reason


async def test_large_file_in_batches(database: Database, tmp_path: Path) -> None:
    lines = ["phone,n"] + [f"+346{i:08d},{i}" for i in range(12_003)]
    lines += ["+34600000000,again", "+34600012002,again"]  # first seen two batches back / just now
    path = write(tmp_path, "\n".join(lines) + "\n")
    _, queued, rejects = await import_file(database, path, body_params=("n",))
    assert len(queued) == 12_003
    assert [(r.line, r.reason) for r in rejects] == [
        (12_005, "duplicate of line 2"),
        (12_006, "duplicate of line 12004"),
    ]
    assert queued[-1] == {"line": 12_004, "phone": "+34600012002", "params": {"body": ["12002"]}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"PK\x03\x04\x00\x00binary", "binary data"),
        (b"phone\n\xff\xfe+34612345678\n", "not UTF-8"),
        (b'{"phone": "+34612345678"}\n', "no 'phone' column"),
        (b"name,mobile\nAna,+34612345678\n", "no 'phone' column"),
    ],
)
async def test_unusable_files_are_one_line_errors_and_leave_nothing(
    database: Database, tmp_path: Path, content: bytes, message: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ContactsError, match=message) as caught:
        await import_file(database, path)
    assert "\n" not in str(caught.value)
    async with database.engine.connect() as conn:
        assert (await conn.execute(select(campaigns))).all() == []


async def test_undecodable_bytes_late_in_the_file_roll_everything_back(
    database: Database, tmp_path: Path
) -> None:
    good = "".join(f"+346{i:08d}\n" for i in range(20_000))
    path = write(tmp_path, b"phone\n" + good.encode() + b"+34\xff\n")
    with pytest.raises(ContactsError, match="not UTF-8"):
        await import_file(database, path)
    async with database.engine.connect() as conn:
        assert (await conn.execute(select(recipients.c.id).limit(1))).all() == []
        assert (await conn.execute(select(campaigns))).all() == []


async def test_phone_column_option_matches_case_insensitively(
    database: Database, tmp_path: Path
) -> None:
    path = write(tmp_path, "Name,MOBILE\nAna,+34612345678\n")
    _, queued, _ = await import_file(database, path, phone_column="mobile")
    assert queued[0]["phone"] == "+34612345678"


def test_missing_column_for_a_parameter_is_named(tmp_path: Path) -> None:
    from watui.storage.contacts import ContactsReader

    path = write(tmp_path, "phone,name\n")
    with pytest.raises(ContactsError, match="no 'order' column for the body parameter"):
        ContactsReader(ContactsSource(path=path, body_params=("name", "order")))


def test_unknown_default_region_is_refused() -> None:
    with pytest.raises(ContactsError, match="not a known region code"):
        PhoneNormaliser("XX")


def _phonenumbers_says(raw: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(
    "raw",
    [
        "+34612345678",
        "+390612345678",  # Italian fixed line keeps its leading zero
        "+12025550123",
        "+1202555",  # too short
        "+4407911123456",  # the parser strips the UK trunk 0
        "+5491123456789",  # Argentine mobile: the parser rewrites the 9
        "+346123456789012",  # too long
        "+80012345678",  # non-geographic (freephone)
    ],
)
def test_normaliser_agrees_with_phonenumbers(raw: str) -> None:
    expected = _phonenumbers_says(raw)
    if expected is None:
        with pytest.raises(InvalidPhone):
            PhoneNormaliser().to_e164(raw)
    else:
        assert PhoneNormaliser().to_e164(raw) == expected


def test_fast_validity_rules_match_phonenumbers() -> None:
    """The precompiled rules give phonenumbers' own answer, for every country code."""
    rng = random.Random(20261129)
    disagreements = []
    checked_valid = 0
    for code in COUNTRY_CODE_TO_REGION_CODE:
        rules = _country_rules(code)
        for _ in range(150):
            national = str(rng.randrange(1, 10 ** rng.randrange(4, 13)))
            number = PhoneNumber(country_code=code, national_number=int(national))
            expected = phonenumbers.is_valid_number(number)
            checked_valid += expected
            if rules.is_valid(code, national) != expected:
                disagreements.append(f"+{code} {national}")
    assert disagreements == []
    assert checked_valid > 1000  # the sample really exercised valid numbers too
