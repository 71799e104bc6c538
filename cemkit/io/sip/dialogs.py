"""Per-Call-ID state machines: INVITE dialogs → xDRs, REGISTER transactions → registrations.

An INVITE dialog is one call attempt: the initial INVITE (no To tag) opens it; an authentication
challenge (401/407) answered by the same INVITE re-sent with credentials and a new CSeq stays the
same attempt. Provisional 18x → ``ringing`` (post-dial delay); the final response of the initial
INVITE transaction(s) → ``sip_status``; 2xx → ``answer``; BYE / CANCEL → who released and when.
SDP bodies announce where each side receives media, so RTP packets to those addresses are counted
for the dialog, per direction (``fwd`` = caller → callee, ``rev`` = callee → caller).

A REGISTER request without credentials opens a registration attempt; one with credentials that
follows a challenge continues it. Re-sent requests with the same CSeq are retransmissions.
A registration's outcome is one of :data:`cemkit.outcomes.REGISTRATION_OUTCOMES` (never a call
outcome): an attempt still waiting for a final response, or for the re-sent REGISTER after a
challenge, when the capture ended within :data:`TIMER_F_S` of its last message is
``registration_unknown``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cemkit.io.sip.message import MediaOffer, SipMessage, header_user, parse_sdp, uri_user
from cemkit.io.sip.rtp import DEFAULT_CLOCK_RATE, RtpHeader, RtpStream
from cemkit.outcomes import (
    CANCELLED,
    SIP_AUTH_CHALLENGES,
    SIP_TO_Q850,
    outcome_from_sip,
    registration_outcome,
)

#: RTP arriving this long after a dialog ended is not counted for it (the port may be reused).
MEDIA_GRACE_S = 2.0
#: RFC 3261 Timer F (64 x T1 = 32 s): how long a client waits for a final response to a
#: non-INVITE request such as REGISTER.
TIMER_F_S = 32.0
#: Q.850 "normal call clearing": the cause of an answered call ended by BYE.
Q850_NORMAL_CLEARING = 16


def addr(ip: str, port: int) -> str:
    """``ip:port``, with IPv6 addresses in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass
class Dialog:
    """State of one INVITE dialog (one call attempt)."""

    call_id: str
    first_packet: int
    start: float
    caller: str
    callee: str
    from_tag: str | None
    from_user: str | None
    to_user: str | None
    pai_user: str | None
    ruri_user: str | None
    transport: str
    invite_cseqs: set[int] = field(default_factory=set)
    finals: dict[int, int] = field(default_factory=dict)
    retransmissions: int = 0
    challenges: int = 0
    ringing: float | None = None
    answer: float | None = None
    final_status: int | None = None
    final_ts: float | None = None
    cancel_ts: float | None = None
    bye_ts: float | None = None
    bye_by: str | None = None
    last_ts: float = 0.0
    last_packet: int = 0
    media: dict[tuple[str, int], RtpStream] = field(default_factory=dict)

    @property
    def ended_ts(self) -> float | None:
        """When the dialog ended as far as media is concerned."""
        if self.bye_ts is not None:
            return self.bye_ts
        if self.answer is None and self.final_ts is not None:
            return self.final_ts
        return None


@dataclass
class RegistrationAttempt:
    """One REGISTER attempt (possibly challenged once or more)."""

    call_id: str
    first_packet: int
    start: float
    client: str
    registrar: str
    aor_user: str | None
    from_user: str | None
    expires: int | None
    transport: str
    cseqs: set[int] = field(default_factory=set)
    finals: dict[int, int] = field(default_factory=dict)
    challenges: int = 0
    retransmissions: int = 0
    status: int | None = None
    final_ts: float | None = None
    last_ts: float = 0.0
    last_packet: int = 0


