r"""SIP message parsing (RFC 3261 section 7) and the few SDP lines needed to find media (RFC 4566).

No maintained Python library parses SIP messages from captured bytes (dpkt's ``sip`` module
rejects compact header forms and lines folded over several lines), so this module does it: a
start line, headers (case-insensitive names, compact forms, folded lines, repeated headers) and a
body sized by Content-Length.

Examples
--------
>>> raw = (b"INVITE sip:+441632960961@example.net SIP/2.0\r\n"
...        b"i: abc@host\r\nCSeq: 1 INVITE\r\n"
...        b"f: <sip:100@pbx>;tag=x\r\nt: <sip:200@pbx>\r\nl: 0\r\n\r\n")
>>> msg = parse_message(raw)
>>> msg.method, msg.call_id, msg.cseq, header_user(msg.header("from"))
('INVITE', 'abc@host', (1, 'INVITE'), '100')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

#: Compact header forms (RFC 3261 section 7.3.3 and later RFCs) → full lower-case names.
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
    "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding",
    "o": "event", "r": "refer-to", "b": "referred-by", "x": "session-expires",
    "u": "allow-events", "a": "accept-contact", "j": "reject-contact", "d": "request-disposition",
    "y": "identity", "n": "identity-info",
}  # fmt: skip

_REQUEST_LINE = re.compile(rb"^([A-Za-z]+) (\S+) SIP/2\.0\r?$")
_STATUS_LINE = re.compile(rb"^SIP/2\.0 (\d{3})(?: (.*))?\r?$")
#: What a SIP start line looks like: used to tell SIP from other traffic, and to resynchronise.
START_LINE = re.compile(rb"(?:[A-Z]+ \S+ SIP/2\.0|SIP/2\.0 \d{3}[ \r])")
_TAG = re.compile(r";\s*tag\s*=\s*([^;,\s>]+)", re.IGNORECASE)


class SipParseError(ValueError):
    """A message that looks like SIP but breaks the grammar; ``field`` names the culprit."""

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

    def __reduce__(self):
        return (SipParseError, (self.reason, self.field))


@dataclass
class SipMessage:
    """A parsed SIP request or response."""

    method: str | None  #: request method, None for responses
    uri: str | None  #: Request-URI, None for responses
    status: int | None  #: response code, None for requests
    headers: dict[str, list[str]] = field(default_factory=dict)  #: lower-case full names
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        """Whether the message is a request."""
        return self.method is not None

    def header(self, name: str) -> str | None:
        """First value of a header (full lower-case name), or None."""
        values = self.headers.get(name)
        return values[0] if values else None

    @property
    def call_id(self) -> str:
        """The Call-ID (validated present by :func:`parse_message`)."""
        return self.headers["call-id"][0]

    @property
    def cseq(self) -> tuple[int, str]:
        """CSeq number and method (validated by :func:`parse_message`)."""
        num, method = self.headers["cseq"][0].split(None, 1)
        return int(num), method.strip().upper()

    @property
    def from_tag(self) -> str | None:
        """The tag parameter of From."""
        return header_tag(self.header("from"))

    @property
    def to_tag(self) -> str | None:
        """The tag parameter of To (present on in-dialog requests and most responses)."""
        return header_tag(self.header("to"))


def looks_like_sip(payload: bytes) -> bool:
    """Whether a payload starts with a SIP start line (cheap test before parsing)."""
    return START_LINE.match(payload) is not None


def split_head(buffer: bytes | bytearray) -> int:
    """Index just past the blank line that ends a message head, or -1 when not yet complete."""
    end = buffer.find(b"\r\n\r\n")
    if end >= 0:
        return end + 4
    end = buffer.find(b"\n\n")
    return end + 2 if end >= 0 else -1


def head_content_length(head: bytes) -> int | None:
    """Content-Length from a raw head (None when absent); raises SipParseError when invalid."""
    for m in re.finditer(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", head):
        value = m.group(1).strip()
        if not value.isdigit():
            raise SipParseError("Content-Length is not a non-negative integer", "Content-Length")
        return int(value)
    return None


def parse_message(raw: bytes, *, stream: bool = False) -> SipMessage:
    """Parse one SIP message.

    Parameters
    ----------
    raw : bytes
        The whole message (head and body).
    stream : bool
        Whether it came from a stream transport (TCP, WebSocket) where the framer already cut
        the body by Content-Length.

    Raises
    ------
    SipParseError
        When the start line, a header line, Call-ID, CSeq, From, To or Content-Length is wrong.
    """
    end = split_head(raw)
    if end < 0:
        head, body = raw, b""
    else:
        head, body = raw[:end], raw[end:]
    lines = head.split(b"\n")
    start = lines[0].rstrip(b"\r")
    method = uri = None
    status = None
    if (m := _REQUEST_LINE.match(start)) is not None:
        method = m.group(1).decode("ascii").upper()
        uri = m.group(2).decode("utf-8", "replace")
    elif (m := _STATUS_LINE.match(start)) is not None:
        status = int(m.group(1))
        if not 100 <= status <= 699:
            raise SipParseError(f"status code {status} is outside 100-699", "status")
    else:
        raise SipParseError("start line is neither a SIP request line nor a status line", "start")
    headers: dict[str, list[str]] = {}
    last: list[str] | None = None
    text_lines = head[len(lines[0]) + 1 :].decode("utf-8", "replace").split("\n")
    for raw_line in text_lines:
        text = raw_line.rstrip("\r")
        if not text:
            continue
        if text[0] in " \t":
            if last is None:
                raise SipParseError("continuation line before any header", "header")
            last[-1] += " " + text.strip()
            continue
        name, sep, value = text.partition(":")
        key = name.strip().lower()
        if not sep or not key or " " in key:
            raise SipParseError("header line without 'name: value'", "header")
        key = COMPACT_FORMS.get(key, key)
        last = headers.get(key)
        if last is None:
            last = headers[key] = []
        last.append(value.strip())
    msg = SipMessage(method, uri, status, headers, body)
    _check(msg, stream)
    return msg


def _check(msg: SipMessage, stream: bool) -> None:
    if not msg.header("call-id"):
        raise SipParseError("Call-ID header is missing or empty", "Call-ID")
    cseq = msg.header("cseq")
    parts = cseq.split() if cseq else []
    if len(parts) != 2 or not parts[0].isdigit():
        raise SipParseError("CSeq header is missing or not '<number> <method>'", "CSeq")
    method = msg.method
    if method is not None and parts[1].upper() != method and method not in ("ACK", "CANCEL"):
        raise SipParseError("CSeq method differs from the request method", "CSeq")
    for name in ("from", "to"):
        if not msg.header(name):
            raise SipParseError(f"{name.title()} header is missing", name.title())
    length = msg.header("content-length")
    if length is not None:
        if not length.isdigit():
            raise SipParseError("Content-Length is not a non-negative integer", "Content-Length")
        n = int(length)
        if n > len(msg.body):
            raise SipParseError(
                f"body is shorter than Content-Length ({len(msg.body)} < {n}): message truncated",
                "Content-Length",
            )
        msg.body = msg.body[:n]


def header_tag(value: str | None) -> str | None:
    """The ``tag`` parameter of a From/To header value."""
    if not value:
        return None
    # Parameters after the closing '>' belong to the header; inside <...> to the URI.
    tail = value.rsplit(">", 1)[-1] if ">" in value else value
    m = _TAG.search(tail)
    return m.group(1) if m else None


def header_uri(value: str | None) -> str | None:
    """The URI of a name-addr or addr-spec header value (From, To, P-Asserted-Identity)."""
    if not value:
        return None
    if "<" in value:
        inner = value.split("<", 1)[1]
        return inner.split(">", 1)[0].strip()
    return value.split(";", 1)[0].strip()


def header_user(value: str | None) -> str | None:
    """The user part of the URI in a From/To/P-Asserted-Identity header value.

    Examples
    --------
    >>> header_user('"Alice" <sip:+1-555-0100;phone-context=x@host;user=phone>;tag=1')
    '+1-555-0100'
    """
    return uri_user(header_uri(value))


def uri_user(uri: str | None) -> str | None:
    """The user part of a SIP/SIPS/TEL URI (user parameters and password dropped).

    Examples
    --------
    >>> uri_user("sip:+441632960961;npdi@example.net;user=phone")
    '+441632960961'
    >>> uri_user("tel:+441632960961;npdi"), uri_user("sip:host.example") is None
    ('+441632960961', True)
    """
    if not uri:
        return None
    scheme, sep, rest = uri.partition(":")
    if not sep:
        return None
    scheme = scheme.strip().lower()
    if scheme == "tel":
        user = rest.split(";", 1)[0]
    elif scheme in ("sip", "sips"):
        if "@" not in rest:
            return None
        user = rest.rsplit("@", 1)[0].split(":", 1)[0]
        user = user.split(";", 1)[0]
    else:
        return None
    user = unquote(user.strip())
    return user or None


@dataclass(frozen=True)
class MediaOffer:
    """An audio/video stream an SDP body announces: where its sender wants RTP sent."""

    address: str
    port: int
    clock_rates: dict[int, int]  #: RTP payload type → clock rate (Hz)


#: Clock rates of static RTP payload types (RFC 3551 table 4/5); dynamic ones come from rtpmap.
STATIC_CLOCK_RATES: dict[int, int] = {
    0: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000, 9: 8000, 10: 44100,
    11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025, 17: 22050, 18: 8000,
    25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000, 33: 90000, 34: 90000,
}  # fmt: skip


@dataclass
class _SdpStream:
    port: int
    payload_types: list[int]
    address: str | None = None
    rates: dict[int, int] = field(default_factory=dict)


def parse_sdp(body: bytes) -> list[MediaOffer]:
    r"""Media streams of an SDP body (address from media- or session-level ``c=``).

    Examples
    --------
    >>> sdp = b"v=0\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 8 101\na=rtpmap:101 x/48000\n"
    >>> parse_sdp(sdp)
    [MediaOffer(address='192.0.2.1', port=4000, clock_rates={8: 8000, 101: 48000})]
    """
    session_addr: str | None = None
    current: _SdpStream | None = None
    streams: list[_SdpStream] = []
    for raw_line in body.decode("utf-8", "replace").splitlines():
        line = raw_line.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "c":
            parts = value.split()
            if len(parts) >= 3:
                address = parts[2].split("/", 1)[0]
                if current is None:
                    session_addr = address
                else:
                    current.address = address
        elif kind == "m":
            parts = value.split()
            port_text = parts[1].split("/", 1)[0] if len(parts) >= 3 else ""
            pts = [int(p) for p in parts[3:] if p.isdigit()]
            current = _SdpStream(int(port_text) if port_text.isdigit() else 0, pts)
            streams.append(current)
        elif kind == "a" and current is not None and value.startswith("rtpmap:"):
            try:
                pt_text, encoding = value[7:].split(None, 1)
                current.rates[int(pt_text)] = int(encoding.split("/")[1])
            except (ValueError, IndexError):
                continue
    offers: list[MediaOffer] = []
    for stream in streams:
        where = stream.address or session_addr
        if where is None or stream.port == 0 or where in ("0.0.0.0", "::"):
            continue
        rates = {p: STATIC_CLOCK_RATES[p] for p in stream.payload_types if p in STATIC_CLOCK_RATES}
        rates.update(stream.rates)
        offers.append(MediaOffer(where, stream.port, rates))
    return offers
