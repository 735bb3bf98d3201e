"""Standard exports of one incident for other dispatch systems: NENA EIDO (JSON) and OASIS CAP 1.2 (XML).

Pure functions: the incident row, its reports and its audit events (as the store hands them back) in, a
document out. There is no clock: every time in a document comes from the rows, so the same state of an
incident always gives the same bytes and the same identifiers, and a consumer can tell a repeat from news.
A CAP message is an Alert while nothing has happened since the incident opened (identifier <agency>:incident:
<id>:alert), an Update after any change (a new identifier per state, <references> naming the Alert), a Cancel
once the incident is closed or merged.

What was checked against what (the standards' full texts were not at hand; the tables below are data so a
deployment can correct them):

EIDO: NENA-STA-021.1a-2022, "Emergency Incident Data Object" (STA-024.1 is the conveyance standard that
carries these documents). Checked against NENA's own schema, github.com/NENA911/EIDO-JSON Schema/openapi.yaml
(version 1.0.0), its sample "Sample call transfer EIDO.json", and PHR's EidoLib (generated from STA-021.1a):
- the top level is a data component prologue ($id, lastUpdateTimeStamp, updatedByAgencyReference) plus
  eidoVersion "1.0" (the only value allowed), issuingElementIdentification and agencyComponent (required), ONE
  incidentComponent object, and the lists callComponent, callbackComponent, dispatchComponent, notesComponent,
  agencyComponent, locationComponent, personComponent, mergeComponent, linkComponent, tied by {"$ref": $id};
- every field name used here; direction "incoming"; the REPLACING/REPLACED/SPLIT and RELATED enums;
  notesActionComments is HTML5 (text is HTML-escaped); locationByValue is a PIDF-LO document (RFC 4119 tuple,
  RFC 5491 gs:Circle or gml:Point in EPSG 4326, radius in metres);
- from the sample: ids urn:emergency:uid:incidentid:<id>:<agency> and urn:emergency:uid:callid:<id>:<agency>,
  the values "CallReceiving" (agency role), "psap" (agency type), "Caller" (person role, location type),
  "emergency" (primary call type), tel: callback URIs;
- the media type application/emergency.eido+json (NENA i3 STA-010.3 §4.7.4 as quoted by its test lists).
incidentTypeCommonRegistryText (required) is a value of the "EIDO-IncidentType-Common" registry of the standard's
§3.2 (NENA-STA-021.1b-2022 Table 32, vendored in intake/core/data/eido_incident_types.csv): the incident's first
kind's type (intake.core.incident_types), else its category's (FUNK, SUSP, SICK, TROUBLE). CAP carries the same
value as an <eventCode> named EIDO-IncidentType-Common.
Not verified: the agency role "Dispatch" (seen only in NENA's 2020 draft sample), agency type "ems" (RFC 7163's
responder registry, from memory), the location type "Incident", the call states callBegin/callAnswered/callEnd
(named in the schema's prose only), which side of a merge is REPLACING vs REPLACED, gp:method tokens.
incidentStatusCommonRegistryText and dispositionComponent are left out (registries not seen): the status goes
in incidentStatusInternalText. Not in NENA's schema at all, so not emitted: "eidoMessageIdentifier",
"sendingSystemIdentifier", "$schema", "messageKind" (third-party inventions).

CAP: OASIS Common Alerting Protocol 1.2. Checked against a model generated from CAP-v1.2.xsd (element order,
required elements, every enumeration) and the XSD's time pattern (CAP_TIME below: an offset, never "Z", no
fractions). From the CAP 1.2 text as recalled, not re-read: circle is "lat,lon radius"
with the radius in km; references is "sender,identifier,sent" triples; Private scope requires addresses,
Restricted uses restriction; identifier and sender carry no spaces, commas, "<" or "&". The media type
application/cap+xml is the one in common use (e.g. the US NWS API).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from intake.config import Settings
from intake.core.incident_types import INCIDENT_TYPES, registry_code
from intake.core.model import AGENCIES, Category, IncidentStatus
from intake.core.prepare import URGENT_KINDS

Row = Mapping[str, Any]
Prologue = Callable[..., dict[str, Any]]  # (component id, last update time or None) → the common fields

EIDO_MEDIA_TYPE: Final = "application/emergency.eido+json"
CAP_MEDIA_TYPE: Final = "application/cap+xml"
CAP_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
#: The pattern CAP-v1.2.xsd puts on <sent>, <effective>, <onset>, <expires>.
CAP_TIME: Final = re.compile(r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-,+]\d\d:\d\d")
FORMATS: Final = ("eido", "cap")

#: RFC 2606 keeps .invalid for names that must never resolve: exports say plainly they are unconfigured.
DEFAULT_AGENCY_ID: Final = "intake.invalid"
DEFAULT_AGENCY_NAME: Final = "Hotline Intake"

# --- code tables --------------------------------------------------------------------------------

#: agencyType: the IANA urn:emergency:service:responder registry without its prefix (RFC 7163).
AGENCY_TYPE: Final[Mapping[str, str]] = {"fire": "fire", "police": "police", "medical": "ems"}
#: The Vietnamese service each agency is (113/114/115), for people reading the documents.
AGENCY_LABEL: Final[Mapping[str, Mapping[str, str]]] = {
    "vi-VN": {"fire": "Cảnh sát PCCC và CNCH (114)", "police": "Công an (113)", "medical": "Cấp cứu (115)",
              "unknown": "Chưa phân loại"},
    "en-US": {"fire": "Fire and rescue (114)", "police": "Police (113)", "medical": "Ambulance (115)",
              "unknown": "Unclassified"},
}
#: CAP 1.2 <category>: the incident's category first, then what its kinds add.
CAP_CATEGORY: Final[Mapping[str, str]] = {"fire": "Fire", "police": "Security", "medical": "Health",
                                          "unknown": "Other"}
KIND_CAP_CATEGORY: Final[Mapping[str, str]] = {
    "trapped": "Rescue", "drowning": "Rescue", "building_collapse": "Rescue", "jumper": "Rescue",
    "landslide": "Geo", "flood": "Met", "explosion": "CBRNE", "chemical_spill": "CBRNE",
    "gas_leak": "Safety", "carbon_monoxide": "Safety", "electrical_hazard": "Infra",
    "vehicle_accident": "Transport", "traffic_hazard": "Transport", "vehicle_fire": "Transport",
}
#: Positions that are where the reporter's device is (EIDO location type "Caller"); the others
#: (an address in the text, a click on the map, a facility's address) are where the incident is.
CALLER_SOURCES: Final = frozenset({"gps", "aml", "pidf-lo", "wifi", "cell"})
#: PIDF-LO <gp:method> (RFC 4119 method tokens) for the sources that have one.
PIDF_METHOD: Final[Mapping[str, str]] = {"gps": "GPS", "cell": "Cell", "wifi": "802.11", "calltaker": "Manual"}
#: The AMI bridge's call states (intake.telephony.ami.CallState.state) → EIDO callStateRegistryText.
CALL_STATE: Final[Mapping[str, str]] = {"ringing": "callBegin", "up": "callAnswered", "hungup": "callEnd"}
#: CAP <urgency> of an active incident by priority (1 highest .. 5 lowest): emergency reports are Immediate.
URGENCY: Final[Mapping[int, str]] = {1: "Immediate", 2: "Immediate", 3: "Immediate", 4: "Expected", 5: "Future"}
#: CAP <severity> by priority; a kind where minutes decide (prepare.URGENT_KINDS) is Extreme.
SEVERITY: Final[Mapping[int, str]] = {1: "Severe", 2: "Severe", 3: "Moderate", 4: "Minor", 5: "Minor"}
#: Below this classifier confidence a report is only a Possible event (the classifier's own default threshold).
LIKELY_CONFIDENCE: Final = 0.5
#: The audit events written when an incident is opened (by ingest, or by a split).
OPENING_EVENTS: Final = frozenset({"opened", "split_from", "review_flagged"})
#: This many independent reporters of the incident's category make it Observed.
OBSERVED_REPORTERS: Final = 2
HEADLINE_MAX: Final = 160  # CAP 1.2 asks headlines to stay short (SMS-sized)

_TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "vi-VN": {"reports": "Tin báo", "notes": "Ghi chú", "place": "Vị trí", "unlocated": "Chưa xác định vị trí",
              "closed": "Đã đóng", "merged": "Đã gộp vào sự vụ", "count": "{n} tin báo",
              "execute": "Điều lực lượng theo quy trình của đơn vị; báo nhận trên bảng điều phối.",
              "assess": "Cần xác minh: phân loại hoặc trùng lặp chưa chắc chắn.",
              "source": "nguồn"},
    "en-US": {"reports": "Reports", "notes": "Notes", "place": "Location", "unlocated": "Location not known",
              "closed": "Closed", "merged": "Merged into incident", "count": "reports: {n}",
              "execute": "Dispatch per your agency's procedure; acknowledge on the dispatch board.",
              "assess": "Assess: the category or a possible duplicate is not settled.",
              "source": "source"},
}

# --- who sends ----------------------------------------------------------------------------------

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


@dataclass(frozen=True, slots=True)
class Sender:
    """The centre that issues the documents: a NENA Agency Identifier (a domain name it owns) and a name.

    Responder agencies are named under it (fire.<agency_id>, ...): they are CAP addresses and EIDO agency ids.
    """

    agency_id: str = DEFAULT_AGENCY_ID
    name: str = DEFAULT_AGENCY_NAME

    def __post_init__(self) -> None:
        # CAP's sender and identifier forbid spaces, commas, '<' and '&'; a domain name has none of them.
        if not _DOMAIN.fullmatch(self.agency_id) or len(self.agency_id) > 253:
            raise ValueError(f"agency id {self.agency_id!r} is not a lower-case domain name such as 112.hanoi.gov.vn")

    @property
    def element_id(self) -> str:
        return f"intake.{self.agency_id}"

    def agency(self, category: str) -> str:
        return f"{category}.{self.agency_id}"

    def tracking_id(self, incident_id: int) -> str:
        return f"urn:emergency:uid:incidentid:{incident_id}:{self.agency_id}"

    def call_id(self, report_id: int) -> str:
        return f"urn:emergency:uid:callid:{report_id}:{self.agency_id}"

    def uid(self, *parts: object) -> str:
        """A stable component id: the same thing gets the same id in every export."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, "https://" + self.agency_id + "/" + "/".join(map(str, parts))))


