"""Rate cards: what one message costs, by the recipient's country calling code and the pricing
category, read from a CSV file a person keeps (docs/rate-card.md describes the format).

watui ships no prices: Meta's change, per market and with volume tiers, and only the business
knows which apply to it. A bad file is refused whole, in one line naming the line and column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol

from watui.errors import RateCardError

COLUMNS = ("calling_code", "category", "price", "currency")
#: Pricing categories a card may price (Meta's names, lower case, as statuses report them).
CATEGORIES = frozenset({
    "marketing", "utility", "authentication", "authentication_international", "marketing_lite",
    "service",
})
ANY_CODE = "*"  # a row for every calling code the card does not list
_MAX_ROWS = 100_000


class _Rows(Protocol):
    """csv.reader's object: rows, and the line the last one ended on."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class RateCard:
    currency: str
    prices: dict[tuple[int | None, str], Decimal]  # (calling code, None for "*"; category)

    def price(self, calling_code: int | None, category: str) -> Decimal | None:
        """The price of one message, or None when the card has none for it."""
        found = self.prices.get((calling_code, category))
        return found if found is not None else self.prices.get((None, category))


def load_rate_card(path: Path) -> RateCard:
    """Read and check a whole card; raises RateCardError at the first problem."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return _parse(path, csv.reader(handle))
    except OSError as error:
        raise RateCardError(f"rate card {path}: cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise RateCardError(f"rate card {path}: not UTF-8 text; save it as UTF-8 CSV") from None
    except csv.Error as error:
        raise RateCardError(f"rate card {path}: not CSV ({error})") from None


def _parse(path: Path, rows: _Rows) -> RateCard:
    header = next(rows, None)
    if header is None or [name.strip().lower() for name in header] != list(COLUMNS):
        raise RateCardError(
            f"rate card {path} line 1: the header must be {','.join(COLUMNS)}"
        )
    prices: dict[tuple[int | None, str], Decimal] = {}
    currency: str | None = None
    for values in rows:
        line = rows.line_num
        if not any(value.strip() for value in values) or values[0].lstrip().startswith("#"):
            continue
        if line > _MAX_ROWS:
            raise RateCardError(f"rate card {path} line {line}: more than {_MAX_ROWS:,} lines")
        if len(values) != len(COLUMNS):
            raise RateCardError(
                f"rate card {path} line {line}: {len(values)} fields, expected {len(COLUMNS)} "
                f"({','.join(COLUMNS)})"
            )
        code, category, price, row_currency = (value.strip() for value in values)
        key = (_calling_code(path, line, code), _category(path, line, category))
        if key in prices:
            raise RateCardError(f"{_where(path, line, 1)}: {code},{category} is priced twice")
        prices[key] = _price(path, line, price)
        currency = _currency(path, line, row_currency, currency)
    if currency is None:
        raise RateCardError(f"rate card {path}: no prices below the header")
    return RateCard(currency, prices)


def _where(path: Path, line: int, column: int) -> str:
    return f"rate card {path} line {line}, column {column} ({COLUMNS[column - 1]})"


def _calling_code(path: Path, line: int, text: str) -> int | None:
    if text == ANY_CODE:
        return None
    digits = text.removeprefix("+")
    if not (digits.isdigit() and len(digits) <= 3 and not digits.startswith("0")):
        raise RateCardError(
            f"{_where(path, line, 1)}: {text!r} is not a calling code (1 to 3 digits, e.g. 44, "
            f"or {ANY_CODE} for every other code)"
        )
    return int(digits)


def _category(path: Path, line: int, text: str) -> str:
    category = text.lower()
    if category not in CATEGORIES:
        raise RateCardError(
            f"{_where(path, line, 2)}: {text!r} is not a pricing category "
            f"({', '.join(sorted(CATEGORIES))})"
        )
    return category


def _price(path: Path, line: int, text: str) -> Decimal:
    try:
        price = Decimal(text)
    except InvalidOperation:
        price = Decimal("NaN")
    if not price.is_finite() or price < 0:
        raise RateCardError(
            f"{_where(path, line, 3)}: {text!r} is not a price (a number of at least 0, e.g. 0.0125)"
        )
    return price


def _currency(path: Path, line: int, text: str, card_currency: str | None) -> str:
    code = text.upper()
    if not (len(code) == 3 and code.isalpha() and code.isascii()):
        raise RateCardError(f"{_where(path, line, 4)}: {text!r} is not a currency code (e.g. USD)")
    if card_currency is not None and code != card_currency:
        raise RateCardError(
            f"{_where(path, line, 4)}: {code}, but earlier lines say {card_currency}: one currency "
            f"per card"
        )
    return code
