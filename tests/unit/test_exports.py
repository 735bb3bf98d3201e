"""The standard exports as pure functions: an incident row, its reports and events in; EIDO JSON and CAP XML out.

CAP documents are checked with CAP_SCHEMA below: the element sequences, cardinalities and enumerations of
OASIS CAP-v1.2.xsd, written out by hand (the XSD's own text was not at hand, and lxml is not a dependency).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from intake.channels.sip_message import parse_pidf_lo
from intake.config import Settings
from intake.dispatch import exports
from intake.dispatch.exports import IncidentRecord, Sender

T0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)
SENDER = Sender("hotline.example.vn", "Trung tâm 112 Hà Nội")
NS = "{urn:oasis:names:tc:emergency:cap:1.2}"

# --- CAP 1.2 structure (CAP-v1.2.xsd) ----------------------------------------------------------------

MANY = math.inf
_PAIR = [("valueName", 1, 1), ("value", 1, 1)]
CAP_SCHEMA: dict[str, list[tuple[str, int, float]]] = {
    "alert": [("identifier", 1, 1), ("sender", 1, 1), ("sent", 1, 1), ("status", 1, 1), ("msgType", 1, 1),
              ("source", 0, 1), ("scope", 1, 1), ("restriction", 0, 1), ("addresses", 0, 1), ("code", 0, MANY),
              ("note", 0, 1), ("references", 0, 1), ("incidents", 0, 1), ("info", 0, MANY)],
    "info": [("language", 0, 1), ("category", 1, MANY), ("event", 1, 1), ("responseType", 0, MANY),
             ("urgency", 1, 1), ("severity", 1, 1), ("certainty", 1, 1), ("audience", 0, 1), ("eventCode", 0, MANY),
             ("effective", 0, 1), ("onset", 0, 1), ("expires", 0, 1), ("senderName", 0, 1), ("headline", 0, 1),
             ("description", 0, 1), ("instruction", 0, 1), ("web", 0, 1), ("contact", 0, 1),
             ("parameter", 0, MANY), ("resource", 0, MANY), ("area", 0, MANY)],
    "area": [("areaDesc", 1, 1), ("polygon", 0, MANY), ("circle", 0, MANY), ("geocode", 0, MANY),
             ("altitude", 0, 1), ("ceiling", 0, 1)],
    "eventCode": _PAIR, "parameter": _PAIR, "geocode": _PAIR,
    "resource": [("resourceDesc", 1, 1), ("mimeType", 1, 1), ("size", 0, 1), ("uri", 0, 1), ("derefUri", 0, 1),
                 ("digest", 0, 1)],
}
CAP_ENUMS: dict[str, set[str]] = {
    "status": {"Actual", "Exercise", "System", "Test", "Draft"},
    "msgType": {"Alert", "Update", "Cancel", "Ack", "Error"},
    "scope": {"Public", "Restricted", "Private"},
    "category": {"Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
                 "CBRNE", "Other"},
    "responseType": {"Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"},
    "urgency": {"Immediate", "Expected", "Future", "Past", "Unknown"},
    "severity": {"Extreme", "Severe", "Moderate", "Minor", "Unknown"},
    "certainty": {"Observed", "Likely", "Possible", "Unlikely", "Unknown"},
}
CAP_TIMES = {"sent", "effective", "onset", "expires"}
CAP_TIME = re.compile(r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-,+]\d\d:\d\d")  # the XSD's pattern, verbatim


def _check_element(element: ET.Element, problems: list[str]) -> None:
    name = element.tag.removeprefix(NS)
    if not element.tag.startswith(NS):
        problems.append(f"{element.tag} is not in the CAP 1.2 namespace")
        return
    children = [c.tag.removeprefix(NS) for c in element]
    if name in CAP_SCHEMA:
        at = 0
        for child, low, high in CAP_SCHEMA[name]:
            count = 0
            while at < len(children) and children[at] == child:
                at, count = at + 1, count + 1
            if not low <= count <= high:
                problems.append(f"<{name}> has {count} <{child}>, needs {low}..{high}")
        if at != len(children):
            problems.append(f"<{name}>: <{children[at]}> is out of sequence or unknown")
        for child_element in element:
            _check_element(child_element, problems)
        return
    if len(element):
        problems.append(f"<{name}> must be text only")
    text = element.text or ""
    if name in CAP_ENUMS and text not in CAP_ENUMS[name]:
        problems.append(f"<{name}>{text}</{name}> is not one of {sorted(CAP_ENUMS[name])}")
    if name in CAP_TIMES and not CAP_TIME.fullmatch(text):
        problems.append(f"<{name}>{text}</{name}> does not match the CAP time pattern")


def check_cap(document: bytes) -> ET.Element:
    """Parse a CAP 1.2 alert and check it against the XSD's structure and CAP's conditional rules."""
    root = ET.fromstring(document)
    assert root.tag == f"{NS}alert"
    problems: list[str] = []
    _check_element(root, problems)
    scope = root.findtext(f"{NS}scope")
    if scope == "Private" and not root.findtext(f"{NS}addresses"):
        problems.append("scope Private needs addresses")
    if scope == "Restricted" and not root.findtext(f"{NS}restriction"):
        problems.append("scope Restricted needs a restriction")
    if root.findtext(f"{NS}msgType") in ("Update", "Cancel", "Ack", "Error"):
        refs = (root.findtext(f"{NS}references") or "").split()
        if not refs or not all(len(r.split(",")) == 3 and CAP_TIME.fullmatch(r.split(",")[2]) for r in refs):
            problems.append(f"references {refs} are not sender,identifier,sent triples")
    for tag in ("identifier", "sender"):
        if re.search(r"[\s,<&]", root.findtext(f"{NS}{tag}") or " "):
            problems.append(f"<{tag}> has a space, comma, < or &")
    assert not problems, problems
    return root


def eido_refs(document: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """Every $id and every $ref of an EIDO."""
    ids: set[str] = set()
    refs: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in ("$id", "$ref") and isinstance(value, str):
                    (ids if key == "$id" else refs).add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    return ids, refs


# --- rows as the store returns them ----------------------------------------------------------------

def incident_row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": 7, "category": "fire", "status": "open", "priority": 1, "summary": "Cháy nhà số 12 Hàng Bạc",
        "lat": 21.0341, "lon": 105.851, "accuracy_m": 25.0, "location_source": "gps",
        "location_label": "12 Hàng Bạc, Hoàn Kiếm", "ward_code": "00070", "cell": None, "opened_at": T0,
        "updated_at": T0, "last_report_at": T0, "closed_at": None, "report_count": 3, "needs_review": False,
        "review_of": None, "related_id": None, "merged_into": None, "kinds": ["structure_fire"],
        "also_notify": ["police", "medical"], "reporter_keys": [], "text_tokens": [], "lease_holder": None,
        "lease_expires_at": None, "acked_by": None, "acked_at": None, "closed_by": None, "close_reason": None,
        "version": 1,
    }
    row.update(values)
    return row


def report_row(report_id: int, channel: str, **values: Any) -> dict[str, Any]:
    at = T0 + timedelta(seconds=report_id)
    row: dict[str, Any] = {
        "id": report_id, "channel": channel, "channel_ref": f"{channel}-{report_id}", "received_at": at,
        "stored_at": at, "updated_at": at, "incident_id": 7, "reporter_key": None, "phone_raw": None, "phone": None,
        "phone_valid": None, "reporter_id": None, "reporter_name": None, "text": "", "language": "vi",
        "category": "fire", "confidence": 0.78, "needs_review": False, "classification": {}, "category_hint": None,
        "lat": None, "lon": None, "accuracy_m": None, "location_source": None, "location_observed_at": None,
        "location_label": None, "ward_code": None, "dialled_number": None, "device_id": None,
        "device_event_code": None, "facility_id": None, "attachments": [], "match": {}, "raw": {}, "version": 1,
    }
    row.update(values)
    return row


def event_row(event_id: int, kind: str, at: datetime, actor: str = "intake", **data: Any) -> dict[str, Any]:
    return {"id": event_id, "incident_id": 7, "at": at, "actor": actor, "kind": kind, "report_id": None,
            "data": data}


def three_doors() -> IncidentRecord:
    """A house fire reported by a call, a Telegram chat with GPS, and the building's alarm panel."""
    reports = [
        report_row(1, "call", phone="+84912345678", phone_raw="0912345678", reporter_key="+84912345678",
                   dialled_number="114", text="Cháy nhà ở số 12 phố Hàng Bạc",
                   raw={"call": {"state": "up", "answered_at": "2026-11-22T08:00:05+00:00"}}),
        report_row(2, "telegram", reporter_id="555", reporter_key="telegram:555", reporter_name="Lan",
                   text="khói đen bốc lên", lat=21.0341, lon=105.851, accuracy_m=25.0, location_source="gps",
                   location_observed_at=T0),
        report_row(3, "device", device_id="panel-9", reporter_key="device:panel-9", device_event_code="CID:1110",
                   confidence=0.9, lat=21.0342, lon=105.8511, accuracy_m=10.0, location_source="facility",
                   location_label="Khách sạn Hàng Bạc"),
    ]
    events = [event_row(1, "opened", T0, channel="call"), event_row(2, "report_attached", T0),
              event_row(3, "note", T0 + timedelta(minutes=2), actor="an", text="Có người kẹt tầng 3")]
    return IncidentRecord(incident_row(), reports, events)