def sender_from_settings(settings: Settings) -> Sender:
    """INTAKE_AGENCY_ID and INTAKE_AGENCY_NAME; ValueError when the id is not a domain name."""
    agency_id = (settings.extra.get("agency_id") or DEFAULT_AGENCY_ID).strip().lower()
    name = (settings.extra.get("agency_name") or DEFAULT_AGENCY_NAME).strip() or DEFAULT_AGENCY_NAME
    return Sender(agency_id, name)


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An incident as the store keeps it: its row, its reports, its audit events (oldest first)."""

    incident: Row
    reports: Sequence[Row] = ()
    events: Sequence[Row] = ()


# --- shared helpers -------------------------------------------------------------------------------

# XML 1.0 allows only these characters; anything else (NUL, vertical tab, lone surrogates) would make the
# document unparseable, so it is replaced. JSON could carry them, but the EIDO notes are HTML.
_NOT_XML: Final = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean_text(text: object) -> str:
    return _NOT_XML.sub("\ufffd", "" if text is None else str(text))


def stamp(when: datetime) -> str:
    """UTC with an explicit offset and whole seconds: what CAP's XSD pattern accepts, and valid RFC 3339."""
    if when.tzinfo is None:
        raise ValueError("a naive datetime cannot be exported: its zone is unknown")
    return when.astimezone(UTC).replace(microsecond=0).isoformat()