class DialogTracker:
    """Feed SIP messages and RTP packets in capture order; collect the records at the end."""

    def __init__(self) -> None:
        self.dialogs: dict[str, Dialog] = {}
        self.registrations: dict[str, list[RegistrationAttempt]] = {}
        #: (ip, port) where a party receives media → (dialog, direction of packets sent there)
        self.media_map: dict[tuple[str, int], tuple[Dialog, str, dict[int, int]]] = {}
        self.other_messages = 0  #: messages outside INVITE/REGISTER state (OPTIONS, orphans)
        self.messages_in_records = 0  #: messages that went into a dialog or a registration

    # --- SIP ------------------------------------------------------------------------------
    def on_message(self, msg: SipMessage, packet: int, ts: float, src: str, sport: int,
                   dst: str, dport: int, transport: str) -> None:  # fmt: skip
        """Advance the state machine of the message's Call-ID."""
        cseq_num, cseq_method = msg.cseq
        others = self.other_messages
        if msg.is_request:
            self._on_request(msg, packet, ts, src, sport, dst, dport, transport, cseq_num)
        else:
            self._on_response(msg, ts, cseq_num, cseq_method)
        state: Dialog | RegistrationAttempt | None
        if cseq_method == "REGISTER":
            attempts = self.registrations.get(msg.call_id)
            state = attempts[-1] if attempts else None
        else:
            state = self.dialogs.get(msg.call_id)
        if self.other_messages != others:
            return
        self.messages_in_records += 1
        if state is not None and packet > state.last_packet:
            state.last_packet = packet  # the records' packet span (capture clock flags)

    def _on_request(self, msg: SipMessage, packet: int, ts: float, src: str, sport: int,
                    dst: str, dport: int, transport: str, cseq_num: int) -> None:  # fmt: skip
        method = msg.method
        cid = msg.call_id
        dialog = self.dialogs.get(cid)
        if method == "INVITE" and msg.to_tag is None:
            if dialog is None:
                dialog = Dialog(
                    call_id=cid, first_packet=packet, start=ts, caller=addr(src, sport),
                    callee=addr(dst, dport), from_tag=msg.from_tag,
                    from_user=header_user(msg.header("from")),
                    to_user=header_user(msg.header("to")),
                    pai_user=header_user(msg.header("p-asserted-identity")),
                    ruri_user=uri_user(msg.uri), transport=transport,
                )  # fmt: skip
                self.dialogs[cid] = dialog
            if cseq_num in dialog.invite_cseqs:
                dialog.retransmissions += 1
            else:
                if dialog.invite_cseqs and dialog.final_status in SIP_AUTH_CHALLENGES:
                    dialog.challenges += 1  # re-sent with credentials: the same attempt
                    dialog.final_status = dialog.final_ts = None
                dialog.invite_cseqs.add(cseq_num)
            self._media(dialog, msg, "caller")
        elif method == "REGISTER":
            self._on_register(msg, packet, ts, src, sport, dst, dport, transport, cseq_num)
            return
        elif dialog is None:
            self.other_messages += 1
            return
        elif method == "CANCEL":
            if dialog.cancel_ts is None:
                dialog.cancel_ts = ts
        elif method == "BYE":
            if dialog.bye_ts is None:
                dialog.bye_ts = ts
                same = msg.from_tag is not None and msg.from_tag == dialog.from_tag
                dialog.bye_by = "caller" if same else "callee"
        elif method in ("INVITE", "ACK", "UPDATE", "PRACK"):
            side = "caller" if msg.from_tag == dialog.from_tag else "callee"
            self._media(dialog, msg, side)
        dialog.last_ts = max(dialog.last_ts, ts)

    def _on_response(self, msg: SipMessage, ts: float, cseq_num: int, cseq_method: str) -> None:
        cid = msg.call_id
        status = msg.status
        assert status is not None
        if cseq_method == "REGISTER":
            for attempt in reversed(self.registrations.get(cid, [])):
                if cseq_num in attempt.cseqs:
                    attempt.last_ts = max(attempt.last_ts, ts)
                    if status >= 200 and cseq_num not in attempt.finals:
                        attempt.finals[cseq_num] = status
                        attempt.status = status
                        attempt.final_ts = ts
                    return
            self.other_messages += 1
            return
        dialog = self.dialogs.get(cid)
        if dialog is None:
            self.other_messages += 1
            return
        dialog.last_ts = max(dialog.last_ts, ts)
        if cseq_method != "INVITE":
            if cseq_method in ("UPDATE", "PRACK"):
                self._media(dialog, msg, "callee" if msg.from_tag == dialog.from_tag else "caller")
            return
        # The callee numbers its own requests: a response to its re-INVITE may carry a CSeq
        # number of the caller's; the From tag tells whose request it answers.
        from_caller = dialog.from_tag is None or msg.from_tag == dialog.from_tag
        initial = cseq_num in dialog.invite_cseqs and from_caller
        if not initial:  # a re-INVITE's response: its sender is the side that did not ask
            if status > 100:
                responder = "callee" if msg.from_tag == dialog.from_tag else "caller"
                self._media(dialog, msg, responder)
            return
        if status < 200:
            if 180 <= status <= 189 and dialog.ringing is None:
                dialog.ringing = ts
            if status > 100:
                self._media(dialog, msg, "callee")
            return
        if cseq_num in dialog.finals:
            return  # a retransmitted final response
        dialog.finals[cseq_num] = status
        if 200 <= status < 300:
            if dialog.answer is None:
                dialog.answer = ts
            self._media(dialog, msg, "callee")
        elif dialog.answer is not None:
            return  # a late failure of another fork does not undo the answer
        dialog.final_status = status
        dialog.final_ts = ts

    def _on_register(self, msg: SipMessage, packet: int, ts: float, src: str, sport: int,
                     dst: str, dport: int, transport: str, cseq_num: int) -> None:  # fmt: skip
        attempts = self.registrations.setdefault(msg.call_id, [])
        current = attempts[-1] if attempts else None
        if current is not None and cseq_num in current.cseqs:
            current.retransmissions += 1
            current.last_ts = max(current.last_ts, ts)
            return
        has_credentials = "authorization" in msg.headers or "proxy-authorization" in msg.headers
        if current is not None and current.status in SIP_AUTH_CHALLENGES and has_credentials:
            current.cseqs.add(cseq_num)
            current.challenges += 1
            current.status = None
            current.final_ts = None
            current.last_ts = max(current.last_ts, ts)
            return
        expires_text = msg.header("expires")
        expires = int(expires_text) if expires_text and expires_text.isdigit() else None
        if expires is None:
            contact = (msg.header("contact") or "").lower()
            if "expires=" in contact:
                digits = contact.split("expires=", 1)[1].split(";")[0].split(",")[0].strip()
                expires = int(digits) if digits.isdigit() else None
        attempt = RegistrationAttempt(
            call_id=msg.call_id, first_packet=packet, start=ts, client=addr(src, sport),
            registrar=addr(dst, dport), aor_user=header_user(msg.header("to")),
            from_user=header_user(msg.header("from")), expires=expires, transport=transport,
            last_ts=ts,
        )  # fmt: skip
        attempt.cseqs.add(cseq_num)
        attempts.append(attempt)

    def _media(self, dialog: Dialog, msg: SipMessage, announced_by: str) -> None:
        """Map the media addresses an SDP body announces to the dialog."""
        if not msg.body or b"m=" not in msg.body:
            return
        ctype = (msg.header("content-type") or "application/sdp").lower()
        if "sdp" not in ctype:
            return
        offers: list[MediaOffer] = parse_sdp(msg.body)
        # Packets sent *to* the caller's address flow callee → caller (rev), and vice versa.
        direction = "rev" if announced_by == "caller" else "fwd"
        for offer in offers:
            self.media_map[(offer.address, offer.port)] = (dialog, direction, offer.clock_rates)

    # --- RTP ------------------------------------------------------------------------------
    def on_rtp(self, ts: float, dst: str, dport: int, header: RtpHeader) -> bool:
        """Count an RTP packet for the dialog whose SDP announced its destination."""
        entry = self.media_map.get((dst, dport))
        if entry is None:
            return False
        dialog, direction, rates = entry
        ended = dialog.ended_ts
        if ended is not None and ts > ended + MEDIA_GRACE_S:
            return False
        key = (direction, header.ssrc)
        stream = dialog.media.get(key)
        if stream is None:
            stream = RtpStream(rates.get(header.payload_type, DEFAULT_CLOCK_RATE))
            dialog.media[key] = stream
        stream.add(ts, header.seq, header.timestamp)
        return True

    def is_media(self, dst: str, dport: int) -> bool:
        """Whether a destination is a media address of a known dialog."""
        return (dst, dport) in self.media_map

    # --- records --------------------------------------------------------------------------
    def xdr_rows(self, clock_affects: Callable[[int, int], bool] | None = None
                 ) -> list[dict[str, Any]]:  # fmt: skip
        """One plain row per INVITE dialog (times as epoch seconds).

        ``clock_affects(first_packet, last_packet)`` says whether the capture clock was repaired
        within a record's packets (:meth:`cemkit.io.sip.capture.CaptureClock.affects`).
        """
        return [_flag(_dialog_row(d), d, clock_affects) for d in self.dialogs.values()]

    def registration_rows(self, capture_end: float | None = None,
                          clock_affects: Callable[[int, int], bool] | None = None
                          ) -> list[dict[str, Any]]:  # fmt: skip
        """One plain row per registration attempt (``capture_end``: time of the last packet)."""
        return [_flag(_registration_row(a, capture_end), a, clock_affects)
                for attempts in self.registrations.values() for a in attempts]  # fmt: skip