# --- EIDO ------------------------------------------------------------------------------------------------

def test_eido_carries_the_incident_its_calls_people_places_and_notes() -> None:
    doc = exports.eido(three_doors(), SENDER)
    assert doc["$id"] == "urn:emergency:uid:incidentid:7:hotline.example.vn"
    assert doc["eidoVersion"] == "1.0" and doc["issuingElementIdentification"] == "intake.hotline.example.vn"
    incident = doc["incidentComponent"]
    assert incident["incidentTypeInternalCode"] == "structure_fire"
    assert incident["incidentTypeInternalText"] == "Cháy nhà, công trình"
    assert incident["incidentStatusInternalText"] == ["open"] and incident["internalIncidentId"] == "7"
    assert incident["incidentCommonPriorityNumber"] == 10
    # Only the phone call is a call; it keeps its callback number and its answered state.
    [call] = doc["callComponent"]
    assert call["$id"] == "urn:emergency:uid:callid:1:hotline.example.vn"
    assert call["direction"] == "incoming" and call["callStateRegistryText"] == "callAnswered"
    assert call["answerDate"] == "2026-11-22T08:00:05+00:00"
    assert [c["callBackInformationUri"] for c in doc["callbackComponent"]] == [["tel:+84912345678"]]
    # Two people (the caller and the Telegram user); the alarm panel is not a person.
    assert len(doc["personComponent"]) == 2
    assert all(p["personIncidentRoleRegistryText"] == ["Caller"] for p in doc["personComponent"])
    # The responder agencies are named under the centre's domain, the lead first.
    assert [a["$id"] for a in doc["agencyComponent"]] == [
        "hotline.example.vn", "fire.hotline.example.vn", "police.hotline.example.vn", "medical.hotline.example.vn"]
    notes = [n["notesActionComments"] for n in doc["notesComponent"]]
    assert any("Cháy nhà ở số 12 phố Hàng Bạc" in n for n in notes)
    assert any("an: Có người kẹt tầng 3" in n for n in notes)
    assert any(n.startswith("08:00:03 UTC · device · panel-9") for n in notes)