def _kinds(incident: Row) -> list[str]:
    return [k for k in (incident.get("kinds") or []) if isinstance(k, str)]


def agencies_of(incident: Row) -> list[str]:
    """The agency that leads, then the agencies also notified."""
    out: list[str] = []
    for value in [incident.get("category"), *(incident.get("also_notify") or [])]:
        if value in {a.value for a in AGENCIES} and value not in out:
            out.append(str(value))
    return out


def _category(incident: Row) -> str:
    value = str(incident.get("category") or "unknown")
    return value if value in CAP_CATEGORY else Category.UNKNOWN.value


def _event_label(incident: Row, lang: str) -> str:
    kinds = _kinds(incident)
    if kinds:
        route = INCIDENT_TYPES.get(kinds[0])
        if route is not None:
            return route.label_in(lang)
        return kinds[0].replace("_", " ").capitalize()
    return AGENCY_LABEL[lang][_category(incident)]


def _inactive(incident: Row) -> bool:
    return incident.get("status") in (IncidentStatus.CLOSED.value, IncidentStatus.MERGED.value)


def _first_event_at(record: IncidentRecord) -> datetime:
    """When the incident's first message was due: its first audit event (opened, split_from)."""
    times: list[datetime] = [e["at"] for e in record.events if isinstance(e.get("at"), datetime)]
    opened: datetime = record.incident["opened_at"]
    return min(times) if times else opened


