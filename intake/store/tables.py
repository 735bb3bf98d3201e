"""Tables, as SQLAlchemy Core metadata (Core statements are what the hot path runs).

Times are stored in UTC; `UTCDateTime` hands back aware datetimes on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        when: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


incidents = Table(
    "incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("category", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False, default=3),  # 1 highest .. 5 lowest
    Column("summary", Text, nullable=False, default=""),
    Column("lat", Float),
    Column("lon", Float),
    Column("accuracy_m", Float),
    Column("location_source", String(16)),
    Column("location_label", Text),
    Column("ward_code", String(16)),
    Column("cell", String(16)),  # H3 cell at geo.SEARCH_RES: the matching search key
    Column("opened_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_report_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("report_count", Integer, nullable=False, default=0),
    Column("needs_review", Boolean, nullable=False, default=False),
    Column("review_of", Id),  # the incident this one may duplicate
    Column("related_id", Id),  # another category's incident at the same place
    Column("merged_into", Id),
    Column("kinds", Json, nullable=False, default=list),
    Column("also_notify", Json, nullable=False, default=list),
    Column("reporter_keys", Json, nullable=False, default=list),  # for matching: who reported it
    Column("text_tokens", Json, nullable=False, default=list),  # for matching: folded words
    Column("lease_holder", String(120)),
    Column("lease_expires_at", UTCDateTime),
    Column("acked_by", String(120)),
    Column("acked_at", UTCDateTime),
    Column("closed_by", String(120)),
    Column("close_reason", Text),
    Column("version", Integer, nullable=False, default=1),
    Index("ix_incidents_active_cell", "cell", "status"),
    Index("ix_incidents_status_updated", "status", "updated_at"),
)

facilities = Table(
    "facilities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("external_id", String(120), unique=True),  # the registry's own id, for re-imports
    Column("name", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("accuracy_m", Float),
    Column("ward_code", String(16)),
    Column("phone", String(32)),  # the facility's own line, E.164, for the screen-pop
    Column("contact_name", Text),
    Column("contact_phone", String(32)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_facilities_phone", "phone"),
)

facility_devices = Table(
    "facility_devices",
    metadata,
    Column("device_id", String(120), primary_key=True),
    Column("facility_id", Id, ForeignKey("facilities.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False, default="device"),  # 'sia', 'mqtt', 'http', 'camera'
    Column("secret", Text),  # SIA DC-09 AES key, HTTP token, ...
    Column("heartbeat_s", Integer),  # the supervision interval the device promises; None: not supervised
    Column("last_seen_at", UTCDateTime),  # the last message of any kind (heartbeats included)
    Column("silent_since", UTCDateTime),  # set when heartbeats stopped; cleared by the next message
)

# Positions that are not reports of their own: Advanced Mobile Location (SMS or HTTPS) sent by a
# phone during an emergency call. Each is kept as received and applied to that number's call report.
location_fixes = Table(
    "location_fixes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False),  # 'aml_sms', 'aml_https'
    Column("channel_ref", String(255), nullable=False),  # MessageSid, or a digest of the HTTPS body
    Column("phone", String(32), nullable=False, index=True),  # E.164
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("accuracy_m", Float, nullable=False),
    Column("source", String(16), nullable=False),  # LocationSource value
    Column("observed_at", UTCDateTime),  # when the phone took the fix
    Column("received_at", UTCDateTime, nullable=False),
    Column("report_id", Id, ForeignKey("reports.id")),  # the call it was applied to, once known
    Column("applied_at", UTCDateTime),
    Column("raw", Json, nullable=False, default=dict),
    UniqueConstraint("channel", "channel_ref", name="uq_location_fixes_channel_ref"),
)

reports = Table(
    "reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False),
    Column("channel_ref", String(255), nullable=False),
    Column("payload_sha256", String(64), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("incident_id", Id, ForeignKey("incidents.id"), index=True),
    Column("reporter_key", String(255), index=True),
    Column("phone_raw", String(64)),
    Column("phone", String(32)),  # E.164 when valid
    Column("phone_valid", Boolean),
    Column("reporter_id", String(255)),
    Column("reporter_name", Text),
    Column("text", Text, nullable=False, default=""),
    Column("language", String(16)),
    Column("category", String(16), nullable=False),
    Column("confidence", Float, nullable=False, default=0.0),
    Column("needs_review", Boolean, nullable=False, default=False),
    Column("classification", Json, nullable=False, default=dict),  # evidence, kinds, also_notify
    Column("category_hint", String(16)),
    Column("lat", Float),
    Column("lon", Float),
    Column("accuracy_m", Float),
    Column("location_source", String(16)),
    Column("location_observed_at", UTCDateTime),
    Column("location_label", Text),
    Column("ward_code", String(16)),
    Column("dialled_number", String(16)),
    Column("device_id", String(120)),
    Column("device_event_code", String(32)),
    Column("facility_id", Id, ForeignKey("facilities.id")),
    Column("attachments", Json, nullable=False, default=list),
    Column("match", Json, nullable=False, default=dict),  # outcome, score, reasons
    Column("raw", Json, nullable=False, default=dict),
    Column("version", Integer, nullable=False, default=1),
    UniqueConstraint("channel", "channel_ref", name="uq_reports_channel_ref"),
    # A door's recent reports (the voice transcriber's pick-up at start, a chat's open conversation).
    Index("ix_reports_channel_updated", "channel", "updated_at"),
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("incident_id", Id, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(120), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("report_id", Id),
    Column("data", Json, nullable=False, default=dict),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),  # the stream cursor
    Column("at", UTCDateTime, nullable=False),
    Column("topic", String(32), nullable=False),  # 'incident', 'report', 'call', ...
    Column("kind", String(32), nullable=False),
    Column("incident_id", Id),
    Column("report_id", Id),
    Column("payload", Json, nullable=False, default=dict),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("name", String(120), nullable=False),
    Column("role", String(32), nullable=False),
    Column("agency", String(16)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

# People who log in to the call-taker console and the dispatch board (machines use api_tokens).
# The password is kept as an scrypt digest with a salt of its own; a user is disabled, never deleted,
# so the audit trail's names keep pointing at someone.
console_users = Table(
    "console_users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("role", String(32), nullable=False),  # 'calltaker' | 'dispatcher' | 'admin'
    Column("agency", String(16)),  # dispatchers only: 'fire' | 'police' | 'medical'
    Column("password_hash", Text, nullable=False),  # 'scrypt$n$r$p$<salt hex>$<digest hex>'
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime),
)

# A browser's login: only the SHA-256 of the cookie's value is stored, with the session's CSRF token.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("console_users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),  # logged out
    Column("remote", String(64)),
)
