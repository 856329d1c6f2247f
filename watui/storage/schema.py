"""Tables, as SQLAlchemy Core metadata: the same definitions serve SQLite and PostgreSQL.

Times are float seconds since the epoch (UTC): cheap to compare in the claim query and the same
on both databases. JSON lives in TEXT columns so that SQLite and PostgreSQL store it alike.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql, sqlite

from watui.rules import CampaignStatus, RecipientStatus, SuppressionReason, SuppressionScope

#: SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for 10M+ rows.
BigId = BigInteger().with_variant(sqlite.INTEGER(), "sqlite").with_variant(
    postgresql.BIGINT(), "postgresql"
)

metadata = MetaData()




#: Statuses the engine may claim (when next_attempt_at is due).
CLAIMABLE = (RecipientStatus.QUEUED, RecipientStatus.RETRY)
#: Statuses that still have work ahead of them; a step is done when none is left.
PENDING = (RecipientStatus.QUEUED, RecipientStatus.RETRY, RecipientStatus.SENDING)

schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("written_by", String(40), nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("status", String(16), nullable=False, default=CampaignStatus.DRAFT.value),
    Column("rate", Float, nullable=True),  # msg/s chosen for this campaign; None: settings
    # Retry policy chosen for this campaign (schema v2); None: the settings' retry group.
    Column("max_retries", Integer, nullable=True),
    Column("retry_delays", Text, nullable=True),  # JSON list of seconds, e.g. [5.0, 10.0]
    Column("current_step", Integer, nullable=False, default=0),
    # Counters, always changed in the same transaction as the recipient rows they count.
    Column("total", Integer, nullable=False, default=0),
    Column("sent", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("invalid", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("in_doubt", Integer, nullable=False, default=0),
    # What status webhooks told (schema v3): accepted messages delivered and read, failures
    # after acceptance (also counted in `failed`), and in-doubt recipients never confirmed.
    Column("delivered", Integer, nullable=False, default=0),
    Column("read", Integer, nullable=False, default=0),
    Column("failed_after", Integer, nullable=False, default=0),
    Column("unconfirmed", Integer, nullable=False, default=0),
    Column("pause_reason", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
    # JSON list of phone_number_ids that send it; NULL: [settings.whatsapp.phone_number_id].
    Column("senders", Text, nullable=True),
    # When to send (schema v5): not before start_at, inside send_window ("09:00-20:00") in each
    # recipient's local time, never after deadline; NULL: no such limit.
    Column("start_at", Float, nullable=True),
    Column("send_window", String(11), nullable=True),
    Column("deadline", Float, nullable=True),
    # Where its template messages go (schema v9): "messages" or "marketing_messages" forced;
    # None: by each step's template category and whatsapp.marketing_messages (rules.endpoint_for).
    Column("endpoint", String(32), nullable=True),
)

steps = Table(
    "steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("template_name", String(512), nullable=False),
    Column("language", String(20), nullable=False),
    # JSON: {"body": [col, ...], "header": col|null, "header_format": "text"|"image"|...,
    #        "buttons": [{"index": 0, "sub_type": "url", "column": col}, ...]}
    Column("mapping", Text, nullable=False),
    Column("contacts_file", Text, nullable=True),
    Column("phone_column", String(200), nullable=False, default="phone"),
    Column("default_region", String(2), nullable=True),
    Column("total", Integer, nullable=False, default=0),
    UniqueConstraint("campaign_id", "position", name="uq_steps_campaign_position"),
)

recipients = Table(
    "recipients",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("step_id", Integer, ForeignKey("steps.id", ondelete="CASCADE"), nullable=False),
    Column("line_no", Integer, nullable=False),  # line in the contacts file, for people
    Column("phone", String(20), nullable=False),  # E.164
    Column("params", Text, nullable=False),  # JSON: {"body": [...], "header": ..., "buttons": [...]}
    Column("status", String(16), nullable=False, default=RecipientStatus.QUEUED.value),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False, default=0.0),
    Column("lease_owner", String(120), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("wamid", String(200), nullable=True),
    Column("last_error_code", Integer, nullable=True),
    Column("last_error_title", Text, nullable=True),
    Column("possibly_sent", Integer, nullable=False, default=0),  # a timeout may have delivered
    Column("sent_at", Float, nullable=True),
    Column("updated_at", Float, nullable=True),
    # The phone_number_id it is pinned to (rules.sender_for); NULL: the campaign's first sender.
    Column("sender", String(64), nullable=True),
    # The recipient's zone key (rules.zone_key), set when the campaign has a send window.
    Column("tz", String(200), nullable=True),
    UniqueConstraint("step_id", "phone", name="uq_recipients_step_phone"),
)
# The claim query: "due rows of this step in this status, oldest first".
Index("ix_recipients_claim", recipients.c.step_id, recipients.c.status, recipients.c.next_attempt_at)
# The claim of a campaign with a send window, one open zone at a time: "due rows of this step in
# this status and zone, oldest first". Partial: rows without a zone key (campaigns without a
# window, most of them) are not in it and cost no index writes.
ZONE_CLAIM_INDEX = Index(
    "ix_recipients_zone_claim", recipients.c.step_id, recipients.c.status, recipients.c.tz,
    recipients.c.next_attempt_at,
    sqlite_where=recipients.c.tz.is_not(None), postgresql_where=recipients.c.tz.is_not(None),
)
#: A number's claim of a campaign of several ("due rows of this step for this number"). Partial:
#: a campaign of one number leaves `sender` NULL and pays nothing for it.
_pinned = recipients.c.sender.isnot(None)
CLAIM_BY_SENDER_INDEX = Index(
    "ix_recipients_claim_sender", recipients.c.step_id, recipients.c.sender, recipients.c.status,
    recipients.c.next_attempt_at, sqlite_where=_pinned, postgresql_where=_pinned,
)
# "Count by status" and the retry queue's listing per campaign.
Index("ix_recipients_campaign_status", recipients.c.campaign_id, recipients.c.status)
# No more indexes on recipients: every one is rewritten by each claim and each outcome (twice per
# message). Crash recovery finds `sending` rows through ix_recipients_campaign_status (they are
# at most one window); a wamid index comes with delivery webhooks.

attempts = Table(
    "attempts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("recipient_id", BigId, nullable=False),
    Column("campaign_id", Integer, nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("latency_ms", Float, nullable=True),
    Column("outcome", String(16), nullable=False),  # accepted / retry / throttle / permanent / ...
    Column("http_status", Integer, nullable=True),
    Column("error_code", Integer, nullable=True),
    Column("error_title", Text, nullable=True),
    Column("wamid", String(200), nullable=True),
    Column("worker", String(120), nullable=True),
)
Index("ix_attempts_recipient", attempts.c.recipient_id)
Index("ix_attempts_campaign_code", attempts.c.campaign_id, attempts.c.error_code)

rejects = Table(
    "rejects",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("step_id", Integer, nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("phone_raw", Text, nullable=True),
    Column("reason", Text, nullable=False),
)
Index("ix_rejects_campaign", rejects.c.campaign_id, rejects.c.line_no)

templates = Table(
    "templates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("template_id", String(100), nullable=True),  # Meta's id
    Column("name", String(512), nullable=False),
    Column("language", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("category", String(30), nullable=True),
    Column("body_text", Text, nullable=True),
    Column("header_format", String(20), nullable=True),  # TEXT / IMAGE / VIDEO / DOCUMENT / ...
    Column("header_text", Text, nullable=True),
    Column("footer_text", Text, nullable=True),
    Column("buttons", Text, nullable=True),  # JSON list as Meta gives it
    Column("body_param_count", Integer, nullable=False, default=0),
    Column("components", Text, nullable=True),  # raw JSON, for previews
    Column("synced_at", Float, nullable=False),
    UniqueConstraint("name", "language", name="uq_templates_name_language"),
)

workers = Table(
    "workers",
    metadata,
    Column("owner", String(120), primary_key=True),  # host:pid:random
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("campaign_id", Integer, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
)

# ----- what Meta's webhooks tell us (schema v3) -----
# Stored as they come and applied later (to recipients, counters, the opt-out list), so that a
# POST is answered as soon as its rows are written. `applied` is NULL until that is done (true:
# applied; false: not about our messages); the partial indexes list just those, in arrival order.

def _unapplied_index(table: Table) -> Index:
    """Rows not applied yet, in arrival order; partial, so it stays as small as the backlog."""
    unapplied = table.c.applied.is_(None)
    return Index(
        f"ix_{table.name}_unapplied", table.c.id, sqlite_where=unapplied, postgresql_where=unapplied
    )


def _failure_and_pricing_columns() -> list[Column[object]]:
    """What a status webhook says of a failure and of the price, as both the raw events and the
    per-recipient deliveries keep it (new Column objects each time: a Column has one table)."""
    return [
        Column("error_code", Integer, nullable=True),
        Column("error_title", Text, nullable=True),
        Column("error_message", Text, nullable=True),
        Column("error_details", Text, nullable=True),
        Column("pricing_category", String(40), nullable=True),
        Column("pricing_type", String(40), nullable=True),
    ]


delivery_events = Table(
    "delivery_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("wamid", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # sent, delivered, read, failed, ...
    Column("timestamp", Float, nullable=False),  # when it happened, by Meta's clock
    Column("recipient_id", String(32), nullable=True),
    Column("user_id", String(200), nullable=True),
    Column("phone_number_id", String(64), nullable=True),
    Column("callback", Text, nullable=True),  # biz_opaque_callback_data echoed from the send
    *_failure_and_pricing_columns(),
    Column("received_at", Float, nullable=False),
    Column("applied", Boolean, nullable=True),
    # Meta redelivers for days and may repeat a status: each (message, status) is kept once.
    UniqueConstraint("wamid", "status", name="uq_delivery_events_wamid_status"),
)
_unapplied_index(delivery_events)

inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False, unique=True),  # Meta's wamid
    Column("sender", String(32), nullable=True),  # the `from` phone number
    Column("user_id", String(200), nullable=True),
    Column("timestamp", Float, nullable=False),
    Column("type", String(32), nullable=False),
    Column("text", Text, nullable=True),
    Column("phone_number_id", String(64), nullable=True),
    Column("received_at", Float, nullable=False),
    Column("applied", Boolean, nullable=True),
)
_unapplied_index(inbound_messages)

preference_updates = Table(
    "preference_updates",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # '' rather than NULL when absent: NULLs never conflict, and redeliveries must.
    Column("wa_id", String(32), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("category", String(64), nullable=False),  # marketing_messages
    Column("value", String(16), nullable=False),  # stop | resume
    Column("detail", Text, nullable=True),
    Column("timestamp", Float, nullable=False),
    Column("phone_number_id", String(64), nullable=True),
    Column("received_at", Float, nullable=False),
    Column("applied", Boolean, nullable=True),
    UniqueConstraint(
        "wa_id", "user_id", "category", "value", "timestamp", name="uq_preference_updates_change"
    ),
)
_unapplied_index(preference_updates)

deliveries = Table(
    "deliveries",
    metadata,
    # One row per recipient whose message Meta reported on: apart from `recipients`, whose row
    # every claim and flush rewrites, so that the hot path pays nothing for delivery tracking.
    Column("recipient_id", BigId, ForeignKey("recipients.id", ondelete="CASCADE"), primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("wamid", String(200), nullable=True),
    Column("state", String(10), nullable=False),  # rules.DeliveryState: the furthest reported
    Column("sent_at", Float, nullable=True),  # by Meta's clock, from the webhooks
    Column("delivered_at", Float, nullable=True),
    Column("read_at", Float, nullable=True),
    Column("failed_at", Float, nullable=True),
    *_failure_and_pricing_columns(),
    Column("updated_at", Float, nullable=False),
)
Index("ix_deliveries_campaign_state", deliveries.c.campaign_id, deliveries.c.state)

#: The tables schema v3 added, in the order they are created.
WEBHOOK_TABLES = (delivery_events, inbound_messages, preference_updates, deliveries)

# ----- what watui heard about its phone numbers -----

number_health = Table(
    "number_health",
    metadata,
    # Digits of the display number: the one key both the Graph API's listing and Meta's
    # phone_number_quality_update webhook (which names no phone_number_id) give.
    Column("display_digits", String(20), primary_key=True),
    Column("phone_number_id", String(64), nullable=True, unique=True),  # NULL: only a webhook seen
    Column("display_number", String(40), nullable=False),  # as the API shows it: +1 555-...
    Column("verified_name", Text, nullable=True),
    Column("quality", String(16), nullable=True),  # GREEN / YELLOW / RED / UNKNOWN
    Column("throughput_level", String(20), nullable=True),  # STANDARD / HIGH / NOT_APPLICABLE
    Column("messaging_limit", String(40), nullable=True),  # TIER_2K ... TIER_UNLIMITED
    Column("event", String(32), nullable=True),  # the last webhook's event: FLAGGED, UPGRADE, ...
    Column("heard_at", Float, nullable=False),
    Column("source", String(8), nullable=False),  # poll | webhook
)


# ----- the suppression list (schema v6): numbers that must not be messaged, one list per database -----
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("phone", String(20), nullable=False, unique=True),  # E.164; its index serves every check
    Column("user_id", String(200), nullable=True),  # business-scoped user id, when a webhook gave one
    Column("scope", String(16), nullable=False, default=SuppressionScope.ALL.value),
    Column("reason", String(20), nullable=False, default=SuppressionReason.MANUAL.value),
    Column("detail", Text, nullable=True),  # e.g. the stop word the person wrote
    Column("created_at", Float, nullable=False),
)


#: Which process paces each number of a campaign of several (schema v7): a lease renewed every
#: second, so a dead holder's number is taken over within SENDER_LEASE_SECONDS; and a number
#: paused by an account-level error, which no process takes until the campaign is resumed.
sender_leases = Table(
    "sender_leases",
    metadata,
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("phone_number_id", String(64), primary_key=True),
    Column("holder", String(120), nullable=True),  # the lease owner (leases.make_owner)
    Column("expires_at", Float, nullable=True),
    Column("paused_reason", Text, nullable=True),
)

# ----- the 24-hour messaging limit (schema v8) -----
# One row per number a template went to (or was reserved for at claim time) within the last
# 24 h, across every campaign: the rows with last_at in the window ARE the unique recipients
# Meta counts. Rows that aged out are deleted by the next reservation.
messaged_phones = Table(
    "messaged_phones",
    metadata,
    Column("phone", String(20), primary_key=True),  # E.164
    Column("last_at", Float, nullable=False),  # the latest template to it (or reservation)
)
Index("ix_messaged_phones_last_at", messaged_phones.c.last_at)

# ----- which numbers' statuses the receiver has been hearing (schema v10) -----
# The proof an in-doubt recipient was never accepted: statuses for its number kept coming all
# through the grace period (rules.heard_throughout). Kept here, not in one process's memory,
# so that a restart or another process knows it too. Written by the applier, at most once a
# second per number.
number_hearing = Table(
    "number_hearing",
    metadata,
    Column("phone_number_id", String(64), primary_key=True),
    # Since when statuses have come with no gap over webhook.unconfirmed_after_s (the writer's).
    Column("since", Float, nullable=False),
    Column("last_heard", Float, nullable=False),  # when the latest was received
)