def _number(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _reporter(report: Row) -> str:
    who = report.get("phone") or report.get("phone_raw") or report.get("reporter_id") or report.get("device_id")
    name = report.get("reporter_name")
    return " ".join(str(x) for x in (who, name) if x) or "?"


def _report_line(report: Row) -> str:
    when = report["received_at"].astimezone(UTC).strftime("%H:%M:%S UTC")
    text = " ".join(str(report.get("text") or "").split())
    head = f"{when} · {report.get('channel')} · {_reporter(report)}"
    return f"{head}: {text}" if text else head


def _closed_line(incident: Row, lang: str) -> str:
    head = f"{_TEXTS[lang]['closed']} ({incident.get('closed_by') or '?'})"
    reason = " ".join(str(incident.get("close_reason") or "").split())
    return f"{head}: {reason}" if reason else head


def _notes(record: IncidentRecord) -> list[Row]:
    return [e for e in record.events if e.get("kind") == "note" and isinstance((e.get("data") or {}).get("text"), str)]


def _note_line(event: Row) -> str:
    when = event["at"].astimezone(UTC).strftime("%H:%M:%S UTC")
    return f"{when} · {event.get('actor')}: {' '.join(str(event['data']['text']).split())}"


# --- PIDF-LO ---------------------------------------------------------------------------------------

def pidf_lo(entity: str, lat: float, lon: float, accuracy_m: float | None, *, source: str | None,
            at: datetime, tuple_id: str) -> str:
    """A PIDF-LO (RFC 4119) with one RFC 5491 shape: a circle of the accuracy, or a point when there is none."""
    pos = f"{_number(lat, 7)} {_number(lon, 7)}"
    if accuracy_m:
        shape = (f'<gs:Circle srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>{pos}</gml:pos>'
                 f'<gs:radius uom="urn:ogc:def:uom:EPSG::9001">{_number(accuracy_m, 1)}</gs:radius></gs:Circle>')
    else:
        shape = f'<gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>{pos}</gml:pos></gml:Point>'
    method = PIDF_METHOD.get(source or "")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"'
        ' xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0"'
        f" entity={quoteattr(entity)}><tuple id={quoteattr(tuple_id)}><status><gp:geopriv>"
        f"<gp:location-info>{shape}</gp:location-info><gp:usage-rules/>"
        + (f"<gp:method>{escape(method)}</gp:method>" if method else "")
        + f"</gp:geopriv></status><timestamp>{stamp(at)}</timestamp></tuple></presence>"
    )


# --- EIDO --------------------------------------------------------------------------------------------

def _ref(target: str) -> dict[str, str]:
    return {"$ref": target}


def _html(text: str) -> str:
    """notesActionComments is HTML5: the reporter's words are text, never markup."""
    return html.escape(clean_text(text)).replace("\n", "<br>")


def _compact(component: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in component.items() if v not in (None, [], "")}


