"""The error table against the documented codes (../shared/docs/cloud-api.md), and classify()."""

from __future__ import annotations

import pytest

from watui.whatsapp.errors import ERROR_TABLE, classify, describe_code
from watui.whatsapp.results import (
    Accepted,
    ApiError,
    ErrorKind,
    TransportFailure,
    TransportReason,
)

#: Transcribed from the "Error codes and what the sender does" table of cloud-api.md.
DOCUMENTED: dict[ErrorKind, tuple[int, ...]] = {
    ErrorKind.RETRY: (1, 2, 131000, 131016, 131053),
    ErrorKind.THROTTLE: (4, 80007, 130429, 131057),
    ErrorKind.PAIR_LIMIT: (131056,),
    ErrorKind.PERMANENT: (100, 131008, 131009, 131021, 131026, 131047, 131049, 131050, 131051,
                          131052, 130472, 132000, 132005, 132012, 135000),
    ErrorKind.PAUSE: (132001, 132007, 132015, 132016, 0, 190, 3, 10, 200, 250, 299, 131005,
                      131031, 131042, 131048, 131064, 368, 131037, 131045, 133010),
}
CASES = [(code, kind) for kind, codes in DOCUMENTED.items() for code in codes]


def api_error(code: int | None, status: int = 400, title: str = "") -> ApiError:
    return ApiError(status, code, None, title or f"(#{code}) x", "", "trace", 0.01)


@pytest.mark.parametrize(("code", "kind"), CASES)
def test_every_documented_code_has_its_documented_kind(code: int, kind: ErrorKind) -> None:
    classification = classify(api_error(code))
    assert classification is not None
    assert classification.kind is kind
    assert describe_code(code) != describe_code(987654)


def test_the_table_holds_nothing_undocumented() -> None:
    documented = {code for codes in DOCUMENTED.values() for code in codes}
    assert set(ERROR_TABLE) - documented <= set(range(200, 300))


def test_accepted_is_not_an_error() -> None:
    assert classify(Accepted("wamid.1", "1555", "accepted", 0.1)) is None


def test_pair_limit_waits_the_pair_window_and_opt_out_suppresses() -> None:
    pair = classify(api_error(131056))
    assert pair is not None and pair.wait >= 6
    opt_out = classify(api_error(131050))
    assert opt_out is not None and opt_out.kind is ErrorKind.PERMANENT and opt_out.suppress
    maintenance = classify(api_error(131057))
    assert maintenance is not None and maintenance.wait >= 30
    engagement = classify(api_error(131049))
    assert engagement is not None and engagement.wait >= 24 * 3600


def test_unknown_code_is_permanent_and_keeps_the_raw_text() -> None:
    result = classify(api_error(987654, title="(#987654) Brand new failure"))
    assert result is not None and result.kind is ErrorKind.PERMANENT
    assert "Brand new failure" in result.meaning


def test_server_error_without_a_code_is_retried() -> None:
    result = classify(api_error(None, status=502, title="Bad Gateway"))
    assert result is not None and result.kind is ErrorKind.RETRY and not result.possibly_sent


@pytest.mark.parametrize(
    ("reason", "possibly_sent"),
    [(TransportReason.CONNECT, False), (TransportReason.READ_TIMEOUT, True),
     (TransportReason.RESET, True)],
)
def test_transport_failures_are_retried_marking_possible_delivery(
    reason: TransportReason, possibly_sent: bool
) -> None:
    result = classify(TransportFailure(reason, "detail", 0.5))
    assert result is not None and result.kind is ErrorKind.RETRY
    assert result.possibly_sent is possibly_sent
