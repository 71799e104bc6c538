"""Loader ``sip-pcap``: SIP captures (pcap, pcapng) → signaling xDRs and registrations.

Every INVITE dialog (Call-ID) becomes one ``record_kind="xdr"`` record, whether it was answered,
rejected, cancelled or never got a final response; every REGISTER attempt becomes one
``record_kind="registration"`` record. See :mod:`cemkit.io.sip.dialogs` for the state machine and
:mod:`cemkit.io.sip.extract` for how large captures are read in parallel (Call-ID shards).

Columns: ``start`` = first INVITE; ``pdd_ms`` = first INVITE → first 18x (an authentication
challenge's round trip is part of it, as RFC 6076 counts it); ``answer`` = first 2xx;
``end`` = BYE, else the final response, else the last message seen (``src_sip_state`` says
which); ``sip_status`` = final response of the last INVITE transaction, ``outcome`` from it
(:func:`cemkit.outcomes.outcome_from_sip`), ``cause_q850`` from RFC 3398 (16 for answered
calls); ``released_by`` = the side that sent BYE (by From tag) or ``caller`` for CANCEL;
``a_number`` = P-Asserted-Identity user, else From user; ``b_number`` = To user, else
Request-URI user; ``loss_ratio`` over both directions; ``jitter_ms`` = the worse direction's
mean RFC 3550 jitter. Registrations: ``a_number`` = the address-of-record (To) user,
``outcome`` one of :data:`cemkit.outcomes.REGISTRATION_OUTCOMES` (never a call outcome: see
:func:`cemkit.outcomes.registration_outcome`), ``end`` = the final response (so ``duration_s``
is the RFC 6076 registration request delay of a successful attempt), no ``answer`` time.

A capture clock that jumps (a packet more than a day after the one before it, more than a
second before it, or outside 1990..2100) is repaired, not trusted: packets keep their order
(packet number) and their spacing, no time passes across the jump, every message is still
used, and the records whose packets lie on the repaired clock or span a jump have
``src_sip_clock_adjusted`` set (:class:`cemkit.io.sip.capture.CaptureClock`); the load's
manifest counts the jumps (``read_units``).

Not records: dialogs whose INVITE is not in the capture (it started before), OPTIONS and
other out-of-dialog requests; TLS (encrypted) SIP is skipped. pcapng files are read with the
first interface's link type.

Options
-------
node : str, optional
    Value of the ``node`` column for every record (e.g. the probe's name). By default the
    ``ip:port`` that received the INVITE (or the REGISTER).
shards : int, optional
    Parts per capture file. By default one part per ``shard_bytes`` of file size.
shard_bytes : int
    File size per part when ``shards`` is not given (default 64 MiB).
sip_ports : tuple of int
    Ports where text that is not SIP is quarantined as a malformed SIP message.

Examples
--------
>>> from cemkit.io.base import registry
>>> loader = registry.get("sip-pcap")(default_region="GB", node="probe-1")
>>> loader.name, loader.opts["node"]
('sip-pcap', 'probe-1')
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa

from cemkit.errors import FormatError, InputError
from cemkit.io.base import Loader, Part, empty_quarantine, registry, with_read_units
from cemkit.io.sip.extract import DEFAULT_SIP_PORTS, PACKET_COUNTERS, ExtractResult, extract
from cemkit.io.textfile import open_input
from cemkit.numbers import normalize
from cemkit.schema import PII, Column, conform, extension_field

_I32 = pa.int32()
_I64 = pa.int64()
_F64 = pa.float64()


def _rtp_columns(direction: str, what: str) -> tuple[Column, ...]:
    p = f"src_sip_rtp_{direction}_"
    return (
        extension_field(p + "packets", _I64, PII.NONE, f"RTP packets received {what}."),
        extension_field(p + "lost", _I64, PII.NONE, f"RTP packets lost {what} (RFC 3550 A.3)."),
        extension_field(p + "jitter_ms", _F64, PII.NONE,
                        f"Mean RFC 3550 interarrival jitter {what}, ms."),
        extension_field(p + "max_jitter_ms", _F64, PII.NONE,
                        f"Largest RFC 3550 interarrival jitter {what}, ms."),
    )  # fmt: skip


#: Source-specific columns of sip-pcap records.
EXTENSIONS: tuple[Column, ...] = (
    extension_field("src_sip_from_user", pa.string(), PII.TN, "User part of From, as written."),
    extension_field("src_sip_ruri_user", pa.string(), PII.TN,
                    "User part of the initial INVITE's Request-URI, as written."),
    extension_field("src_sip_caller_addr", pa.string(), PII.DIRECT,
                    "ip:port that sent the initial INVITE (or REGISTER)."),
    extension_field("src_sip_callee_addr", pa.string(), PII.DIRECT,
                    "ip:port that received the initial INVITE (or REGISTER)."),
    extension_field("src_sip_transport", pa.string(), PII.NONE, "udp, tcp or ws (WebSocket)."),
    extension_field("src_sip_state", pa.string(), PII.NONE,
                    "completed; no_final_response (capture holds none); no_bye (answered, "
                    "BYE not in the capture: end is the last message seen)."),
    extension_field("src_sip_requests", _I32, PII.NONE,
                    "INVITE (REGISTER) transactions of the attempt: 1 + re-sends after "
                    "challenges."),
    extension_field("src_sip_auth_challenges", _I32, PII.NONE,
                    "401/407 challenges answered within the attempt."),
    extension_field("src_sip_retransmissions", _I32, PII.NONE, "Retransmitted requests seen."),
    extension_field("src_sip_ringing", pa.timestamp("ns", tz="UTC"), PII.QUASI,
                    "Time of the first 18x provisional response, UTC."),
    extension_field("src_sip_register_expires_s", _I32, PII.NONE,
                    "Registration lifetime asked for (0 = de-registration)."),
    extension_field("src_sip_first_packet", _I64, PII.NONE,
                    "Packet number of the first request of the attempt."),
    extension_field("src_sip_clock_adjusted", pa.bool_(), PII.NONE,
                    "The capture clock jumped (back, or forward by more than a day) within or "
                    "before the record's packets: its times are on the repaired clock "
                    "(cemkit.io.sip.capture.CaptureClock: packet order kept, no time assumed "
                    "to pass across a jump), its outcome still follows its messages."),
    *_rtp_columns("fwd", "from caller to callee"),
    *_rtp_columns("rev", "from callee to caller"),
)  # fmt: skip

_TIME_COLUMNS = ("start", "answer", "end", "src_sip_ringing")


@dataclass(frozen=True)
class SipPart(Part):
    """A capture file and the share of its Call-IDs a part owns (shard of shards)."""

    shard: int = 0
    shards: int = 1


@registry.register
class SipPcapLoader(Loader):
    """SIP captures (pcap/pcapng; UDP, TCP, WebSocket; IPv4/IPv6) → xDRs and registrations."""

    name: ClassVar[str] = "sip-pcap"
    description: ClassVar[str] = (
        "SIP signaling captures (pcap, pcapng): one xDR per INVITE dialog, one record per "
        "REGISTER attempt, RTP loss and jitter per direction"
    )
    extensions: ClassVar[tuple[Column, ...]] = EXTENSIONS
    options: ClassVar[dict[str, Any]] = {
        "node": None,
        "shards": None,
        "shard_bytes": 64 << 20,
        "sip_ports": DEFAULT_SIP_PORTS,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shards = self.opts["shards"]
        if shards is not None and (not isinstance(shards, int) or shards < 1):
            raise FormatError(f"option 'shards' must be a positive integer, found {shards!r}")
        if not isinstance(self.opts["shard_bytes"], int) or self.opts["shard_bytes"] < 1:
            raise FormatError("option 'shard_bytes' must be a positive integer")

    #: Every packet is UDP, TCP or other traffic, or was skipped for a reason; every SIP message
    #: (UDP datagram or one cut from a TCP/WebSocket stream) was malformed (quarantined), went
    #: into a record (dialog or registration), or was outside both (OPTIONS, orphans).
    unit_identities: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("packets", ("packets_udp", "packets_tcp", "packets_other", "packets_fragment_held",
                     "packets_undecodable", "packets_bad_timestamp")),
        ("sip_messages", ("sip_messages_in_records", "sip_messages_other",
                          "sip_messages_malformed")),
    )  # fmt: skip

    def unit_warnings(self, units: dict[str, int]) -> list[str]:
        """A capture clock that jumped: its times were repaired, the records flagged."""
        jumps = int(units.get("clock_jumps", 0))
        if not jumps:
            return []
        message = (
            f"the capture clock jumped {jumps} time(s) (back, or ahead by more than a day): "
            f"{units.get('packets_clock_adjusted', 0)} packet(s) kept in packet order on a "
            f"repaired clock; {units.get('records_clock_adjusted', 0)} record(s) flagged "
            "src_sip_clock_adjusted (their outcomes follow their messages, their times "
            "assume no time passed across a jump)"
        )
        return [message]

    def parts(self, paths: Sequence[str]) -> list[Part]:
        """One part per (file, Call-ID shard); only file sizes are looked at."""
        out: list[Part] = []
        for path in paths:
            try:
                size = os.stat(path).st_size
            except OSError as exc:
                raise InputError(
                    f"cannot read capture {path}: {exc.strerror}",
                    hint="check the path; sip-pcap reads pcap and pcapng files",
                ) from None
            shards = self.opts["shards"] or max(1, math.ceil(size / self.opts["shard_bytes"]))
            for shard in range(shards):
                out.append(SipPart(path, index=len(out), shard=shard, shards=shards))
        return out

    def read_part(self, part: Part) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Read one part: its dialogs' xDRs and registrations, and its quarantine."""
        shard = getattr(part, "shard", 0)
        shards = getattr(part, "shards", 1)
        try:
            with open_input(part.path) as fh:
                result = extract(fh, shard=shard, shards=shards, sip_ports=self.opts["sip_ports"])
        except OSError as exc:
            raise InputError(f"cannot read capture {part.path}: {exc.strerror}") from None
        except ValueError as exc:
            raise InputError(
                f"{part.path} is not a capture sip-pcap can read: {exc}",
                hint="expected a pcap or pcapng file with Ethernet, Linux cooked, loopback or "
                "raw IP frames",
            ) from None
        units = {k: v for k, v in result.counters.items()
                 if shard == 0 or k not in PACKET_COUNTERS}  # fmt: skip
        quarantine = with_read_units(self._quarantine(part.path, result), units)
        return self._records(part.path, result), quarantine

    def _records(self, path: str, result: ExtractResult) -> pd.DataFrame:
        rows = result.xdrs + result.registrations
        if not rows:
            return self.meta()
        df = pd.DataFrame(rows)
        tag = os.path.basename(path)
        df["record_id"] = [
            f"sip-pcap:{tag}:{p}:{zlib.crc32(c.encode('utf-8', 'replace')):08x}"
            for p, c in zip(df["first_packet"], df["call_id"], strict=True)
        ]
        df = df.rename(columns={"first_packet": "src_sip_first_packet"})
        df["source"] = "sip-pcap"
        df["service"] = "voice"
        for name in _TIME_COLUMNS:
            # Capture clocks are microsecond-precise at best in pcap; drop float noise below 1 us.
            micros = (pd.to_numeric(df[name], errors="coerce") * 1e6).round()
            df[name] = pd.to_datetime(micros, unit="us", utc=True).astype("datetime64[ns, UTC]")
        for col, raw in (("a_number", "a_raw"), ("b_number", "b_raw")):
            number, kind = normalize(df[raw].astype("string"), self.default_region)
            df[col] = number
            df[f"{col}_kind"] = kind
        df = df.drop(columns=["a_raw", "b_raw"])
        if self.opts["node"] is not None:
            df["node"] = str(self.opts["node"])
        for name in ("sip_status", "cause_q850"):
            df[name] = pd.array(df[name].astype("Float64").round(), dtype="Int16")
        df = df.sort_values(["start", "record_id"], kind="stable").reset_index(drop=True)
        return conform(df, self.extensions)

    @staticmethod
    def _quarantine(path: str, result: ExtractResult) -> pd.DataFrame:
        if not result.quarantine:
            return empty_quarantine()
        q = pd.DataFrame(
            {
                "file": [path] * len(result.quarantine),
                "line": [r.packet for r in result.quarantine],
                "field": [r.field for r in result.quarantine],
                "reason": [r.reason for r in result.quarantine],
                "raw": [r.raw for r in result.quarantine],
            }
        )
        q = q.sort_values("line", kind="stable").reset_index(drop=True)
        return q.astype(empty_quarantine().dtypes.to_dict())
