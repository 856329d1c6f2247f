"""Storage: the schema, the database connection and every query, on SQLite and PostgreSQL alike."""

from watui.errors import StorageError
from watui.rules import CampaignStatus, RecipientStatus
from watui.storage.database import SCHEMA_VERSION, Database

__all__ = ["SCHEMA_VERSION", "CampaignStatus", "Database", "RecipientStatus", "StorageError"]
