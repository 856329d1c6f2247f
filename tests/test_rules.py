"""The rules every layer asks (watui/rules.py): limits, template facts and the mapping check."""

from __future__ import annotations

import pytest

from watui.errors import CampaignError, InvalidCampaign, WatuiError
from watui.rules import (
    MAX_RATE,
    REVIEWABLE_STATUSES,
    Field,
    MappedButton,
    Problem,
    RecipientStatus,
    TemplateFacts,
    button_needs_param,
    button_takes_param,
    count_placeholders,
    duplicate_button_problem,
    header_takes_param,
    language_problem,
    mapping_problems,
    max_retries_problem,
    pending,
    placeholder_names,
    rate_problem,
    retry_delays_problem,
)


@pytest.mark.parametrize(
    ("rate", "ok"),
    [(80, True), (0.5, True), (MAX_RATE, True), (0, False), (-1, False), (MAX_RATE + 1, False),
     (True, False), (float("nan"), False)],
)  # fmt: skip
def test_rate_range(rate: float, ok: bool) -> None:
    problem = rate_problem(rate)
    assert (problem is None) is ok
    if problem is not None:
        assert problem.field is Field.RATE
        assert "at most 100000" in problem.message


@pytest.mark.parametrize(
    ("value", "ok"), [(0, True), (10, True), (11, False), (-1, False), (True, False), (2.5, False)]
)
def test_max_retries_range(value: object, ok: bool) -> None:
    assert (max_retries_problem(value) is None) is ok


@pytest.mark.parametrize(
    ("delays", "ok"),
    [((5, 10), True), ((86_400,), True), ((), False), ((5, 0), False), ((86_401,), False),
     ((float("nan"),), False), ((float("inf"),), False), ((True,), False)],
)  # fmt: skip
def test_retry_delays(delays: tuple[object, ...], ok: bool) -> None:
    problem = retry_delays_problem(delays)
    assert (problem is None) is ok
    assert problem is None or problem.field is Field.RETRY_DELAYS


def test_pending_counts_recipients_without_a_final_outcome() -> None:
    assert pending(total=10, sent=3, failed=2, skipped=1, in_doubt=1) == 3
    assert pending(total=1, sent=1, failed=1, skipped=0, in_doubt=0) == 0  # never negative


def test_reviewable_statuses_are_the_ones_a_person_acts_on() -> None:
    assert set(REVIEWABLE_STATUSES) == {RecipientStatus.RETRY, RecipientStatus.FAILED,
                                        RecipientStatus.IN_DOUBT, RecipientStatus.UNCONFIRMED}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "names", "count"),
    [("Hi {{1}}, order {{2}} ({{1}})", [], 2), ("Hi {{first_name}} {{ order }}", ["first_name", "order"], 2),
     (None, [], 0), ("no placeholders", [], 0)],
)  # fmt: skip
def test_placeholders(text: str | None, names: list[str], count: int) -> None:
    assert placeholder_names(text) == names
    assert count_placeholders(text) == count


@pytest.mark.parametrize(
    ("header_format", "header_text", "takes"),
    [("IMAGE", None, True), ("video", None, True), ("DOCUMENT", None, True), ("TEXT", "Hi {{1}}", True),
     ("TEXT", "Hi", False), ("LOCATION", None, False), (None, None, False)],
)  # fmt: skip
def test_header_takes_param(header_format: str | None, header_text: str | None, takes: bool) -> None:
    assert header_takes_param(header_format, header_text) is takes


@pytest.mark.parametrize(
    ("kind", "url", "needs", "takes"),
    [("URL", "https://x.test/{{1}}", True, True), ("url", "https://x.test", False, False),
     ("QUICK_REPLY", None, False, True), ("PHONE_NUMBER", None, False, False)],
)  # fmt: skip
def test_button_params(kind: str, url: str | None, needs: bool, takes: bool) -> None:
    assert button_needs_param(kind, url) is needs
    assert button_takes_param(kind, url) is takes


