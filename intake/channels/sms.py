"""SMS through Twilio: POST /webhooks/twilio/sms, a signed form post, answered with TwiML.

verify: X-Twilio-Signature over the public URL and the form (Twilio's own RequestValidator).
parse:  MessageSid is the reference (a retried webhook is one report); From is the reporter;
        MediaUrlN / MediaContentTypeN become attachments (MMS).
reply:  <Response><Message> with the incident number, asking for the address when no place was
        found in the text.

An AML SMS (`A"ML=...`, see `intake.channels.aml`) arriving on the same number is not a report:
its fix is stored and applied to the caller's call (`intake.locfix`), and Twilio gets an empty
<Response/> so nothing is texted back to a phone in an emergency call.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twilio.twiml.messaging_response import MessagingResponse

from intake import locfix
from intake.channels import aml
from intake.core.model import ReportIn
from intake.pipeline import IngestResult, Intake
from intake.telephony.twilio_media import verify_twilio_signature
from intake.types import Forbidden, Inbound, PayloadError, form_fields

log = logging.getLogger(__name__)

NAME = "sms"
MAX_MEDIA = 10  # Twilio delivers at most ten media items with one message
_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")

#: Replies, in Vietnamese: the reporter's own language on this number.
REPLY_LOCATED = ("Trung tâm 112 đã nhận tin báo của bạn. Mã sự việc: {ref}. "
                 "Lực lượng chức năng đang xử lý. Nếu có thể, hãy gọi 112.")
REPLY_ASK_ADDRESS = ("Trung tâm 112 đã nhận tin báo của bạn. Mã sự việc: {ref}. "
                     "Vui lòng nhắn lại địa chỉ cụ thể nơi xảy ra sự việc (số nhà, đường, phường/xã, quận/huyện).")


@dataclass(frozen=True, slots=True)
class TwilioMessage:
    message_sid: str
    sender: str  # From: the reporter's number, E.164 as Twilio gives it
    to: str
    body: str
    media: tuple[dict[str, str], ...]
    form: Mapping[str, str]  # everything Twilio posted, for the record

    @property
    def is_aml(self) -> bool:
        return aml.is_aml_sms(self.body)


def read_form(inbound: Inbound) -> dict[str, str]:
    """The posted form; PayloadError when the body is not one."""
    return form_fields(inbound.body)


def parse_message(form: Mapping[str, str]) -> TwilioMessage:
    sid = form.get("MessageSid", "")
    if not _MESSAGE_SID.match(sid):
        raise PayloadError("MessageSid must be a Twilio message SID (SM or MM + 32 hex digits)", field="MessageSid")
    sender = form.get("From", "").strip()
    if not sender:
        raise PayloadError("From (the sender's number) is missing", field="From")
    raw_count = form.get("NumMedia", "0") or "0"
    if not raw_count.isdigit() or int(raw_count) > MAX_MEDIA:
        raise PayloadError(f"NumMedia must be a count 0..{MAX_MEDIA}, got {raw_count!r}", field="NumMedia")
    media = []
    for n in range(int(raw_count)):
        url = form.get(f"MediaUrl{n}", "")
        if not url.startswith("https://"):
            raise PayloadError(f"MediaUrl{n} must be the https URL of item {n} of NumMedia", field=f"MediaUrl{n}")
        media.append({"type": form.get(f"MediaContentType{n}") or "application/octet-stream", "url": url})
    return TwilioMessage(message_sid=sid, sender=sender, to=form.get("To", ""), body=form.get("Body", ""),
                         media=tuple(media), form=dict(form))


def report_of(message: TwilioMessage, received_at: datetime) -> ReportIn:
    return ReportIn(
        channel=NAME,
        channel_ref=message.message_sid,
        received_at=received_at,
        text=message.body,
        phone=message.sender,
        attachments=message.media,
        raw=dict(message.form),
    )


def reply_twiml(result: IngestResult | None) -> str:
    """The TwiML answer: the incident number, and a request for the address when no place is known."""
    response = MessagingResponse()
    if result is not None:
        ref = f"#{result.incident_id}" if result.incident_id is not None else f"R{result.report_id}"
        template = REPLY_LOCATED if result.location is not None else REPLY_ASK_ADDRESS
        response.message(template.format(ref=ref))
    return str(response)


class SmsDoor:
    """The channel contract for Twilio SMS (see intake.types.Door)."""

    name = NAME

    def __init__(self, auth_token: str) -> None:
        self.auth_token = auth_token

    def verify(self, inbound: Inbound) -> None:
        try:
            form = read_form(inbound)
        except PayloadError as exc:
            raise Forbidden("the body is not a form Twilio signed") from exc
        signature = inbound.headers.get("X-Twilio-Signature", "")
        if not verify_twilio_signature(self.auth_token, inbound.url, form, signature):
            log.warning("Twilio SMS webhook with a bad signature from %s", inbound.remote)
            raise Forbidden("X-Twilio-Signature does not match this request")

    def message(self, inbound: Inbound) -> TwilioMessage:
        return parse_message(read_form(inbound))

    def parse(self, inbound: Inbound) -> Sequence[ReportIn]:
        """The SMS as a report; none for an AML message (a location, not a report)."""
        message = self.message(inbound)
        return [] if message.is_aml else [report_of(message, inbound.received_at)]


async def receive(intake: Intake, auth_token: str, inbound: Inbound) -> str:
    """Verify, parse, store, then answer: the TwiML to return to Twilio."""
    door = SmsDoor(auth_token)
    door.verify(inbound)
    message = door.message(inbound)
    if message.is_aml:
        await receive_aml(intake, message, inbound.received_at)
        return reply_twiml(None)
    result = await intake.ingest(report_of(message, inbound.received_at))
    return reply_twiml(result)


async def receive_aml(intake: Intake, message: TwilioMessage, received_at: datetime) -> locfix.FixOutcome:
    parsed = aml.parse_sms(message.body)
    phone = locfix.e164(message.sender, intake.settings.default_region, "From")
    if parsed.fix is None:
        log.info("AML SMS %s from %s carries no position", message.message_sid, phone)
        return locfix.FixOutcome(None, "no_location")
    raw: dict[str, Any] = {"message_sid": message.message_sid, "from": message.sender, "to": message.to,
                           "body": message.body, "version": parsed.version, "attributes": parsed.attributes}
    return await locfix.receive(intake, locfix.FixIn("aml_sms", message.message_sid, phone, parsed.fix,
                                                     received_at, raw))