def eido(record: IncidentRecord, sender: Sender) -> dict[str, Any]:
    """The incident as a NENA EIDO (see the module's notes for what each field rests on)."""
    inc = record.incident
    incident_id = int(inc["id"])
    updated = stamp(last_change_at(record))

    def prologue(component_id: str, at: datetime | None = None) -> dict[str, Any]:
        return {"$id": component_id, "lastUpdateTimeStamp": stamp(at) if at else updated,
                "updatedByAgencyReference": _ref(sender.agency_id)}

    locations: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    callbacks: dict[str, dict[str, Any]] = {}
    people: dict[str, dict[str, Any]] = {}

    if inc.get("lat") is not None and inc.get("lon") is not None:
        loc_id = sender.uid("incident", incident_id, "location")
        locations.append(_compact({
            **prologue(loc_id), "locationTypeDescriptionRegistryText": "Incident",
            "locationByValue": pidf_lo(f"pres:incident-{incident_id}@{sender.agency_id}", inc["lat"], inc["lon"],
                                       inc.get("accuracy_m"), source=inc.get("location_source"),
                                       at=inc["updated_at"], tuple_id=f"incident-{incident_id}"),
            "locationDescriptionText": clean_text(inc.get("location_label") or "") or None}))

    for rep in record.reports:
        rid = int(rep["id"])
        at = rep.get("updated_at") or rep["received_at"]
        rep_locations: list[dict[str, str]] = []
        if rep.get("lat") is not None and rep.get("lon") is not None:
            loc_id = sender.uid("report", rid, "location")
            source = rep.get("location_source")
            locations.append(_compact({
                **prologue(loc_id, at),
                "locationTypeDescriptionRegistryText": "Caller" if source in CALLER_SOURCES else "Incident",
                "locationByValue": pidf_lo(f"pres:report-{rid}@{sender.agency_id}", rep["lat"], rep["lon"],
                                           rep.get("accuracy_m"), source=source,
                                           at=rep.get("location_observed_at") or rep["received_at"],
                                           tuple_id=f"report-{rid}"),
                "locationDescriptionText": clean_text(rep.get("location_label") or "") or None}))
            rep_locations.append(_ref(loc_id))
        note_id = sender.uid("report", rid, "note")
        notes.append({**prologue(note_id, at), "notesActionComments": _html(_report_line(rep))})

        callback_ref = None
        phone = rep.get("phone")
        if phone:
            callback_id = sender.uid("callback", phone)
            callbacks.setdefault(callback_id, {**prologue(callback_id, at), "callBackInformationUri": [f"tel:{phone}"]})
            callback_ref = _ref(callback_id)
        call_ids: list[str] = []
        if rep.get("channel") == "call":
            call = (rep.get("raw") or {}).get("call") or {}
            call_id = sender.call_id(rid)
            call_ids.append(call_id)
            calls.append(_compact({
                **prologue(call_id, at), "standardPrimaryCallType": "emergency",
                "localCallType": clean_text(f"call {rep.get('dialled_number') or ''}".strip()),
                "direction": "incoming", "callStartTimestamp": stamp(rep["received_at"]),
                "answerDate": _iso_or_none(call.get("answered_at")),
                "callStateRegistryText": CALL_STATE.get(str(call.get("state")), "callBegin"),
                "callBackReference": callback_ref, "locationReference": rep_locations,
                "notesReference": [_ref(note_id)]}))
        # A person is a reporter (one per phone / chat user, whatever door they used); a device is not.
        key = rep.get("reporter_key")
        if key and not (rep.get("device_id") and not phone):
            person_id = sender.uid("person", key)
            person = people.setdefault(person_id, {
                **prologue(person_id, at), "personIncidentRoleRegistryText": ["Caller"],
                "callIdentifier": [], "locationReference": [], "notesReference": [], "callBackReference": None})
            person["callIdentifier"] += call_ids
            person["locationReference"] += rep_locations
            person["notesReference"].append(_ref(note_id))
            person["callBackReference"] = person["callBackReference"] or callback_ref

    for event in _notes(record):
        notes.append({**prologue(sender.uid("event", event["id"]), event["at"]),
                      "notesActionComments": _html(_note_line(event))})
    if inc.get("status") == IncidentStatus.CLOSED.value:
        notes.append({**prologue(sender.uid("incident", incident_id, "closed"), inc.get("closed_at")),
                      "notesActionComments": _html(_closed_line(inc, "en-US"))})

    agencies = [{**prologue(sender.agency_id), "agencyRoleDescriptionRegistryText": ["CallReceiving"],
                 "agencyType": ["psap"], "incidentOwningAgencyIndicator": True}]
    for agency in agencies_of(inc):
        agencies.append({**prologue(sender.agency(agency)), "agencyRoleDescriptionRegistryText": ["Dispatch"],
                         "agencyType": [AGENCY_TYPE[agency]], "incidentOwningAgencyIndicator": False})
    known_agencies = {a["$id"] for a in agencies}
    dispatches = []
    for event in record.events:
        if event.get("kind") != "acknowledged":
            continue
        acked_by = sender.agency(str((event.get("data") or {}).get("agency") or inc.get("category")))
        if acked_by in known_agencies:
            dispatches.append({**prologue(sender.uid("event", event["id"]), event["at"]),
                               "agencyReference": _ref(acked_by)})

    incident_component = _compact({
        **prologue(sender.uid("incident", incident_id)),
        "incidentTypeInternalCode": (_kinds(inc) or [_category(inc)])[0],
        "incidentTypeInternalText": _event_label(inc, "vi-VN"),
        "incidentTypeCommonRegistryText": registry_code(_kinds(inc), Category(_category(inc))),
        "incidentStatusInternalText": [str(inc.get("status"))] + (["needs_review"] if inc.get("needs_review") else []),
        "internalIncidentId": str(incident_id),
        "locationReference": [_ref(loc["$id"]) for loc in locations],
        "personReference": [_ref(p) for p in people],
        "incidentPriorityInternalText": str(inc.get("priority")),
        "incidentCommonPriorityNumber": common_priority(inc.get("priority")),
        "notesReference": [_ref(n["$id"]) for n in notes],
    })
    return _compact({
        **prologue(sender.tracking_id(incident_id)),
        "eidoVersion": "1.0",
        "issuingElementIdentification": sender.element_id,
        "mergeComponent": _merges(record, sender, prologue),
        "linkComponent": _links(inc, sender, prologue),
        "incidentComponent": incident_component,
        "callComponent": calls,
        "callbackComponent": list(callbacks.values()),
        "dispatchComponent": dispatches,
        "notesComponent": notes,
        "agencyComponent": agencies,
        "locationComponent": locations,
        "personComponent": [_compact(p) for p in people.values()],
    })