def _flag(row: dict[str, Any], state: Dialog | RegistrationAttempt,
          clock_affects: Callable[[int, int], bool] | None) -> dict[str, Any]:  # fmt: skip
    last = max(state.last_packet, state.first_packet)
    row["src_sip_clock_adjusted"] = bool(clock_affects and clock_affects(state.first_packet, last))
    return row


def _dialog_row(d: Dialog) -> dict[str, Any]:
    status = d.final_status
    state = "completed"
    if status is not None:
        outcome = outcome_from_sip(status)
    elif d.cancel_ts is not None:
        outcome, state = CANCELLED, "no_final_response"
    elif d.bye_ts is not None:
        outcome, state = "answered", "no_final_response"
    else:
        outcome, state = "failed", "no_final_response"
    answered = outcome == "answered"
    answer = d.answer if answered else None
    if answered and d.bye_ts is not None:
        end = d.bye_ts
    elif answered:
        end, state = d.last_ts, "no_bye"
    else:
        end = d.final_ts if d.final_ts is not None else max(d.last_ts, d.start)
    end = max(end, d.start)
    released_by = d.bye_by if d.bye_ts is not None else None
    if released_by is None and d.cancel_ts is not None:
        released_by = "caller"  # only the caller can CANCEL
    cause: int | None = None
    if answered:
        cause = Q850_NORMAL_CLEARING
    elif status is not None:
        cause = SIP_TO_Q850.get(status)
    fwd = _direction_stats(d, "fwd")
    rev = _direction_stats(d, "rev")
    expected = fwd["expected"] + rev["expected"]
    lost = fwd["lost"] + rev["lost"]
    jitters = [s["jitter_ms"] for s in (fwd, rev) if s["packets"]]
    return {
        "record_kind": "xdr",
        "call_id": d.call_id,
        "first_packet": d.first_packet,
        "start": d.start,
        "answer": answer,
        "end": end,
        "duration_s": end - d.start,
        "billsec_s": max(end - answer, 0.0) if answer is not None else 0.0,
        "outcome": outcome,
        "sip_status": status,
        "cause_q850": cause,
        "released_by": released_by,
        "node": d.callee,
        "pdd_ms": max(d.ringing - d.start, 0.0) * 1000.0 if d.ringing is not None else None,
        "a_raw": d.pai_user or d.from_user,
        "b_raw": d.to_user or d.ruri_user,
        "src_sip_from_user": d.from_user,
        "src_sip_ruri_user": d.ruri_user,
        "src_sip_caller_addr": d.caller,
        "src_sip_callee_addr": d.callee,
        "src_sip_transport": d.transport,
        "src_sip_state": state,
        "src_sip_requests": len(d.invite_cseqs),
        "src_sip_auth_challenges": d.challenges,
        "src_sip_retransmissions": d.retransmissions,
        "src_sip_ringing": d.ringing,
        "src_sip_register_expires_s": None,
        "loss_ratio": lost / expected if expected else None,
        "jitter_ms": max(jitters) if jitters else None,
        **{f"src_sip_rtp_fwd_{k}": v for k, v in fwd.items() if k != "expected"},
        **{f"src_sip_rtp_rev_{k}": v for k, v in rev.items() if k != "expected"},
    }


