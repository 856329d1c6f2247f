"""The receiver of Meta's webhooks: verifies each POST, stores its updates durably, then answers.

It runs alone (``watui webhook``) or inside another command's event loop (``webhook.enabled``).
"""

from watui.receiver.committer import GroupCommitter, ReceiverStats
from watui.receiver.server import WebhookReceiver, build_app, require_app_secret

__all__ = ["GroupCommitter", "ReceiverStats", "WebhookReceiver", "build_app", "require_app_secret"]