def _iso_or_none(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp(when) if when.tzinfo else None


def common_priority(priority: object) -> int:
    """Our 1 (highest) .. 5 (lowest) on EIDO's 0 .. 10 scale, where 10 is the highest."""
    p = priority if isinstance(priority, int) and 1 <= priority <= 5 else 3
    return (6 - p) * 2


#: Audit event kind → (EIDO merge direction, the data key naming the other incident).
_MERGE_EVENTS: Final[Mapping[str, tuple[str, str]]] = {
    "merged_into": ("REPLACED", "into"), "merged_from": ("REPLACING", "from"),
    "split": ("SPLIT", "into"), "split_from": ("SPLIT", "from"),
}


def _merges(record: IncidentRecord, sender: Sender, prologue: Prologue) -> list[dict[str, Any]]:
    out = []
    for event in record.events:
        rule = _MERGE_EVENTS.get(str(event.get("kind")))
        other = (event.get("data") or {}).get(rule[1]) if rule else None
        if rule and isinstance(other, int):
            out.append({**prologue(sender.uid("event", event["id"]), event["at"]),
                        "incidentTrackingIdentifier": sender.tracking_id(other), "incidentMergeDirectionCode": rule[0]})
    return out


def _links(incident: Row, sender: Sender, prologue: Prologue) -> list[dict[str, Any]]:
    out = []
    for column, reason in (("related_id", "another agency's incident at the same place"),
                           ("review_of", "possible duplicate, awaiting a call-taker's review")):
        other = incident.get(column)
        if isinstance(other, int):
            out.append({**prologue(sender.uid("incident", incident["id"], column, other)),
                        "incidentTrackingIdentifier": sender.tracking_id(other), "transactionReasonText": reason,
                        "linkDirectionCode": "RELATED"})
    return out


def eido_json(record: IncidentRecord, sender: Sender, *, indent: int | None = None) -> str:
    return json.dumps(eido(record, sender), ensure_ascii=False, indent=indent)


# --- CAP -------------------------------------------------------------------------------------------

def is_opening(record: IncidentRecord) -> bool:
    """Nothing has happened to the incident since it was opened: its first message is due (a CAP Alert).

    The incident row is at version 1, its only audit events are the ones written when it was opened, and no
    report changed after that (a call's transcript growing changes its report, not the incident)."""
    inc = record.incident
    if _inactive(inc) or int(inc.get("version") or 1) != 1:
        return False
    if any(e.get("kind") not in OPENING_EVENTS for e in record.events):
        return False
    first = _first_event_at(record)
    return all((r.get("updated_at") or r["received_at"]) <= first for r in record.reports)


def last_change_at(record: IncidentRecord) -> datetime:
    """When the incident, one of its reports or its audit trail last changed (a note changes only the trail)."""
    times: list[datetime] = [record.incident["updated_at"]]
    times += [e["at"] for e in record.events if isinstance(e.get("at"), datetime)]
    times += [r["updated_at"] for r in record.reports if isinstance(r.get("updated_at"), datetime)]
    return max(times)


def revision(record: IncidentRecord) -> str:
    """Names the state of the incident: its row's version and a digest of which reports and events it has.

    The row's version alone is not enough: a note or a growing transcript leave the incident row as it was."""
    state = {"version": record.incident.get("version"),
             "reports": sorted((int(r["id"]), int(r.get("version") or 1)) for r in record.reports),
             "events": sorted(int(e["id"]) for e in record.events)}
    digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:10]
    return f"v{record.incident.get('version') or 1}-{digest}"


def cap_identifier(sender: Sender, record: IncidentRecord) -> str:
    """One identifier per state of the incident: exporting the same state again is the same message.

    The first message (the Alert) is always <agency>:incident:<id>:alert, so every later message can name it
    in <references> without it being stored anywhere."""
    head = f"{sender.agency_id}:incident:{int(record.incident['id'])}"
    return f"{head}:alert" if is_opening(record) else f"{head}:{revision(record)}"


def cap_sent(record: IncidentRecord) -> datetime:
    return _first_event_at(record) if is_opening(record) else last_change_at(record)


