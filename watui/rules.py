"""The campaign and template rules, each in one place: storage, engine, service, CLI and UI ask here.

Pure functions and constants, importing nothing of watui: every layer may use them. Checks return
``Problem``s keyed by the ``Field`` they concern, worded without any front end's vocabulary; the
CLI names its options for the field, the setup screen marks the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

# ----- limits -----

#: The highest send rate anyone may set (messages/s per phone number): far above Meta's 1,000
#: msg/s top tier, so benchmarks and the mock can run unthrottled.
MAX_RATE = 100_000.0
MAX_RETRIES_LIMIT = 10
MAX_RETRY_DELAY = 86_400.0  # a day, in seconds
#: The most connections automatic sizing (``http.max_connections = "auto"``) opens to the API:
#: 1,000 msg/s with answers taking up to 1.3 s, and no runaway when answers time out.
MAX_AUTO_CONNECTIONS = 2_000


class Field(StrEnum):
    """What a problem is about: a part of a campaign's definition."""

    NAME = "name"
    STEPS = "steps"
    TEMPLATE = "template"
    LANGUAGE = "language"
    CONTACTS = "contacts"
    PHONE_COLUMN = "phone_column"
    DEFAULT_REGION = "default_region"
    BODY_PARAMS = "body_params"
    HEADER_PARAM = "header_param"
    BUTTONS = "buttons"
    RATE = "rate"
    MAX_RETRIES = "max_retries"
    RETRY_DELAYS = "retry_delays"
    ENDPOINT = "endpoint"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a campaign as asked, and what to give instead (one line)."""

    field: Field
    message: str
    #: The step (from 1) of a campaign of several that the problem is about; None: the campaign.
    step: int | None = None


def rate_problem(rate: object) -> Problem | None:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= MAX_RATE:
        return Problem(
            Field.RATE, f"rate {rate!r} is out of range: give messages/s above 0, at most {MAX_RATE:.0f}"
        )
    return None


def max_retries_problem(max_retries: object) -> Problem | None:
    if (
        isinstance(max_retries, bool)
        or not isinstance(max_retries, int)
        or not 0 <= max_retries <= MAX_RETRIES_LIMIT
    ):
        return Problem(
            Field.MAX_RETRIES,
            f"max_retries {max_retries!r} is out of range: give a whole number from 0 to "
            f"{MAX_RETRIES_LIMIT}",
        )
    return None


def retry_delays_problem(delays: Sequence[object]) -> Problem | None:
    if not delays or not all(_is_delay(delay) for delay in delays):
        return Problem(
            Field.RETRY_DELAYS,
            f"retry delays {list(delays)!r} are not valid: give at least one delay, each in "
            f"seconds above 0 and at most {MAX_RETRY_DELAY:.0f}, e.g. 5,10",
        )
    return None


def _is_delay(delay: object) -> bool:
    return (
        not isinstance(delay, bool)
        and isinstance(delay, int | float)
        and math.isfinite(delay)
        and 0 < delay <= MAX_RETRY_DELAY
    )


# ----- where a template message is sent -----


class Endpoint(StrEnum):
    """Where a template message is POSTed: the Cloud API's ``/{phone_number_id}/messages``, or
    the Marketing Messages API's ``/{phone_number_id}/marketing_messages`` (same payload, same
    answers, plus Meta's delivery optimisation for marketing)."""

    MESSAGES = "messages"
    MARKETING_MESSAGES = "marketing_messages"


#: What a campaign may ask for: "auto" (by the template's category and the setting) or either
#: endpoint. A campaign stores None for "auto".
AUTO_ENDPOINT = "auto"
ENDPOINT_CHOICES = (AUTO_ENDPOINT, Endpoint.MESSAGES.value, Endpoint.MARKETING_MESSAGES.value)


def endpoint_for(forced: str | None, category: str | None, marketing_messages: bool) -> Endpoint:
    """The endpoint a step's messages go to. The campaign's forced endpoint wins; else MARKETING
    templates (by the category in force: Meta may change it after approval, so the synced one,
    not the one at creation) go to the Marketing Messages API when ``marketing_messages`` is on
    (opt-in: the business must accept its terms first), everything else to /messages."""
    if forced and forced != AUTO_ENDPOINT:
        return Endpoint(forced)
    if marketing_messages and (category or "").upper() == "MARKETING":
        return Endpoint.MARKETING_MESSAGES
    return Endpoint.MESSAGES


