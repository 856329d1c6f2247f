"""The campaign and template rules, each in one place: storage, engine, service, CLI and UI ask here.

Pure functions and constants, importing nothing of watui: every layer may use them. Checks return
``Problem``s keyed by the ``Field`` they concern, worded without any front end's vocabulary; the
CLI names its options for the field, the setup screen marks the field.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

T = TypeVar("T")

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
    SENDERS = "senders"
    START_AT = "start_at"
    SEND_WINDOW = "send_window"
    DEADLINE = "deadline"
    EXCLUDE = "exclude"  # a file of numbers this campaign must not message
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


# ----- sender numbers -----

#: A phone number ID as Meta gives it: digits (15-16 today; the column holds 64).
MAX_SENDER_ID_CHARS = 64


def sender_for(phone: str, senders: Sequence[str]) -> str:
    """The number that sends to ``phone``: rendezvous hashing, so a person hears from the same
    number in every step and campaign with the same numbers, and dropping a number moves only
    its own recipients."""
    return max(senders, key=lambda s: hashlib.blake2b(f"{s}:{phone}".encode(), digest_size=8).digest())


def senders_problem(senders: Sequence[str]) -> Problem | None:
    """A campaign's sender numbers: at least one, each a phone number ID (digits), none twice."""
    if not senders:
        return Problem(Field.SENDERS, "no sender number given: give at least one phone number ID")
    for sender in senders:
        if not sender.isascii() or not sender.isdigit() or len(sender) > MAX_SENDER_ID_CHARS:
            return Problem(
                Field.SENDERS,
                f"sender {sender!r} is not a phone number ID: give the number's ID from the "
                "WhatsApp Manager (digits only), e.g. 106540352242922",
            )
    twice = next((sender for sender in senders if senders.count(sender) > 1), None)
    if twice is not None:
        return Problem(Field.SENDERS, f"sender {twice} is given twice: give each number once")
    return None


#: The messages/s a number may send at each throughput level (``throughput.level`` of the Graph
#: API's phone number; ../shared/docs/cloud-api.md, Limits).
THROUGHPUT_RATES: Mapping[str, float] = {"STANDARD": 80.0, "HIGH": 1_000.0}

#: The quality rating at which a number stops sending: Meta restricts a number it rates low, and
#: every further send makes it worse.
PAUSING_QUALITY = "RED"


def throughput_rate(level: str | None) -> float | None:
    """The number's allowed rate for its throughput level; None when the level is unknown."""
    return THROUGHPUT_RATES.get((level or "").upper())


def quality_pauses(quality: str | None) -> bool:
    return (quality or "").upper() == PAUSING_QUALITY


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
    if marketing_messages and (category or "").upper() == MARKETING_CATEGORY:
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


def awaiting_final_status(sent: int, delivered: int) -> int:
    """Accepted messages still waiting for their final status: ``sent`` counts those accepted
    and not failed since, ``delivered`` those Meta reported delivered or read.

    Delivered counts as final here although a read may follow: read receipts are the
    recipient's choice and a message may never be opened, so waiting for reads would wait to
    the limit in every campaign. A failure after acceptance takes its recipient out of
    ``sent``, so it is final too."""
    return max(0, sent - delivered)


def heard_throughout(since: float, last_heard: float, now: float, grace: float, gap: float) -> bool:
    """Whether the receiver has been hearing a number's statuses for the whole ``grace`` period
    up to ``now``: an unbroken run of them (no gap over ``gap``) began before it, and one came
    within ``gap`` of now. Then an in-doubt recipient of that number older than the grace
    period, about whom no status came, was almost surely never accepted (unconfirmed)."""
    return since <= now - grace and now - last_heard <= gap


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


# ----- when to send: start time, daily send window in each recipient's zone, deadline -----