def _direction_stats(d: Dialog, direction: str) -> dict[str, Any]:
    streams = [s for (dirn, _), s in d.media.items() if dirn == direction and s.received]
    if not streams:
        return {"packets": 0, "lost": 0, "expected": 0, "jitter_ms": None, "max_jitter_ms": None}
    return {
        "packets": sum(s.received for s in streams),
        "lost": sum(s.lost for s in streams),
        "expected": sum(s.expected for s in streams),
        "jitter_ms": max(s.jitter_ms for s in streams),
        "max_jitter_ms": max(s.max_jitter_ms for s in streams),
    }


def _registration_row(a: RegistrationAttempt, capture_end: float | None) -> dict[str, Any]:
    status = a.status
    cut_off = capture_end is not None and capture_end - a.last_ts <= TIMER_F_S
    outcome = registration_outcome(status, a.challenges, cut_off=cut_off)
    state = "completed" if status is not None else "no_final_response"
    end = a.final_ts if a.final_ts is not None else a.last_ts
    end = max(end, a.start)
    return {
        "record_kind": "registration",
        "call_id": a.call_id,
        "first_packet": a.first_packet,
        "start": a.start,
        "answer": None,
        "end": end,
        "duration_s": end - a.start,
        "billsec_s": 0.0,
        "outcome": outcome,
        "sip_status": status,
        "cause_q850": SIP_TO_Q850.get(status) if status is not None else None,
        "released_by": None,
        "node": a.registrar,
        "pdd_ms": None,
        "a_raw": a.aor_user,
        "b_raw": None,
        "src_sip_from_user": a.from_user,
        "src_sip_ruri_user": None,
        "src_sip_caller_addr": a.client,
        "src_sip_callee_addr": a.registrar,
        "src_sip_transport": a.transport,
        "src_sip_state": state,
        "src_sip_requests": len(a.cseqs),
        "src_sip_auth_challenges": a.challenges,
        "src_sip_retransmissions": a.retransmissions,
        "src_sip_ringing": None,
        "src_sip_register_expires_s": a.expires,
        "loss_ratio": None,
        "jitter_ms": None,
    }
