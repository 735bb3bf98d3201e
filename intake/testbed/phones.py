"""SIP phones for the live test bed: sipp scenarios for callers, call-takers' seats and call-back phones.

Each phone is one `sipp` process. A caller's voice is a pcap of G.711 μ-law RTP written from a WAV here
(sipp's `play_pcap_audio` replays it to the address the answer's SDP gives), with RFC 4733 DTMF events
after the speech when the caller presses keys. A seat registers with Asterisk as the call-taker's phone
(digest auth, as `pjsip.conf` asks) and answers after a delay, or never; a call-back phone answers after a
delay, never, or is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intake.telephony.twilio_media import encode_mulaw
from intake.testbed.asterisk import TRUNK_IP, free_port, sipp_binary

RATE = 8000
FRAME = 160  # 20 ms of 8 kHz μ-law
DTMF_PT = 101


def read_wav_mono(path: Path, *, start_s: float = 0.0, seconds: float | None = None) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: 16-bit PCM expected")
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype("<i2")
    a = int(start_s * rate)
    b = len(data) if seconds is None else a + int(seconds * rate)
    return data[a:b], rate


def to_8k(samples: np.ndarray, rate: int) -> np.ndarray:
    from intake.telephony.resample import resample

    return resample(samples, rate, RATE)


def _ip_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _udp_packet(payload: bytes, src_port: int = 6000, dst_port: int = 7000) -> bytes:
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
    ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
    eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def write_rtp_pcap(path: Path, samples_8k: np.ndarray, *, dtmf: str = "", pause_s: float = 0.5,
                   ssrc: int = 0x1CE1CE) -> float:
    """A pcap of PCMU RTP (20 ms frames) of the samples, then each DTMF digit as RFC 4733 events; its length in s."""
    pcm = np.asarray(samples_8k, dtype="<i2").tobytes()
    ulaw = encode_mulaw(pcm)
    packets: list[tuple[float, bytes]] = []
    seq, ts, t = 1, 0, 0.0
    for i in range(0, len(ulaw) - FRAME + 1, FRAME):
        marker = 0x80 if i == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | 0, seq, ts, ssrc) + ulaw[i:i + FRAME]
        packets.append((t, rtp))
        seq, ts, t = seq + 1, ts + FRAME, t + 0.02
    silence = b"\xff" * FRAME
    for _ in range(int(pause_s / 0.02)):
        packets.append((t, struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc) + silence))
        seq, ts, t = seq + 1, ts + FRAME, t + 0.02
    events = {d: n for n, d in enumerate("0123456789*#ABCD")}
    for digit in dtmf:
        event_ts = ts
        for k in range(8):  # 160 ms of tone, in 20 ms event packets
            duration = (k + 1) * FRAME
            body = struct.pack("!BBH", events[digit], 10, duration)
            marker = 0x80 if k == 0 else 0
            packets.append((t, struct.pack("!BBHII", 0x80, marker | DTMF_PT, seq, event_ts, ssrc) + body))
            seq, t = seq + 1, t + 0.02
        for _ in range(3):  # the end packet, sent three times as RFC 4733 says
            body = struct.pack("!BBH", events[digit], 0x80 | 10, 8 * FRAME)
            packets.append((t, struct.pack("!BBHII", 0x80, DTMF_PT, seq, event_ts, ssrc) + body))
            seq = seq + 1
        t += 0.02
        ts = event_ts + 8 * FRAME
        for _ in range(10):  # 200 ms between digits
            packets.append((t, struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc) + silence))
            seq, ts, t = seq + 1, ts + FRAME, t + 0.02
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        base = 1_700_000_000.0
        for at, rtp in packets:
            frame = _udp_packet(rtp)
            sec = int(base + at)
            usec = round((base + at - sec) * 1_000_000)
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            fh.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    return t


# --- scenarios -------------------------------------------------------------------------------------

_SDP = """v=0
o=phone 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
"""

_REPLY = """SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:]{to_tag}
[last_Call-ID:]
{cseq}
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
{extra}"""


def _reply(status: str, *, to_tag: bool = True, cseq: str = "[last_CSeq:]", sdp: bool = False) -> str:
    extra = "Content-Type: application/sdp\nContent-Length: [len]\n\n" + _SDP if sdp else "Content-Length: 0\n"
    body = _REPLY.format(status=status, to_tag=";tag=[pid]SIPpTag01[call_number]" if to_tag else "",
                         cseq=cseq, extra=extra)
    return f"  <send><![CDATA[\n{body}\n  ]]></send>\n"


def _in_dialog(method: str, cseq: int, *, retrans: bool = False) -> str:
    """A caller's request inside its call (ACK, BYE)."""
    return f"""  <send{' retrans="500"' if retrans else ''}><![CDATA[
{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "[caller]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
  ]]></send>
"""


