"""Sample contacts for `watui demo` and the benchmarks: reproducible, in the fictional 555
exchange of US numbers, and only ever sent to the built-in mock API."""

from __future__ import annotations

import csv
import random
from pathlib import Path

FIRST_NAMES = (
    "Ana", "Bruno", "Chen", "Dara", "Emeka", "Fatima", "Giulia", "Hiro", "Ines", "Jonas",
    "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
)


def demo_phone(index: int) -> str:
    """A distinct fictional E.164 number per index (US 555 exchange, 10 digits)."""
    area = 201 + (index // 10_000) % 700
    return f"+1{area}555{index % 10_000:04d}"


def write_demo_contacts(path: Path, count: int, *, seed: int = 7, bad_every: int = 0) -> Path:
    """Write ``count`` contacts (phone, first_name, order, photo) to a CSV file.

    With ``bad_every`` > 0, every n-th row carries an invalid number, so the import's reject
    handling has something to show.
    """
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone", "first_name", "order", "photo"])
        for index in range(count):
            phone = demo_phone(index)
            if bad_every and index % bad_every == bad_every - 1:
                phone = f"12-{index}"
            order = f"A-{10_000 + index}"
            photo = f"https://example.com/orders/{order}.jpg"
            writer.writerow([phone, rng.choice(FIRST_NAMES), order, photo])
    return path