def endpoint_problem(endpoint: object) -> Problem | None:
    if endpoint is None or endpoint in ENDPOINT_CHOICES:
        return None
    return Problem(
        Field.ENDPOINT,
        f"endpoint {endpoint!r} is not known: give {', '.join(ENDPOINT_CHOICES[:-1])} or "
        f"{ENDPOINT_CHOICES[-1]}",
    )


# ----- recipients and campaigns -----


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class RecipientStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a sender (lease_owner, lease_expires_at)
    SENT = "sent"
    RETRY = "retry"  # waiting for next_attempt_at
    FAILED = "failed"
    SKIPPED = "skipped"  # by a person, or the campaign was cancelled
    IN_DOUBT = "in_doubt"  # a crash left it 'sending'; never resent without a person
    #: In doubt, and no status webhook came for it while others for its number did: almost
    #: certainly never accepted, so it may be resent (by a person, or webhook.resend_unconfirmed).
    UNCONFIRMED = "unconfirmed"


#: What a person can review in the retry queue, and requeue or skip.
REVIEWABLE_STATUSES: tuple[RecipientStatus, ...] = (
    RecipientStatus.RETRY,
    RecipientStatus.FAILED,
    RecipientStatus.IN_DOUBT,
    RecipientStatus.UNCONFIRMED,
)


def pending(
    total: int, sent: int, failed: int, skipped: int, in_doubt: int, unconfirmed: int = 0
) -> int:
    """Recipients still to be sent (queued, sending or waiting for a retry): every counted
    recipient without an outcome, so that total = sent + failed + skipped + in_doubt +
    unconfirmed + pending. Never below zero."""
    return max(0, total - sent - failed - skipped - in_doubt - unconfirmed)


class DeliveryState(StrEnum):
    """What Meta's status webhooks said of an accepted message, the furthest first wins: a
    message only moves forward (sent → delivered → read), and ``failed`` is final unless a
    delivered or read also comes (a person with several devices), which wins."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


#: Each state's rank: a status webhook is applied only when it ranks above the one recorded.
DELIVERY_RANK = {
    DeliveryState.SENT: 1,
    DeliveryState.FAILED: 2,
    DeliveryState.DELIVERED: 3,
    DeliveryState.READ: 4,
}


#: What each send carries as ``biz_opaque_callback_data`` (Meta echoes it on every status of
#: the message): the recipient row's id after a prefix, so that a status maps to its recipient
#: even when the send's answer was never recorded, and other systems' callbacks never match.
CALLBACK_PREFIX = "w:"


def recipient_callback(recipient_id: int) -> str:
    return f"{CALLBACK_PREFIX}{recipient_id}"


def recipient_from_callback(callback: str | None) -> int | None:
    """The recipient id a callback names; None when it is not one of ours."""
    if not callback or not callback.startswith(CALLBACK_PREFIX):
        return None
    digits = callback[len(CALLBACK_PREFIX):]
    return int(digits) if digits.isdigit() and len(digits) <= 18 else None


# ----- templates -----

#: Header formats whose parameter is a link to the media (sent as ``{"link": ...}``).
MEDIA_HEADER_FORMATS = frozenset({"image", "video", "document"})

#: The button kinds whose parameter comes from a column: a dynamic URL's suffix, or the payload
#: a quick reply sends back (API sub_type values).
BUTTON_SUB_TYPES = ("url", "quick_reply")

#: A body or header placeholder: {{1}} or {{first_name}} (its name is group 1).
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def placeholder_names(text: str | None) -> list[str]:
    """The body's named placeholders in order ({{first_name}} -> "first_name"); empty when the
    template uses positional ones ({{1}}, {{2}}), which need no names in the request."""
    names = list(dict.fromkeys(PLACEHOLDER.findall(text or "")))
    return [] if all(name.isdigit() for name in names) else names


def count_placeholders(text: str | None) -> int:
    """Distinct {{1}}, {{2}} ... or {{named}} placeholders in a template text."""
    return len(dict.fromkeys(PLACEHOLDER.findall(text or "")))


def has_placeholder(text: str | None) -> bool:
    return "{{" in (text or "")


def header_takes_param(header_format: str | None, header_text: str | None) -> bool:
    """A media header always takes its link; a text header only when it has a placeholder."""
    kind = (header_format or "").lower()
    return kind in MEDIA_HEADER_FORMATS or (kind == "text" and has_placeholder(header_text))


def button_needs_param(kind: str, url: str | None) -> bool:
    """A URL button ending in {{1}}: every request must carry the suffix (or the API refuses it,
    132000)."""
    return kind.lower() == "url" and has_placeholder(url)


def button_takes_param(kind: str, url: str | None) -> bool:
    """A dynamic URL's suffix, or the payload a quick reply sends back (optional)."""
    return button_needs_param(kind, url) or kind.lower() == "quick_reply"