def cap_msg_type(record: IncidentRecord) -> str:
    if _inactive(record.incident):
        return "Cancel"
    return "Alert" if is_opening(record) else "Update"


def cap_urgency(incident: Row) -> str:
    if _inactive(incident):
        return "Past"
    return URGENCY.get(int(incident.get("priority") or 3), "Immediate")


def cap_severity(incident: Row) -> str:
    if _category(incident) == Category.UNKNOWN.value:
        return "Unknown"
    if URGENT_KINDS.intersection(_kinds(incident)):
        return "Extreme"
    return SEVERITY.get(int(incident.get("priority") or 3), "Moderate")


def cap_certainty(record: IncidentRecord) -> str:
    inc = record.incident
    category = _category(inc)
    if category == Category.UNKNOWN.value:
        return "Unknown"
    agreeing = [r for r in record.reports if r.get("category") == category]
    reporters = {r.get("reporter_key") or f"report:{r['id']}" for r in agreeing}
    if len(reporters) >= OBSERVED_REPORTERS:
        return "Observed"  # independent witnesses of the same kind of emergency
    best = max((float(r.get("confidence") or 0.0) for r in agreeing), default=0.0)
    if inc.get("needs_review") or best < LIKELY_CONFIDENCE:
        return "Possible"
    return "Likely"


def cap_categories(incident: Row) -> list[str]:
    out = [CAP_CATEGORY[_category(incident)]]
    for kind in _kinds(incident):
        extra = KIND_CAP_CATEGORY.get(kind)
        if extra and extra not in out:
            out.append(extra)
    return out


def cap_response_type(incident: Row) -> str:
    status = incident.get("status")
    if status == IncidentStatus.CLOSED.value:
        return "AllClear"
    if status == IncidentStatus.MERGED.value:
        return "None"  # the response goes on under the incident it was merged into
    if incident.get("needs_review") or _category(incident) == Category.UNKNOWN.value:
        return "Assess"
    return "Execute"


def cap_circle(incident: Row) -> str | None:
    """CAP's circle: "lat,lon radius" in WGS 84, the radius in kilometres (the accuracy of the position)."""
    lat, lon = incident.get("lat"), incident.get("lon")
    if lat is None or lon is None:
        return None
    radius_km = float(incident.get("accuracy_m") or 0.0) / 1000.0
    return f"{_number(lat, 6)},{_number(lon, 6)} {_number(radius_km, 3)}"


def _description(record: IncidentRecord, lang: str) -> str:
    inc, words = record.incident, _TEXTS[lang]
    # The summary is the first report's words: said once, in the list of reports, when there is one.
    lines = [] if record.reports else [" ".join(str(inc.get("summary") or "").split())]
    if inc.get("lat") is not None and inc.get("lon") is not None:
        lines.append(f"{words['place']}: {inc.get('location_label') or ''} ({_number(inc['lat'], 6)}, "
                     f"{_number(inc['lon'], 6)} ±{_number(float(inc.get('accuracy_m') or 0), 0)} m, "
                     f"{words['source']} {inc.get('location_source') or '?'})")
    if record.reports:
        lines.append(f"{words['reports']} ({len(record.reports)}):")
        lines += [f"- {_report_line(r)}" for r in record.reports]
    notes = _notes(record)
    if notes:
        lines.append(f"{words['notes']}:")
        lines += [f"- {_note_line(e)}" for e in notes]
    if inc.get("status") == IncidentStatus.CLOSED.value:
        lines.append(_closed_line(inc, lang))
    if inc.get("status") == IncidentStatus.MERGED.value:
        lines.append(f"{words['merged']} #{inc.get('merged_into')}")
    return "\n".join(line for line in lines if line)


def _headline(incident: Row, lang: str) -> str:
    words = _TEXTS[lang]
    place = incident.get("location_label") or (words["unlocated"] if incident.get("lat") is None else "")
    text = f"{_event_label(incident, lang)} — {place}" if place else _event_label(incident, lang)
    text = f"{text} ({words['count'].format(n=incident.get('report_count') or 0)})"
    text = " ".join(clean_text(text).split())
    return text if len(text) <= HEADLINE_MAX else text[: HEADLINE_MAX - 1] + "…"


