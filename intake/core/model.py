"""Domain model shared by every door and by the store.

These are plain frozen dataclasses: the core never does I/O, so they carry
no behaviour beyond small derived properties.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Category(enum.StrEnum):
    FIRE = "fire"
    POLICE = "police"
    MEDICAL = "medical"
    UNKNOWN = "unknown"


#: The agencies a report can be routed to (every category but unknown).
AGENCIES: tuple[Category, ...] = (Category.FIRE, Category.POLICE, Category.MEDICAL)


class LocationSource(enum.StrEnum):
    """Where a position came from, best first when accuracies tie."""

    CALLTAKER = "calltaker"  # clicked on the map and confirmed by a person
    GPS = "gps"  # device GNSS (app, Telegram, Zalo, camera)
    AML = "aml"  # Advanced Mobile Location (ETSI TS 103 625)
    PIDF_LO = "pidf-lo"  # RFC 4119 location in a SIP MESSAGE
    FACILITY = "facility"  # registered address of the facility a device belongs to
    WIFI = "wifi"
    CELL = "cell"
    ADDRESS = "address"  # an address found in the text or speech, resolved by the gazetteer
    UNKNOWN = "unknown"


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # an agency has taken it on
    CLOSED = "closed"
    MERGED = "merged"  # folded into another incident; see merged_into

    @property
    def is_active(self) -> bool:
        return self in (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)


ACTIVE_STATUSES: tuple[IncidentStatus, ...] = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)


class Outcome(enum.StrEnum):
    """What ingest did with a report."""

    CREATED = "created"  # a new incident was opened for it
    ATTACHED = "attached"  # it joined an existing incident
    REVIEW = "review"  # a new incident was opened, flagged: a person must decide whether it is a duplicate
    DUPLICATE = "duplicate"  # the same (channel, channel_ref) was already stored: a retried delivery
    UPDATED = "updated"  # update_report changed an existing report


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float
    accuracy_m: float
    source: LocationSource = LocationSource.UNKNOWN
    observed_at: datetime | None = None
    label: str | None = None  # human text: the address found, the facility name, ...
    ward_code: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            raise ValueError(f"latitude {self.lat!r} is outside -90..90")
        if not (math.isfinite(self.lon) and -180.0 <= self.lon <= 180.0):
            raise ValueError(f"longitude {self.lon!r} is outside -180..180")
        if not (math.isfinite(self.accuracy_m) and self.accuracy_m >= 0):
            raise ValueError(f"accuracy {self.accuracy_m!r} m must be a finite number >= 0")


@dataclass(frozen=True, slots=True)
class Phone:
    """A phone number as the reporter gave it and as we understood it."""

    raw: str
    e164: str | None  # None when it does not parse as a valid number
    valid: bool
    short_code: str | None = None  # '112'..'115' (and other service numbers) when the number is one

    @property
    def key(self) -> str:
        """What identifies the reporter: E.164 when known, else the raw digits."""
        return self.e164 or self.raw


@dataclass(frozen=True, slots=True)
class Evidence:
    """One reason the classifier leaned one way."""

    term: str  # the phrase as found (folded), or 'dialled 114', or 'CID 110'
    category: Category
    weight: float
    source: str  # 'text' | 'dialled' | 'device' | 'hint'
    negated: bool = False  # the phrase was found but negated ("không có cháy"): it did not count
    kind: str | None = None  # the incident type from the routing table: 'gas_leak', 'drowning', ...


@dataclass(frozen=True, slots=True)
class Classification:
    category: Category
    confidence: float  # 0..1
    evidence: tuple[Evidence, ...] = ()
    needs_review: bool = False  # below the threshold: a person must decide
    kinds: tuple[str, ...] = ()  # incident types recognised ('vehicle_accident', ...)
    also_notify: tuple[Category, ...] = ()  # secondary agencies from the routing table


@dataclass(frozen=True, slots=True)
class ReportIn:
    """What a channel adapter hands to ingest: parsed, not yet normalised."""

    channel: str  # 'app', 'call', 'telegram', 'zalo', 'sms', 'sip', 'device', ...
    channel_ref: str  # stable id of the delivery: retries carry the same one
    received_at: datetime
    text: str = ""
    phone: str | None = None  # the reporter's number as given
    reporter_id: str | None = None  # channel user id (Telegram chat id, Zalo user id, ...)
    reporter_name: str | None = None
    language: str | None = None  # BCP 47, e.g. 'vi', 'en'
    location: Location | None = None
    category_hint: Category | None = None  # a category the reporter chose explicitly (app button)
    dialled_number: str | None = None  # 112 / 113 / 114 / 115 for calls
    device_id: str | None = None  # alarm device / camera id
    device_event_code: str | None = None  # Contact ID / SIA code, e.g. 'CID:110'
    facility_id: int | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)  # the payload as received, for the record


@dataclass(frozen=True, slots=True)
class Facility:
    id: int
    name: str
    address: str
    location: Location | None
    contact_name: str | None = None
    contact_phone: str | None = None
    device_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IncidentView:
    """What matching needs to know about an active incident."""

    id: int
    category: Category
    status: IncidentStatus
    location: Location | None
    opened_at: datetime
    last_report_at: datetime
    report_count: int
    reporter_keys: frozenset[str] = frozenset()  # phone / channel user ids of its reporters
    text_tokens: frozenset[str] = frozenset()  # folded words of its reports
    kinds: tuple[str, ...] = ()  # incident types its reports named
