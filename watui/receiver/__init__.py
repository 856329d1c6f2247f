"""The receiver of Meta's webhooks: verifies each POST, stores its updates durably, then answers.

It runs alone (``watui webhook``) or inside another command's event loop (``webhook.enabled``).
"""

from watui.receiver.applier import ApplierStats, DeliveryApplier
from watui.receiver.committer import GroupCommitter, ReceiverStats
from watui.receiver.garbage import quiet_garbage_collector
from watui.receiver.server import (
    WebhookReceiver,
    applying_receiver,
    build_server,
    require_app_secret,
)

__all__ = [
    "ApplierStats", "DeliveryApplier", "GroupCommitter", "ReceiverStats", "WebhookReceiver",
    "applying_receiver", "build_server", "quiet_garbage_collector", "require_app_secret",
]  # fmt: skip