@dataclass(frozen=True, slots=True)
class TemplateFacts:
    """What the checks need to know of a synced template."""

    name: str
    language: str
    body_param_count: int
    header_format: str | None  # any case
    header_text: str | None
    buttons: Sequence[Mapping[str, object]]  # as the API lists them: type, text, url


@dataclass(frozen=True, slots=True)
class MappedButton:
    index: int
    sub_type: str  # one of BUTTON_SUB_TYPES
    column: str


def mapping_problems(
    template: TemplateFacts,
    body_columns: Sequence[str],
    header_column: str | None,
    buttons: Sequence[MappedButton],
) -> list[Problem]:
    """How a step's column mapping disagrees with its synced template; empty when it fits. A
    request that disagrees is refused by the API (132000) for every recipient."""
    which = f"template {template.name!r} ({template.language})"
    problems: list[Problem] = []
    if template.body_param_count != len(body_columns):
        problems.append(Problem(
            Field.BODY_PARAMS,
            f"{which} takes {template.body_param_count} body parameter(s) but {len(body_columns)} "
            f"column(s) are mapped: give exactly {template.body_param_count} columns",
        ))
    header_format = (template.header_format or "").lower() or None
    takes_header = header_takes_param(header_format, template.header_text)
    if takes_header and not header_column:
        problems.append(Problem(
            Field.HEADER_PARAM,
            f"{which} has {_article(header_format)} {header_format} header: name its column",
        ))
    if header_column and not takes_header:
        problems.append(Problem(Field.HEADER_PARAM, f"{which} has no header parameter: drop it"))
    problems.extend(_button_problems(which, template.buttons, buttons))
    return problems


def duplicate_button_problem(buttons: Iterable[MappedButton]) -> Problem | None:
    indexes = [button.index for button in buttons]
    twice = next((index for index in indexes if indexes.count(index) > 1), None)
    if twice is None:
        return None
    return Problem(Field.BUTTONS, f"button {twice} is given twice: give one column per button")


def _button_problems(
    which: str, template_buttons: Sequence[Mapping[str, object]], mapped: Sequence[MappedButton]
) -> list[Problem]:
    """Each mapped button exists and is of its kind, and each dynamic URL has its column."""
    problems: list[Problem] = []
    by_index = {button.index: button for button in mapped}
    for index, button in enumerate(template_buttons):
        kind = str(button.get("type", "")).upper()
        dynamic = button_needs_param(kind, str(button.get("url", "")))
        given = by_index.pop(index, None)
        if dynamic and given is None:
            problems.append(Problem(
                Field.BUTTONS, f"{which}: button {index} is a URL with a parameter: name its column"
            ))
        elif given is not None:
            wanted = given.sub_type.upper()
            if wanted != kind:
                fix = "it takes no parameter, drop it" if kind not in ("URL", "QUICK_REPLY") else (
                    f"give it as {kind.lower()}"
                )
                problems.append(Problem(
                    Field.BUTTONS,
                    f"{which}: button {index} is a {kind or 'button of unknown kind'}, not a "
                    f"{wanted}: {fix}",
                ))
            elif kind == "URL" and not dynamic:
                problems.append(Problem(
                    Field.BUTTONS,
                    f"{which}: button {index} has a fixed URL and takes no parameter: drop "
                    f"column {given.column!r}",
                ))
    for index in sorted(by_index):
        problems.append(Problem(
            Field.BUTTONS,
            f"{which} has {len(template_buttons)} button(s), numbered from 0: there is no button "
            f"{index}; drop column {by_index[index].column!r}",
        ))
    return problems


def language_problem(template: str, language: str, synced_languages: Iterable[str]) -> Problem:
    """A synced template without this language is most likely a typo in the language."""
    return Problem(
        Field.LANGUAGE,
        f"template {template!r} has no {language} translation (synced: "
        f"{', '.join(sorted(synced_languages))}): check the language, or sync the templates again "
        "if it was added since",
    )


def _article(word: str | None) -> str:
    return "an" if (word or "x")[0] in "aeiou" else "a"