TRACK = TemplateFacts(
    "track", "en_US", 1, "IMAGE", None,
    [{"type": "QUICK_REPLY", "text": "Stop"}, {"type": "URL", "text": "Track", "url": "https://s.test/{{1}}"},
     {"type": "PHONE_NUMBER", "text": "Call"}],
)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "header", "buttons", "expected"),
    [
        (["name"], "photo", [MappedButton(1, "url", "link")], []),
        (["name"], "photo", [MappedButton(1, "url", "link"), MappedButton(0, "quick_reply", "stop")], []),
        ([], "photo", [MappedButton(1, "url", "link")],
         [(Field.BODY_PARAMS, "takes 1 body parameter(s) but 0 column(s) are mapped")]),
        (["name"], None, [MappedButton(1, "url", "link")],
         [(Field.HEADER_PARAM, "has an image header: name its column")]),
        (["name"], "photo", [], [(Field.BUTTONS, "button 1 is a URL with a parameter: name its column")]),
        (["name"], "photo", [MappedButton(1, "quick_reply", "link")],
         [(Field.BUTTONS, "button 1 is a URL, not a QUICK_REPLY: give it as url")]),
        (["name"], "photo", [MappedButton(1, "url", "link"), MappedButton(2, "url", "x")],
         [(Field.BUTTONS, "button 2 is a PHONE_NUMBER, not a URL: it takes no parameter")]),
        (["name"], "photo", [MappedButton(1, "url", "link"), MappedButton(5, "url", "x")],
         [(Field.BUTTONS, "has 3 button(s), numbered from 0: there is no button 5; drop column 'x'")]),
        ([], None, [], [(Field.BODY_PARAMS, "takes 1"), (Field.HEADER_PARAM, "image header"),
                        (Field.BUTTONS, "button 1 is a URL")]),
    ],
)  # fmt: skip
def test_mapping_problems_are_keyed_by_field(
    body: list[str], header: str | None, buttons: list[MappedButton], expected: list[tuple[Field, str]]
) -> None:
    problems = mapping_problems(TRACK, body, header, buttons)
    assert [(p.field, fragment) for p, (_, fragment) in zip(problems, expected, strict=True)] == expected
    assert all(fragment in p.message for p, (_, fragment) in zip(problems, expected, strict=True))
    assert all("--" not in p.message for p in problems)  # no front end's options in the core


def test_fixed_url_and_missing_header() -> None:
    fixed = TemplateFacts("fixed", "en_US", 0, None, None, [{"type": "URL", "url": "https://s.test"}])
    [problem] = mapping_problems(fixed, [], "photo", [])
    assert problem == Problem(Field.HEADER_PARAM, "template 'fixed' (en_US) has no header parameter: drop it")
    [problem] = mapping_problems(fixed, [], None, [MappedButton(0, "url", "link")])
    assert "has a fixed URL and takes no parameter: drop column 'link'" in problem.message


def test_duplicate_buttons_and_language() -> None:
    assert duplicate_button_problem([MappedButton(0, "url", "a")]) is None
    problem = duplicate_button_problem([MappedButton(0, "url", "a"), MappedButton(0, "url", "b")])
    assert problem == Problem(Field.BUTTONS, "button 0 is given twice: give one column per button")
    problem = language_problem("promo", "es", ["en_US", "de"])
    assert problem.field is Field.LANGUAGE
    assert "'promo' has no es translation (synced: de, en_US)" in problem.message


def test_invalid_campaign_carries_its_problems_under_the_one_root() -> None:
    problems = [Problem(Field.RATE, "rate too high"), Problem(Field.BUTTONS, "button 9 missing")]
    error = InvalidCampaign(problems)
    assert isinstance(error, CampaignError) and isinstance(error, WatuiError)
    assert error.problems == tuple(problems)
    assert str(error) == "rate too high; button 9 missing"