@pytest.mark.parametrize(("kinds", "category", "code"), [
    (["structure_fire"], "fire", "FSTRU"), (["vehicle_accident", "injury"], "police", "MVAUNK"),
    (["cardiac"], "medical", "CARDIAC"), (["gas_leak"], "fire", "GASLEAK"), ([], "fire", "FUNK"),
    ([], "police", "SUSP"), ([], "medical", "SICK"), ([], "unknown", "TROUBLE")])
def test_the_incident_type_is_a_value_of_the_eido_incident_type_registry(kinds: list[str], category: str,
                                                                          code: str) -> None:
    record = IncidentRecord(incident_row(kinds=kinds, category=category), [report_row(1, "sms")], [])
    assert exports.eido(record, SENDER)["incidentComponent"]["incidentTypeCommonRegistryText"] == code
    root = check_cap(exports.cap_xml(record, SENDER))
    for info in root.findall(f"{NS}info"):
        codes = {c.findtext(f"{NS}valueName"): c.findtext(f"{NS}value") for c in info.findall(f"{NS}eventCode")}
        assert codes["EIDO-IncidentType-Common"] == code


def test_every_eido_reference_names_a_component_of_the_document() -> None:
    doc = exports.eido(three_doors(), SENDER)
    ids, refs = eido_refs(doc)
    assert refs and refs <= ids
    assert len(ids) == sum(1 for _ in _all_ids(doc))  # no two components share an id


