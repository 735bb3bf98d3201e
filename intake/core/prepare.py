"""normalise → classify → locate: everything ingest does to a report before it touches the store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from intake.core import address
from intake.core.classify import classify
from intake.core.match import Subject, better_location, text_tokens
from intake.core.model import Category, Classification, Facility, Location, LocationSource, Phone, ReportIn
from intake.core.phone import dialled_line, normalise_phone
from intake.core.textmodel import TextModel
from intake.core.textnorm import nfc, tokens

#: 1 = most urgent. Kinds from the routing table may raise it (see `priority`).
CATEGORY_PRIORITY = {Category.FIRE: 1, Category.MEDICAL: 2, Category.POLICE: 2, Category.UNKNOWN: 3}
URGENT_KINDS = frozenset(  # kinds from routing.toml where minutes decide
    {"trapped", "building_collapse", "explosion", "drowning", "cardiac", "unconscious", "breathing_difficulty",
     "choking", "stabbing", "shooting", "kidnapping", "gas_leak", "carbon_monoxide", "jumper"}
)


@dataclass(frozen=True, slots=True)
class Prepared:
    report: ReportIn
    text: str  # NFC
    phone: Phone | None
    reporter_key: str | None
    dialled_number: str | None
    classification: Classification
    location: Location | None
    address_label: str | None
    tokens: frozenset[str]
    payload_sha256: str

    @property
    def category(self) -> Category:
        return self.classification.category

    def subject(self) -> Subject:
        return Subject(
            category=self.category,
            location=self.location,
            received_at=self.report.received_at,
            reporter_key=self.reporter_key,
            text_tokens=self.tokens,
            kinds=self.classification.kinds,
        )

    @property
    def priority(self) -> int:
        base = CATEGORY_PRIORITY[self.category]
        if URGENT_KINDS.intersection(self.classification.kinds):
            base = 1
        return base


def payload_digest(report: ReportIn) -> str:
    """A digest of what the reporter sent, to tell a retry from a different report reusing a key."""
    body: dict[str, Any] = {"raw": report.raw, "text": report.text}
    if not report.raw:
        loc = report.location
        body.update(
            phone=report.phone,
            location=[loc.lat, loc.lon, loc.accuracy_m] if loc else None,
            category=report.category_hint,
        )
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def reporter_key(report: ReportIn, phone: Phone | None) -> str | None:
    if phone is not None and phone.short_code is None and (phone.e164 or phone.raw):
        return phone.key
    if report.reporter_id:
        return f"{report.channel}:{report.reporter_id}"
    if report.device_id:
        return f"device:{report.device_id}"
    return None


def facility_location(facility: Facility | None) -> Location | None:
    if facility is None or facility.location is None:
        return None
    loc = facility.location
    return Location(
        lat=loc.lat,
        lon=loc.lon,
        accuracy_m=loc.accuracy_m,
        source=LocationSource.FACILITY,
        observed_at=loc.observed_at,
        label=facility.name + (f", {facility.address}" if facility.address else ""),
        ward_code=loc.ward_code,
    )


def prepare(
    report: ReportIn,
    *,
    facility: Facility | None = None,
    region: str = "VN",
    default_province: str | None = "Hà Nội",
    threshold: float = 0.5,
    classification: Classification | None = None,
    model: TextModel | None | Literal["default"] = "default",
) -> Prepared:
    """Pure: the same input gives the same output. `classification` overrides the classifier
    (a call-taker's decision)."""
    text = nfc(report.text or "").strip()
    phone = normalise_phone(report.phone, region) if report.phone else None
    dialled = dialled_line(report.dialled_number)
    if classification is None:
        classification = classify(
            text,
            dialled_number=dialled,
            device_event_code=report.device_event_code,
            category_hint=report.category_hint,
            threshold=threshold,
            model=model,
        )
    location = report.location
    location = better_location(facility_location(facility), location)
    address_label = None
    if text:
        found = address.locate_text(text, default_province=default_province)
        if found is not None:
            _, addr_loc = found
            address_label = addr_loc.label
            location = better_location(addr_loc, location) if location is not None else addr_loc
    return Prepared(
        report=report,
        text=text,
        phone=phone,
        reporter_key=reporter_key(report, phone),
        dialled_number=dialled,
        classification=classification,
        location=location,
        address_label=address_label,
        tokens=text_tokens(tokens(text)),
        payload_sha256=payload_digest(report),
    )


#: A report of the kind a centre takes all day, prepared once at start by `warm_up`.
_WARM_UP = ReportIn(channel="app", channel_ref="warm-up", received_at=datetime(2025, 7, 1, tzinfo=UTC),
                    text="Cháy nhà ở số 12 phố Hàng Bạc, phường Hoàn Kiếm, Hà Nội; có người bị kẹt", phone="0912345678")


def warm_up() -> None:
    """Load what the first report would load (the gazetteer, the address tables, the term tables: about a
    second): a server calls it at start, so the first live call's classification does not stall the loop."""
    prepare(_WARM_UP)
