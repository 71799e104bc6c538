"""SIP captures → signaling xDRs: capture reading, TCP/WebSocket framing, SIP parsing, dialogs, RTP.

The loader that uses these pieces is :class:`cemkit.io.sip_pcap.SipPcapLoader` (format
``sip-pcap``).
"""

from cemkit.io.sip.extract import ExtractResult, extract, shard_of
from cemkit.io.sip.message import SipMessage, SipParseError, parse_message

__all__ = ["ExtractResult", "SipMessage", "SipParseError", "extract", "parse_message", "shard_of"]
