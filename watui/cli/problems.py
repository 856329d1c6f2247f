"""The command line's words for a rule's problem: each field named as the option (or spec key)
that sets it, so that the core's messages stay free of any front end's vocabulary."""

from __future__ import annotations

from watui.errors import ContactsError, InvalidCampaign, WatuiError
from watui.rules import Field, Problem

#: Where ``watui campaign create`` takes each field from.
OPTIONS: dict[Field, str] = {
    Field.NAME: "NAME",
    Field.STEPS: "--template and --contacts",
    Field.TEMPLATE: "--template",
    Field.LANGUAGE: "--language",
    Field.CONTACTS: "--contacts",
    Field.PHONE_COLUMN: "--phone-column",
    Field.DEFAULT_REGION: "--default-region",
    Field.BODY_PARAMS: "--body-params",
    Field.HEADER_PARAM: "--header-param",
    Field.BUTTONS: "--button-param INDEX:COLUMN[:quick_reply]",
    Field.RATE: "--rate",
    Field.MAX_RETRIES: "--max-retries",
    Field.RETRY_DELAYS: "--retry-delays",
    Field.SENDERS: "--senders",
    Field.START_AT: "--start-at",
    Field.SEND_WINDOW: "--send-window",
    Field.DEADLINE: "--deadline",
    Field.EXCLUDE: "--exclude",
    Field.ENDPOINT: "--endpoint",
}


def spec_key(field: Field) -> str:
    """A spec file's key for the field: the field's own name, the steps their tables."""
    return "[[steps]]" if field is Field.STEPS else field.value


def worded(error: WatuiError, *, spec: bool) -> str:
    """The error as one line, each problem ending with the option (or spec key) to fix."""
    if isinstance(error, InvalidCampaign):
        return "; ".join(_worded_problem(problem, spec) for problem in error.problems)
    if isinstance(error, ContactsError) and error.field is not None:
        return f"{error} ({_where(error.field, None, spec)})"
    return str(error)


def _worded_problem(problem: Problem, spec: bool) -> str:
    return f"{problem.message} ({_where(problem.field, problem.step, spec)})"


def _where(field: Field, step: int | None, spec: bool) -> str:
    if not spec:
        return OPTIONS[field]
    return f"step {step}: {spec_key(field)}" if step is not None else spec_key(field)