def _all_ids(node: object) -> list[str]:
    if isinstance(node, dict):
        return ([node["$id"]] if "$id" in node else []) + [i for v in node.values() for i in _all_ids(v)]
    if isinstance(node, list):
        return [i for v in node for i in _all_ids(v)]
    return []


def test_eido_locations_are_pidf_lo_that_parse_back_to_the_same_place() -> None:
    doc = exports.eido(three_doors(), SENDER)
    places = {loc["locationTypeDescriptionRegistryText"]: loc for loc in doc["locationComponent"]}
    assert set(places) == {"Incident", "Caller"}  # the incident's place; the Telegram user's GPS
    fix = parse_pidf_lo(places["Caller"]["locationByValue"].encode())
    assert (fix.location.lat, fix.location.lon, fix.location.accuracy_m) == (21.0341, 105.851, 25.0)
    assert fix.shape == "Circle" and fix.method == "GPS" and fix.location.observed_at == T0
    facility = [loc for loc in doc["locationComponent"] if loc.get("locationDescriptionText") == "Khách sạn Hàng Bạc"]
    assert facility and facility[0]["locationTypeDescriptionRegistryText"] == "Incident"


def test_an_unlocated_incident_has_no_location_component() -> None:
    record = IncidentRecord(incident_row(lat=None, lon=None, accuracy_m=None), [report_row(1, "sms", text="cháy")])
    doc = exports.eido(record, SENDER)
    assert "locationComponent" not in doc and "locationReference" not in doc["incidentComponent"]


def test_the_same_incident_version_exports_to_the_same_bytes() -> None:
    assert exports.eido_json(three_doors(), SENDER) == exports.eido_json(three_doors(), SENDER)
    assert exports.cap_xml(three_doors(), SENDER) == exports.cap_xml(three_doors(), SENDER)


def test_a_merged_incident_points_at_the_incident_that_replaced_it() -> None:
    at = T0 + timedelta(minutes=5)
    record = IncidentRecord(
        incident_row(status="merged", merged_into=9, report_count=0, closed_at=at, updated_at=at, version=3),
        [], [event_row(1, "opened", T0), event_row(2, "merged_into", at, actor="an", into=9, reports=[1])])
    doc = exports.eido(record, SENDER)
    [merge] = doc["mergeComponent"]
    assert merge["incidentTrackingIdentifier"] == "urn:emergency:uid:incidentid:9:hotline.example.vn"
    assert merge["incidentMergeDirectionCode"] == "REPLACED"
    assert doc["incidentComponent"]["incidentStatusInternalText"] == ["merged"]


def test_links_name_the_related_and_the_possibly_duplicated_incidents() -> None:
    doc = exports.eido(IncidentRecord(incident_row(related_id=3, review_of=4, needs_review=True)), SENDER)
    assert [(x["incidentTrackingIdentifier"].split(":")[4], x["linkDirectionCode"]) for x in doc["linkComponent"]] == [
        ("3", "RELATED"), ("4", "RELATED")]
    assert doc["incidentComponent"]["incidentStatusInternalText"] == ["open", "needs_review"]


def test_an_acknowledgement_is_a_dispatch_to_that_agency() -> None:
    record = three_doors()
    record = IncidentRecord(incident_row(status="acknowledged", acked_by="d1", version=2), record.reports,
                            [*record.events, event_row(9, "acknowledged", T0 + timedelta(minutes=3), actor="d1",
                                                       agency="fire")])
    [dispatch] = exports.eido(record, SENDER)["dispatchComponent"]
    assert dispatch["agencyReference"] == {"$ref": "fire.hotline.example.vn"}


# --- CAP -------------------------------------------------------------------------------------------------