def cap_alert(record: IncidentRecord, sender: Sender, *, languages: Sequence[str] = ("vi-VN", "en-US")
              ) -> ET.Element:
    """The incident as an OASIS CAP 1.2 alert addressed to the agencies that handle it, never to the public."""
    inc = record.incident
    incident_id = int(inc["id"])

    def add(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
        if text is not None:
            element.text = clean_text(text)
        return element

    alert = ET.Element(f"{{{CAP_NS}}}alert")
    add(alert, "identifier", cap_identifier(sender, record))
    add(alert, "sender", sender.agency_id)
    add(alert, "sent", stamp(cap_sent(record)))
    add(alert, "status", "Actual")
    msg_type = cap_msg_type(record)
    add(alert, "msgType", msg_type)
    add(alert, "source", sender.name)
    agencies = agencies_of(inc)
    if agencies:
        add(alert, "scope", "Private")
        add(alert, "addresses", " ".join(sender.agency(a) for a in agencies))
    else:
        # No agency has it yet (unclassified): every dispatcher of the centre may see it, nobody else.
        add(alert, "scope", "Restricted")
        add(alert, "restriction", f"For {sender.agency_id} call-takers and dispatchers only; not for public release")
    if inc.get("status") == IncidentStatus.CLOSED.value:
        add(alert, "note", _closed_line(inc, "en-US"))
    elif inc.get("status") == IncidentStatus.MERGED.value:
        add(alert, "note", f"Merged into incident {inc.get('merged_into')}")
    if msg_type != "Alert":
        first = f"{sender.agency_id}:incident:{incident_id}:alert"
        add(alert, "references", f"{sender.agency_id},{first},{stamp(_first_event_at(record))}")
    incidents = [sender.tracking_id(incident_id)]
    if isinstance(inc.get("merged_into"), int):
        incidents.append(sender.tracking_id(inc["merged_into"]))
    add(alert, "incidents", " ".join(incidents))
    for lang in languages:
        _cap_info(add, alert, record, sender, lang)
    return alert


def _cap_info(add: Callable[..., ET.Element], alert: ET.Element, record: IncidentRecord, sender: Sender,
              lang: str) -> None:
    inc, words = record.incident, _TEXTS[lang]
    info = add(alert, "info")
    add(info, "language", lang)
    for category in cap_categories(inc):
        add(info, "category", category)
    add(info, "event", _event_label(inc, lang))
    response = cap_response_type(inc)
    add(info, "responseType", response)
    add(info, "urgency", cap_urgency(inc))
    add(info, "severity", cap_severity(inc))
    add(info, "certainty", cap_certainty(record))
    agencies = agencies_of(inc) or ["unknown"]
    add(info, "audience", ", ".join(AGENCY_LABEL[lang][a] for a in agencies))
    code = add(info, "eventCode")
    add(code, "valueName", "EIDO-IncidentType-Common")
    add(code, "value", registry_code(_kinds(inc), Category(_category(inc))))
    for kind in _kinds(inc):
        code = add(info, "eventCode")
        add(code, "valueName", "hotline-intake:kind")
        add(code, "value", kind)
    add(info, "onset", stamp(inc["opened_at"]))
    add(info, "senderName", sender.name)
    add(info, "headline", _headline(inc, lang))
    add(info, "description", _description(record, lang))
    if response in ("Execute", "Assess"):
        add(info, "instruction", words["execute" if response == "Execute" else "assess"])
    for name, value in (("priority", inc.get("priority")), ("reportCount", inc.get("report_count")),
                        ("incidentStatus", inc.get("status"))):
        parameter = add(info, "parameter")
        add(parameter, "valueName", f"hotline-intake:{name}")
        add(parameter, "value", value)
    area = add(info, "area")
    place = inc.get("location_label") or inc.get("ward_code") or words["unlocated"]
    add(area, "areaDesc", place)
    circle = cap_circle(inc)
    if circle is not None:
        add(area, "circle", circle)


def cap_xml(record: IncidentRecord, sender: Sender) -> bytes:
    document: bytes = ET.tostring(cap_alert(record, sender), encoding="utf-8", xml_declaration=True,
                                  default_namespace=CAP_NS)
    return document


def export(record: IncidentRecord, sender: Sender, fmt: str) -> tuple[bytes, str]:
    """(document, media type) in one of FORMATS."""
    if fmt == "eido":
        return eido_json(record, sender).encode(), EIDO_MEDIA_TYPE
    if fmt == "cap":
        return cap_xml(record, sender), CAP_MEDIA_TYPE
    raise ValueError(f"format must be one of {', '.join(FORMATS)}")


__all__ = [
    "CAP_MEDIA_TYPE", "EIDO_MEDIA_TYPE", "FORMATS", "IncidentRecord", "Sender", "cap_alert", "cap_xml", "eido",
    "eido_json", "export", "sender_from_settings",
]