def caller_scenario(*, talk_ms: int, pcap: Path | None, hangup: bool = True) -> str:
    """Call [service] (112...), play the pcap once answered, hang up after `talk_ms` (unless the far end does).

    `hangup=False`: never hang up (the call ends from the other side, or when the test stops sipp).
    """
    play = (f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>\n' if pcap else "")
    wait = f'timeout="{talk_ms}" ontimeout="9"' if hangup else ""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "[caller]" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: hotline-testbed caller
Content-Type: application/sdp
Content-Length: [len]

{_SDP}
  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
{_in_dialog("ACK", 1)}{play}  <recv request="BYE" {wait}/>
{_reply("200 OK", to_tag=False)}  <nop next="10"/>
  <label id="9"/>
{_in_dialog("BYE", 2, retrans=True)}  <recv response="200" crlf="true"/>
  <label id="10"/>
</scenario>
"""


def answerer_scenario(*, answer_ms: int | None, busy: bool = False, hold_ms: int | None = None) -> str:
    """A phone that rings: answers after `answer_ms` (None: never, until CANCEL), or answers 486 Busy Here.

    Once answered it stays on until the other side hangs up (or, with `hold_ms`, it hangs up itself).
    """
    grab = ('  <recv request="INVITE" crlf="true"><action>'
            '<ereg regexp="([0-9]+) INVITE" search_in="hdr" header="CSeq:" assign_to="whole,cseqn"/>'
            '<ereg regexp="tag=([^;> ]+)" search_in="hdr" header="From:" assign_to="wholetag,fromtag"/>'
            '<ereg regexp="&lt;([^>]+)&gt;" search_in="hdr" header="Contact:" assign_to="wholec,contact"/>'
            '<ereg regexp="^[^&lt;]*&lt;?([^>;]+)" search_in="hdr" header="From:" assign_to="wholef,fromuri"/>'
            '<ereg regexp="^[^&lt;]*&lt;?([^>;]+)" search_in="hdr" header="To:" assign_to="wholet,touri"/>'
            '</action></recv>\n')
    # sipp refuses to run when an assigned variable is used only once: <Reference> marks them all used.
    refs = '  <Reference variables="whole,cseqn,wholetag,wholec,wholef,wholet,fromtag,contact,fromuri,touri"/>\n'
    parts = ['<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="answerer">\n', grab, refs,
             _reply("100 Trying", to_tag=False)]
    if busy:
        parts += [_reply("486 Busy Here"), '  <recv request="ACK" optional="false"/>\n</scenario>\n']
        return "".join(parts)
    parts.append(_reply("180 Ringing"))
    timeout = f'timeout="{answer_ms}" ontimeout="5"' if answer_ms is not None else ""
    parts += [f'  <recv request="CANCEL" {timeout}/>\n', _reply("200 OK"),
              _reply("487 Request Terminated", cseq="CSeq: [$cseqn] INVITE"),
              '  <recv request="ACK"/>\n  <nop next="99"/>\n  <label id="5"/>\n',
              _reply("200 OK", sdp=True, cseq="CSeq: [$cseqn] INVITE"), '  <recv request="ACK"/>\n']
    if hold_ms is None:
        parts += ['  <recv request="BYE"/>\n', _reply("200 OK")]
    else:
        parts += [f'  <recv request="BYE" timeout="{hold_ms}" ontimeout="7"/>\n', _reply("200 OK"),
                  '  <nop next="99"/>\n  <label id="7"/>\n', """  <send retrans="500"><![CDATA[
BYE [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <[$touri]>;tag=[pid]SIPpTag01[call_number]
To: <[$fromuri]>;tag=[$fromtag]
[last_Call-ID:]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0
  ]]></send>
  <recv response="200"/>
"""]
    parts.append('  <label id="99"/>\n</scenario>\n')
    return "".join(parts)


def register_scenario(*, user: str, password: str, contact_port: int) -> str:
    def register(cseq: int, auth: str = "") -> str:
        return f"""  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{user}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{user}@[remote_ip]>
Call-ID: [call_id]
CSeq: {cseq} REGISTER
Contact: <sip:{user}@127.0.0.1:{contact_port}>
{auth}Expires: 3600
Max-Forwards: 70
Content-Length: 0
  ]]></send>