def test_a_new_incident_is_a_cap_alert_to_its_agencies_only() -> None:
    root = check_cap(exports.cap_xml(opened(report_row(1, "call", updated_at=T0, text="cháy nhà")), SENDER))
    assert root.findtext(f"{NS}identifier") == "hotline.example.vn:incident:7:alert"
    assert root.findtext(f"{NS}msgType") == "Alert" and root.find(f"{NS}references") is None
    assert root.findtext(f"{NS}sent") == "2026-11-22T08:00:00+00:00"
    assert root.findtext(f"{NS}status") == "Actual"
    assert root.findtext(f"{NS}scope") == "Private"
    assert (root.findtext(f"{NS}addresses") or "").split() == [
        "fire.hotline.example.vn", "police.hotline.example.vn", "medical.hotline.example.vn"]
    assert root.findtext(f"{NS}incidents") == "urn:emergency:uid:incidentid:7:hotline.example.vn"
    vi, en = root.findall(f"{NS}info")
    assert (vi.findtext(f"{NS}language"), en.findtext(f"{NS}language")) == ("vi-VN", "en-US")
    assert [c.text for c in vi.findall(f"{NS}category")] == ["Fire"]
    assert vi.findtext(f"{NS}event") == "Cháy nhà, công trình" and en.findtext(f"{NS}event") == "Structure fire"
    assert vi.findtext(f"{NS}responseType") == "Execute" and vi.findtext(f"{NS}instruction")
    assert (vi.findtext(f"{NS}urgency"), vi.findtext(f"{NS}severity"), vi.findtext(f"{NS}certainty")) == (
        "Immediate", "Severe", "Likely")  # one sure report


def test_cap_describes_the_reports_notes_and_place() -> None:
    root = check_cap(exports.cap_xml(three_doors(), SENDER))
    vi = root.find(f"{NS}info")
    assert vi is not None
    assert vi.findtext(f"{NS}certainty") == "Observed"  # two people and a panel report the same fire
    assert vi.findtext(f"{NS}area/{NS}areaDesc") == "12 Hàng Bạc, Hoàn Kiếm"
    assert vi.findtext(f"{NS}area/{NS}circle") == "21.0341,105.851 0.025"
    assert vi.findtext(f"{NS}headline") == "Cháy nhà, công trình — 12 Hàng Bạc, Hoàn Kiếm (3 tin báo)"
    description = vi.findtext(f"{NS}description") or ""
    assert "08:00:01 UTC · call · +84912345678: Cháy nhà ở số 12 phố Hàng Bạc" in description
    assert "08:02:00 UTC · an: Có người kẹt tầng 3" in description
    assert root.findtext(f"{NS}sent") == "2026-11-22T08:02:00+00:00"  # the note is the latest change


def opened(*reports: dict[str, Any]) -> IncidentRecord:
    return IncidentRecord(incident_row(), list(reports), [event_row(1, "opened", T0)])


def test_a_changed_incident_is_an_update_referencing_its_first_alert() -> None:
    record = opened(report_row(1, "app", updated_at=T0, text="cháy nhà"))
    first = check_cap(exports.cap_xml(record, SENDER))
    later = T0 + timedelta(minutes=4, microseconds=250)
    updated = IncidentRecord(incident_row(version=4, updated_at=later), record.reports, record.events)
    root = check_cap(exports.cap_xml(updated, SENDER))
    assert root.findtext(f"{NS}msgType") == "Update"
    assert re.fullmatch(r"hotline\.example\.vn:incident:7:v4-[0-9a-f]{10}", root.findtext(f"{NS}identifier") or "")
    assert root.findtext(f"{NS}sent") == "2026-11-22T08:04:00+00:00"
    assert root.findtext(f"{NS}references") == ",".join(
        [first.findtext(f"{NS}sender") or "", first.findtext(f"{NS}identifier") or "",
         first.findtext(f"{NS}sent") or ""])


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: IncidentRecord(r.incident, r.reports, [*r.events, event_row(
            2, "note", T0 + timedelta(minutes=1), actor="an", text="kẹt tầng 3")]), id="a note"),
        pytest.param(lambda r: IncidentRecord(r.incident, [report_row(
            1, "call", version=2, updated_at=T0 + timedelta(seconds=40), text="cháy nhà, có người kẹt")], r.events),
            id="a transcript that grew"),
        pytest.param(lambda r: IncidentRecord(r.incident, [*r.reports, report_row(2, "sms", text="cháy")],
                                              [*r.events, event_row(2, "report_attached", T0)]), id="a new report"),
    ],
)
def test_any_change_is_a_new_update_even_when_the_incident_row_is_unchanged(change: Any) -> None:
    before = opened(report_row(1, "call", updated_at=T0, text="cháy nhà"))
    after = change(before)
    first, then = check_cap(exports.cap_xml(before, SENDER)), check_cap(exports.cap_xml(after, SENDER))
    assert (first.findtext(f"{NS}msgType"), then.findtext(f"{NS}msgType")) == ("Alert", "Update")
    assert then.findtext(f"{NS}identifier") != first.findtext(f"{NS}identifier")
    assert exports.eido(after, SENDER)["lastUpdateTimeStamp"] >= exports.eido(before, SENDER)["lastUpdateTimeStamp"]