#: A recipient's zone key joins the IANA zones its number may be in: "America/Chicago" or
#: "America/Chicago|America/New_York" (the window must be open in all of them).
ZONE_SEPARATOR = "|"
#: Why a campaign is paused when ``watui run --due`` left it outside every recipient's send
#: window: the next ``--due`` picks it up again.
WINDOW_WAIT_REASON = "outside every recipient's send window"
#: How far ahead the next opening of a window is looked for: a window open in no day of it
#: (zones too far apart for their windows to overlap) never opens.
LOOK_AHEAD_DAYS = 3
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, slots=True)
class SendWindow:
    """A daily window in the recipient's local time, [opens, closes); one that closes before it
    opens crosses midnight (22:00-06:00)."""

    opens: int  # minutes after local midnight
    closes: int

    def __str__(self) -> str:
        return f"{_hh_mm(self.opens)}-{_hh_mm(self.closes)}"

    def is_open_at(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute + local.second / 60
        if self.opens < self.closes:
            return self.opens <= minute < self.closes
        return minute >= self.opens or minute < self.closes


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a campaign may send: not before ``start_at``, only inside ``window`` in each
    recipient's zone, never after ``deadline`` (epoch seconds; None: no such limit)."""

    start_at: float | None = None
    window: SendWindow | None = None
    deadline: float | None = None


def _hh_mm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_send_window(text: str) -> SendWindow:
    """``09:00-20:00`` (or ``22:00-06:00`` across midnight); ValueError saying what to give."""
    match = _WINDOW.match(text)
    hint = "give it as HH:MM-HH:MM in the recipient's local time, e.g. 09:00-20:00"
    if not match:
        raise ValueError(f"send window {text!r} is not a time range: {hint}")
    hours_open, minutes_open, hours_close, minutes_close = (int(part) for part in match.groups())
    if hours_open > 23 or hours_close > 24 or minutes_open > 59 or minutes_close > 59 or (
        hours_close == 24 and minutes_close
    ):
        raise ValueError(f"send window {text!r} has an hour or minute out of range: {hint}")
    window = SendWindow(hours_open * 60 + minutes_open, (hours_close * 60 + minutes_close) % 1440)
    if window.opens == window.closes:
        raise ValueError(f"send window {text!r} opens and closes at the same time: {hint}")
    return window


def parse_moment(text: str, what: str) -> float:
    """An ISO 8601 time with an offset (``2026-12-07T09:00+01:00``, ``...Z``) or a zone name
    (``2026-12-07T09:00 Europe/Madrid``) as epoch seconds; ValueError saying what to give. A
    time with neither is refused: whose 09:00 it is would be a guess."""
    example = "e.g. 2026-12-07T09:00+01:00 or 2026-12-07T09:00 Europe/Madrid"
    stamp, _, zone_name = text.strip().replace("[", " ").rstrip("]").rpartition(" ")
    if not (stamp and zone_name[:1].isalpha()):
        stamp, zone_name = text.strip(), ""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an ISO 8601 time: {example}") from None
    zone: tzinfo | None = _zone_or_none(zone_name) if zone_name else None
    if zone_name and zone is None:
        raise ValueError(f"{what} {text!r} names an unknown time zone {zone_name!r}: "
                         f"give an IANA zone name, {example}")
    if moment.tzinfo is not None and zone is not None:
        raise ValueError(f"{what} {text!r} has both an offset and a zone: give one, {example}")
    if moment.tzinfo is None and zone is None:
        raise ValueError(f"{what} {text!r} has no offset or time zone: add one, {example}")
    return (moment if zone is None else moment.replace(tzinfo=zone)).timestamp()


def schedule_from_text(
    start_at: str | None, send_window: str | None, deadline: str | None, *, now: float
) -> tuple[Schedule, list[Problem]]:
    """The schedule as typed (empty or None: no such limit), and every problem with it."""
    problems: list[Problem] = []

    def parsed(field: Field, text: str | None, parse: Callable[[str], T]) -> T | None:
        if text is None or not text.strip():
            return None
        try:
            return parse(text)
        except ValueError as error:
            problems.append(Problem(field, str(error)))
            return None

    start = parsed(Field.START_AT, start_at, lambda text: parse_moment(text, "start time"))
    window = parsed(Field.SEND_WINDOW, send_window, parse_send_window)
    end = parsed(Field.DEADLINE, deadline, lambda text: parse_moment(text, "deadline"))
    if end is not None and end <= now:
        problems.append(Problem(Field.DEADLINE, f"deadline {deadline!r} has passed: give a later one"))
    elif end is not None and start is not None and end <= start:
        problems.append(Problem(
            Field.DEADLINE, f"deadline {deadline!r} is not after the start time: give a later one"
        ))
    return Schedule(start, window, end), problems


def zone_key(zones: Iterable[str]) -> str:
    return ZONE_SEPARATOR.join(sorted(set(zones)))


@functools.cache
def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def unknown_zone_reason(name: str) -> str | None:
    """Why ``name`` is not a time zone (one line), or None when it is one."""
    if _zone_or_none(name) is None:
        return f"unknown time zone {name!r}: give an IANA name such as Europe/Madrid"
    return None


def _zones(key: str) -> list[ZoneInfo]:
    return [zone for name in key.split(ZONE_SEPARATOR) if (zone := _zone_or_none(name))]


def key_is_open(window: SendWindow, key: str, now: float) -> bool:
    """Open only when open in every zone of the key (the most restrictive)."""
    return all(window.is_open_at(datetime.fromtimestamp(now, zone)) for zone in _zones(key))


def _edges(window: SendWindow, zone: ZoneInfo, now: float) -> list[float]:
    """The window's openings and closings in ``zone`` from now on (DST-correct: each is that
    local wall time on its own day)."""
    today = datetime.fromtimestamp(now, zone).date()
    edges = []
    for days in range(-1, LOOK_AHEAD_DAYS + 1):
        day = today + timedelta(days=days)
        for minutes in (window.opens, window.closes):
            local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)
            edges.append(local.timestamp())
    return sorted(edge for edge in edges if edge > now)


