"""A fake WhatsApp Cloud API for tests, benchmarks and ``watui demo``."""

from watui.mockapi.config import FAILURE_CLASSES, MockConfig
from watui.mockapi.samples import SAMPLE_TEMPLATES
from watui.mockapi.server import LedgerEntry, MockCloudApi, MockStats, error_body, signature_of

__all__ = [
    "FAILURE_CLASSES",
    "SAMPLE_TEMPLATES",
    "LedgerEntry",
    "MockCloudApi",
    "MockConfig",
    "MockStats",
    "error_body",
    "signature_of",
]