def test_a_closed_incident_is_a_cancel_with_the_reason() -> None:
    record = three_doors()
    assert exports.cap_msg_type(record) == "Update"  # a note was added after the incident opened
    at = T0 + timedelta(minutes=30)
    closed = IncidentRecord(incident_row(status="closed", closed_at=at, updated_at=at, closed_by="d1",
                                         close_reason="đã dập tắt", version=6), record.reports, record.events)
    root = check_cap(exports.cap_xml(closed, SENDER))
    assert root.findtext(f"{NS}msgType") == "Cancel"
    assert root.findtext(f"{NS}note") == "Closed (d1): đã dập tắt"
    assert (root.findtext(f"{NS}references") or "").endswith(",2026-11-22T08:00:00+00:00")
    vi = root.find(f"{NS}info")
    assert vi is not None
    assert (vi.findtext(f"{NS}responseType"), vi.findtext(f"{NS}urgency")) == ("AllClear", "Past")
    assert vi.find(f"{NS}instruction") is None
    eido_notes = [n["notesActionComments"] for n in exports.eido(closed, SENDER)["notesComponent"]]
    assert "Closed (d1): đã dập tắt" in eido_notes


def test_a_merged_incident_is_a_cancel_naming_both_incidents() -> None:
    at = T0 + timedelta(minutes=5)
    record = IncidentRecord(
        incident_row(status="merged", merged_into=9, report_count=0, closed_at=at, updated_at=at, version=3),
        [], [event_row(1, "opened", T0), event_row(2, "merged_into", at, actor="an", into=9, reports=[1])])
    root = check_cap(exports.cap_xml(record, SENDER))
    assert root.findtext(f"{NS}msgType") == "Cancel"
    assert root.findtext(f"{NS}note") == "Merged into incident 9"
    assert (root.findtext(f"{NS}incidents") or "").split() == [
        "urn:emergency:uid:incidentid:7:hotline.example.vn", "urn:emergency:uid:incidentid:9:hotline.example.vn"]
    assert root.findtext(f"{NS}info/{NS}responseType") == "None"


def test_an_unclassified_incident_is_restricted_to_the_centre() -> None:
    record = IncidentRecord(incident_row(category="unknown", kinds=[], also_notify=[], priority=3,
                                         needs_review=True), [report_row(1, "sms", category="unknown", text="?")])
    root = check_cap(exports.cap_xml(record, SENDER))
    assert root.findtext(f"{NS}scope") == "Restricted" and root.find(f"{NS}addresses") is None
    assert "hotline.example.vn" in (root.findtext(f"{NS}restriction") or "")
    info = root.find(f"{NS}info")
    assert info is not None
    assert [c.text for c in info.findall(f"{NS}category")] == ["Other"]
    assert (info.findtext(f"{NS}responseType"), info.findtext(f"{NS}severity"), info.findtext(f"{NS}certainty")) == (
        "Assess", "Unknown", "Unknown")


@pytest.mark.parametrize(
    ("values", "severity", "categories"),
    [
        ({"priority": 1, "kinds": ["trapped"], "category": "fire"}, "Extreme", ["Fire", "Rescue"]),
        ({"priority": 1, "kinds": ["structure_fire"], "category": "fire"}, "Severe", ["Fire"]),
        ({"priority": 2, "kinds": ["vehicle_accident"], "category": "police"}, "Severe", ["Security", "Transport"]),
        ({"priority": 3, "kinds": [], "category": "medical"}, "Moderate", ["Health"]),
        ({"priority": 5, "kinds": [], "category": "police"}, "Minor", ["Security"]),
    ],
)
def test_severity_and_categories_come_from_priority_and_kinds(values: dict[str, Any], severity: str,
                                                               categories: list[str]) -> None:
    incident = incident_row(**values)
    assert exports.cap_severity(incident) == severity
    assert exports.cap_categories(incident) == categories