"""
    auth = f"[authentication username={user} password={password}]\n"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
{register(1)}  <recv response="401" auth="true"/>
{register(2, auth)}  <recv response="200"/>
</scenario>
"""


# --- processes -----------------------------------------------------------------------------------------

@dataclass
class Phone:
    """One running sipp."""

    name: str
    process: asyncio.subprocess.Process
    workdir: Path

    async def wait(self, within_s: float) -> int:
        return await asyncio.wait_for(self.process.wait(), within_s)

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()

    def errors(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.workdir.glob(f"{self.name}*error*"))


class Phones:
    """The bed's phones, all pointed at one Asterisk on 127.0.0.1:`sip_port`."""

    def __init__(self, root: Path, sip_port: int) -> None:
        self.root = root
        self.sip_port = sip_port
        self.binary = sipp_binary()
        self.running: list[Phone] = []
        self._n = 0
        root.mkdir(parents=True, exist_ok=True)

    async def _sipp(self, name: str, scenario: str, *args: str, ip: str = "127.0.0.1") -> Phone:
        self._n += 1
        name = f"{name}-{self._n}"
        sf = self.root / f"{name}.xml"
        sf.write_text(scenario)
        with open(self.root / f"{name}_stderr.log", "wb") as err:  # noqa: ASYNC230 (the child keeps its copy)
            proc = await asyncio.create_subprocess_exec(
                self.binary, f"127.0.0.1:{self.sip_port}", "-sf", str(sf), "-i", ip, "-mi", ip, "-bind_local",
                "-nostdin", "-trace_err", "-error_file", str(self.root / f"{name}_errors.log"),
                *(("-trace_msg", "-message_file", str(self.root / f"{name}_messages.log"))
                  if os.environ.get("INTAKE_TESTBED_TRACE") else ()), *args,
                cwd=self.root, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=err,
                env={**os.environ, "TERM": "dumb"})
        phone = Phone(name, proc, self.root)
        self.running.append(phone)
        return phone

    async def register(self, user: str, password: str, contact_port: int) -> None:
        phone = await self._sipp(f"register-{user}", register_scenario(
            user=user, password=password, contact_port=contact_port), "-m", "1", "-timeout", "10", "-timeout_error")
        code = await phone.wait(15)
        if code != 0:
            raise RuntimeError(f"seat {user} could not register (sipp exit {code}): {phone.errors()}")

    async def seat(self, port: int, *, answer_after_s: float | None, hold_s: float | None = None) -> Phone:
        """A call-taker's phone listening on `port` (register it with `register`)."""
        answer_ms = None if answer_after_s is None else int(answer_after_s * 1000)
        hold_ms = None if hold_s is None else int(hold_s * 1000)
        # No -rtp_echo: an echoing phone would send the caller's own key presses back as the call-taker's.
        return await self._sipp("seat", answerer_scenario(answer_ms=answer_ms, hold_ms=hold_ms),
                                "-p", str(port), "-mp", str(free_port(socket.SOCK_DGRAM)))

    async def callback_phone(self, port: int, *, answer_after_s: float | None = None, busy: bool = False,
                             hold_s: float | None = None) -> Phone:
        """The caller's phone as the trunk reaches it when the centre calls back (hangs up after `hold_s`)."""
        answer_ms = None if answer_after_s is None else int(answer_after_s * 1000)
        hold_ms = None if hold_s is None else int(hold_s * 1000)
        return await self._sipp("callback", answerer_scenario(answer_ms=answer_ms, busy=busy, hold_ms=hold_ms),
                                "-p", str(port), "-mp", str(free_port(socket.SOCK_DGRAM)), ip=TRUNK_IP)

    async def call(self, caller: str, line: str = "112", *, talk_s: float, pcap: Path | None = None,
                   hangup: bool = True) -> Phone:
        """One call from `caller` to `line`, hung up after `talk_s` (counted from the answer)."""
        return await self._sipp(f"caller-{caller}", caller_scenario(
            talk_ms=int(talk_s * 1000), pcap=pcap, hangup=hangup),
            "-s", line, "-key", "caller", caller, "-m", "1", "-p", str(free_port(socket.SOCK_DGRAM)),
            "-mp", str(free_port(socket.SOCK_DGRAM)), ip=TRUNK_IP)

    async def stop_all(self) -> None:
        for phone in self.running:
            await phone.stop()
        self.running.clear()


__all__ = ["Phone", "Phones", "read_wav_mono", "to_8k", "write_rtp_pcap"]
