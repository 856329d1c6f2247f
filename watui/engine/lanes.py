"""Which number a CampaignSender sends from, when it is not simply the configured one.

Apart from the sender and the runner of several numbers so that both can name it without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NumberLane:
    """The phone_number_id a sender sends from.

    ``pinned``: it is one number of several of its campaign, so it claims only the recipients
    pinned to it (``recipients.sender``), paces them alone (no rate shared with other
    processes: engine.numbers leases each number to one process) and leaves the campaign's
    status to the runner of all its numbers."""

    phone_number_id: str
    pinned: bool = False