def next_window_change(window: SendWindow, keys: Iterable[str], now: float) -> float | None:
    """When the set of open keys may next change: the first edge of any of their zones."""
    edges = [edge for key in keys for zone in _zones(key) for edge in _edges(window, zone, now)[:1]]
    return min(edges, default=None)


def next_opening(window: SendWindow, keys: Iterable[str], now: float) -> float | None:
    """The first moment after ``now`` when some key is open; None within LOOK_AHEAD_DAYS."""
    keys = list(keys)
    candidates = sorted({
        edge for key in keys for zone in _zones(key) for edge in _edges(window, zone, now)
    })
    for edge in candidates:
        if any(key_is_open(window, key, edge) for key in keys):
            return edge
    return None


# ----- the audience: who must not be messaged (the suppression list) -----


class SuppressionScope(StrEnum):
    """What a suppressed number may no longer receive."""

    ALL = "all"  # no template at all
    MARKETING = "marketing"  # MARKETING templates only; utility and authentication still go


class SuppressionReason(StrEnum):
    """Why a number is on the list."""

    STOP_WORD = "stop_word"  # the person wrote a stop word to the business
    OPTED_OUT = "131050"  # a send failed with 131050: the person stopped marketing messages
    USER_PREFERENCES = "user_preferences"  # a user_preferences webhook said stop
    IMPORTED = "imported"  # from a file a person imported
    MANUAL = "manual"  # added by a person


#: Entries a ``user_preferences`` resume lifts: those the person's own stop made, never ones a
#: person added (they may have a reason the person's resume does not undo).
LIFTED_BY_RESUME = frozenset({SuppressionReason.USER_PREFERENCES, SuppressionReason.OPTED_OUT})

#: The template category (as Meta names it) that marketing-only entries apply to.
MARKETING_CATEGORY = "MARKETING"

#: A recipient the list stops: the reject reason at import, and the start of a skipped row's
#: reason at send time ("suppressed: stop_word").
SUPPRESSED = "suppressed"
#: A recipient the campaign's own exclusion file names.
EXCLUDED = "excluded"

#: Stop words in several languages, compared as ``stop_word_key`` leaves them.
DEFAULT_STOP_WORDS: tuple[str, ...] = (
    "STOP", "UNSUBSCRIBE", "BAJA", "PARAR", "CANCELAR", "ARRÊT", "DÉSABONNER", "ABMELDEN",
    "STOPP", "DISISCRIVIMI", "AFMELDEN", "СТОП",
)  # fmt: skip


def suppression_applies(scope: str, template_category: str | None) -> bool:
    """Whether an entry of ``scope`` stops a template of this category (unknown: not
    marketing, since watui cannot tell; sync the templates to know)."""
    return scope == SuppressionScope.ALL or (template_category or "").upper() == MARKETING_CATEGORY


