"""Storage: the schema, the database connection and every query, on SQLite and PostgreSQL alike."""

from watui.errors import StorageError
from watui.storage.database import SCHEMA_VERSION, Database
from watui.storage.schema import CampaignStatus, RecipientStatus

__all__ = ["SCHEMA_VERSION", "CampaignStatus", "Database", "RecipientStatus", "StorageError"]
