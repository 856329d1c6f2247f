"""Data shapes that cross layers which may not import each other.

A leaf like ``watui.rules``: storage writes a recipient's parameters, the client turns them into
a request, and neither may import the other, so the shape they agree on lives here.
"""

from __future__ import annotations

from typing import TypedDict


class ButtonText(TypedDict):
    """One button's value for one recipient, as stored in ``recipients.params``."""

    index: int  # the button's position in the template
    sub_type: str  # "url" or "quick_reply"
    text: str  # the URL's {{1}}, or the quick reply's payload


class RecipientParams(TypedDict, total=False):
    """A recipient's stored parameters (``recipients.params``), values already taken from the
    contacts row; ``header`` and ``buttons`` are left out when the step has none."""

    body: list[str]
    header: str
    buttons: list[ButtonText]