def test_one_unsure_report_is_possible_and_one_sure_report_likely() -> None:
    unsure = IncidentRecord(incident_row(), [report_row(1, "app", reporter_key="a", confidence=0.3)])
    sure = IncidentRecord(incident_row(), [report_row(1, "app", reporter_key="a", confidence=0.8)])
    same_person_twice = IncidentRecord(incident_row(), [report_row(1, "app", reporter_key="a", confidence=0.8),
                                                        report_row(2, "sms", reporter_key="a", confidence=0.8)])
    assert [exports.cap_certainty(r) for r in (unsure, sure, same_person_twice)] == ["Possible", "Likely", "Likely"]


def test_hostile_text_is_escaped_in_both_documents() -> None:
    hostile = 'Cháy <script>alert("x")</script> & ]]> \x00\x0b\ud800 </description><scope>Public</scope>'
    record = IncidentRecord(incident_row(summary=hostile, location_label="<b>12 & 14</b>"),
                            [report_row(1, "zalo", text=hostile, reporter_name="<img src=x>", reporter_id="z1",
                                        reporter_key="zalo:z1")],
                            [event_row(1, "note", T0, actor="an", text=hostile)])
    root = check_cap(exports.cap_xml(record, SENDER))  # well-formed, and still one Private scope
    assert root.findtext(f"{NS}scope") == "Private"
    description = root.findtext(f"{NS}info/{NS}description") or ""
    assert '<script>alert("x")</script> & ]]>' in description  # the words come back as they were typed
    # NUL and a lone surrogate cannot be in XML 1.0: replaced (the vertical tab is whitespace, folded away)
    assert not {"\x00", "\x0b", "\ud800"} & set(description) and "\ufffd" in description
    assert root.findtext(f"{NS}info/{NS}area/{NS}areaDesc") == "<b>12 & 14</b>"
    text = json.dumps(exports.eido(record, SENDER), ensure_ascii=False)
    notes = [n["notesActionComments"] for n in exports.eido(record, SENDER)["notesComponent"]]
    assert all("<script>" not in n and "<img" not in n for n in notes)  # notes are HTML: markup is escaped
    assert any("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;" in n for n in notes)
    assert "\\u0000" not in text


def test_times_are_utc_with_an_offset_and_whole_seconds() -> None:
    hanoi = timezone(timedelta(hours=7))
    local = datetime(2026, 11, 22, 15, 0, 1, 999_999, tzinfo=hanoi)
    record = IncidentRecord(incident_row(updated_at=local, opened_at=local),
                            [report_row(1, "app", received_at=local, updated_at=local)])
    root = check_cap(exports.cap_xml(record, SENDER))
    assert root.findtext(f"{NS}sent") == "2026-11-22T08:00:01+00:00"
    assert root.findtext(f"{NS}info/{NS}onset") == "2026-11-22T08:00:01+00:00"
    doc = exports.eido(record, SENDER)
    assert doc["lastUpdateTimeStamp"] == "2026-11-22T08:00:01+00:00"
    assert datetime.fromisoformat(doc["lastUpdateTimeStamp"]).utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        exports.stamp(datetime(2026, 11, 22, 8, 0))


def test_the_headline_stays_short() -> None:
    record = IncidentRecord(incident_row(location_label="đường " * 100))
    headline = check_cap(exports.cap_xml(record, SENDER)).findtext(f"{NS}info/{NS}headline") or ""
    assert len(headline) <= 160 and headline.endswith("…")


@pytest.mark.parametrize("agency_id", ["", "localhost", "Hotline.VN", "a b.vn", "a,b.vn", "x<y.vn", "-a.vn"])
def test_the_agency_id_must_be_a_lower_case_domain_name(agency_id: str) -> None:
    with pytest.raises(ValueError, match="domain name"):
        Sender(agency_id)


def test_the_sender_comes_from_the_settings() -> None:
    sender = exports.sender_from_settings(Settings(extra={"agency_id": " 112.HaNoi.gov.vn ", "agency_name": "TT 112"}))
    assert (sender.agency_id, sender.name) == ("112.hanoi.gov.vn", "TT 112")
    assert exports.sender_from_settings(Settings()).agency_id == "intake.invalid"


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="eido, cap"):
        exports.export(three_doors(), SENDER, "pdf")
