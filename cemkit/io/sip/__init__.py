"""SIP captures → signaling xDRs: capture reading, TCP/WebSocket framing, SIP parsing, dialogs, RTP.

The loader that uses these pieces is :class:`cemkit.io.sip_pcap.SipPcapLoader` (format
``sip-pcap``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cemkit import _lazy

if TYPE_CHECKING:
    from cemkit.io.sip.extract import ExtractResult, extract, shard_of
    from cemkit.io.sip.message import SipMessage, SipParseError, parse_message

_lazy.exports(
    __name__,
    {
        "ExtractResult": "cemkit.io.sip.extract",
        "extract": "cemkit.io.sip.extract",
        "shard_of": "cemkit.io.sip.extract",
        "SipMessage": "cemkit.io.sip.message",
        "SipParseError": "cemkit.io.sip.message",
        "parse_message": "cemkit.io.sip.message",
    },
)

__all__ = ["ExtractResult", "SipMessage", "SipParseError", "extract", "parse_message", "shard_of"]