def stop_word_key(text: str) -> str:
    """``text`` as stop words are compared: accents dropped (NFKD), case folded, spaces inside
    collapsed, and spaces and punctuation around it ignored ("  Arrêt! " -> "arret")."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()
    words = re.findall(r"\w+", bare)
    return " ".join(words)


def matched_stop_word(text: str | None, stop_words: Iterable[str]) -> str | None:
    """The stop word the whole message is (ignoring case, accents, spaces and punctuation
    around it), or None. "stop" is one; "please don't stop" is not: only the whole text."""
    if not text:
        return None
    key = stop_word_key(text)
    for word in stop_words:
        if key and stop_word_key(word) == key:
            return word
    return None


# ----- API outages -----


def outage_line(
    since: float, retry_at: float | None, now: float, checking_every: float | None = None
) -> str:
    """How an API outage reads wherever it shows (the monitor, the campaigns list, `watui run`):
    since when (local time), and what comes next (``outage_next``)."""
    clock = datetime.fromtimestamp(since).strftime("%H:%M:%S")
    return f"API unreachable since {clock}, {outage_next(retry_at, now, checking_every)}"


def outage_next(retry_at: float | None, now: float, checking_every: float | None = None) -> str:
    """When sending tries again: the probe is out now (``retry_at`` None), a connect check runs
    every ``checking_every`` seconds (the probe goes when one connects), or in N s."""
    if retry_at is None:
        return "trying again now"
    if checking_every is not None:
        return f"checking every {checking_every:g} s"
    return f"trying again in {max(0, math.ceil(retry_at - now))} s"


# ----- the 24-hour messaging limit (unique recipients of templates per moving 24 h) -----

#: The tiers Meta grants a business portfolio; the setting also takes "unlimited".
MESSAGING_LIMIT_TIERS = (250, 2_000, 10_000, 100_000)
UNLIMITED: Final = "unlimited"
MESSAGING_LIMIT_WINDOW_S = 86_400.0


#: The setting's value that takes the tier the Graph API reports for the sending number
#: (``messaging_limit_tier``, polled with the numbers' health).
FROM_ACCOUNT: Final = "account"
#: The Graph API's tier names and the limits they mean (None: no limit).
ACCOUNT_TIERS: Mapping[str, int | None] = {
    "TIER_250": 250, "TIER_2K": 2_000, "TIER_10K": 10_000, "TIER_100K": 100_000,
    "TIER_UNLIMITED": None,
}


def messaging_limit_problem(value: object) -> str | None:
    """Why ``value`` is not a messaging limit tier, or None when it is one."""
    if value in (UNLIMITED, FROM_ACCOUNT) or (
        isinstance(value, int) and value in MESSAGING_LIMIT_TIERS
    ):
        return None
    tiers = ", ".join(str(tier) for tier in MESSAGING_LIMIT_TIERS)
    return f"must be one of {tiers} or {UNLIMITED}, or {FROM_ACCOUNT} (the tier the API reports)"


def account_messaging_limit(tier: str | None) -> int | None:
    """The limit a number's reported tier means. A tier not heard yet (or unknown) counts as
    the lowest: better to stop short than to run into Meta's limit."""
    if tier is None or tier.upper() not in ACCOUNT_TIERS:
        return MESSAGING_LIMIT_TIERS[0]
    return ACCOUNT_TIERS[tier.upper()]


def messaging_limit_wait(limit: int, next_free_at: float | None) -> str:
    """The one sentence every front end shows while a campaign waits for the limit."""
    reason = f"messaging limit {limit:,}/24 h reached"
    if next_free_at is None:
        return reason
    return f"{reason}; next free slot at {datetime.fromtimestamp(next_free_at).strftime('%H:%M')}"


# ----- what a dry run reports -----

#: How an import words a row whose number an earlier row of the step has: the dry run tells
#: duplicates from invalid rows by it.
DUPLICATE_REJECT_PREFIX = "duplicate of line "


def duplicate_reject_reason(first_line: int) -> str:
    return f"{DUPLICATE_REJECT_PREFIX}{first_line}"


#: Templates of this category are not delivered to +1 (US) numbers (since April 2025).
UNDELIVERED_TO_US_CATEGORY = "MARKETING"
US_CALLING_CODE = 1
