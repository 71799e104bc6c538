"""Call outcomes and every mapping onto them, in one place.

The canonical ``outcome`` of a record is one of :data:`OUTCOMES`. Source systems speak their own
languages; this module holds each translation:

* Asterisk ``disposition`` (cdr_csv): ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION;
* FreeSWITCH ``hangup_cause`` names (``switch_channel.c`` cause table) and their numeric codes;
* ITU-T Q.850 cause values;
* SIP final response codes (RFC 3261 classes, RFC 3398 section 8.2.6.1 SIP → ISUP cause).

SIP registrations (``record_kind == "registration"``) are not calls: they have their own outcome
set, :data:`REGISTRATION_OUTCOMES`, and :func:`registration_outcome` says which applies. The
canonical ``outcome`` column takes either set (:data:`ALL_OUTCOMES`); the call outcomes keep
their codes (their order in :data:`OUTCOMES`), the registration outcomes come after them.

Which outcomes count as *user determined* (ITU-T E.425 network effectiveness) lives here too, so
that indicator formulas in :mod:`cemkit.kqi` never re-derive it.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

ANSWERED: Final = "answered"
NO_ANSWER: Final = "no_answer"
BUSY: Final = "busy"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
REJECTED: Final = "rejected"
CONGESTION: Final = "congestion"

#: Every canonical outcome, in a stable order (also the order of category codes).
OUTCOMES: Final[tuple[str, ...]] = (
    ANSWERED,
    NO_ANSWER,
    BUSY,
    FAILED,
    CANCELLED,
    REJECTED,
    CONGESTION,
)

# --- SIP registrations (RFC 3261 section 10; RFC 6076 section 4.1) -----------------------------
REGISTERED: Final = "registered"
REGISTERED_AFTER_CHALLENGE: Final = "registered_after_challenge"
REGISTRATION_FAILED: Final = "registration_failed"
REGISTRATION_UNKNOWN: Final = "registration_unknown"

#: Outcomes of a registration attempt (one REGISTER, or a REGISTER challenged with 401/407 and
#: re-sent with credentials on the same Call-ID, which is one attempt):
#: ``registered`` (2xx without a challenge); ``registered_after_challenge`` (2xx to the re-sent
#: REGISTER); ``registration_failed`` (a final non-2xx response, a challenge left unanswered, or
#: no final response although the capture went on past RFC 3261 Timer F); and
#: ``registration_unknown`` (the capture ended within Timer F of the attempt's last message,
#: before its outcome could be seen: excluded from the registration KQIs).
REGISTRATION_OUTCOMES: Final[tuple[str, ...]] = (
    REGISTERED,
    REGISTERED_AFTER_CHALLENGE,
    REGISTRATION_FAILED,
    REGISTRATION_UNKNOWN,
)
#: Registration outcomes that are a success (numerator of the registration success ratio).
REGISTRATION_SUCCESS: Final[frozenset[str]] = frozenset({REGISTERED, REGISTERED_AFTER_CHALLENGE})
#: Registration outcomes that are known (denominator of the registration success ratio).
REGISTRATION_RESOLVED: Final[frozenset[str]] = REGISTRATION_SUCCESS | {REGISTRATION_FAILED}

#: Every value of the canonical ``outcome`` column: call outcomes, then registration outcomes.
ALL_OUTCOMES: Final[tuple[str, ...]] = (*OUTCOMES, *REGISTRATION_OUTCOMES)

#: Outcomes that the network delivered to the called user (E.425 "effective" calls): the call was
#: answered, or the *user* (not the network) made it end without an answer.
USER_DETERMINED: Final[frozenset[str]] = frozenset({ANSWERED, NO_ANSWER, BUSY, CANCELLED, REJECTED})

# --- Asterisk -----------------------------------------------------------------------------------
#: Asterisk cdr_csv ``disposition`` → outcome (``cdr.c``: ast_cdr_disp2str).
ASTERISK_DISPOSITION: Final[dict[str, str]] = {
    "ANSWERED": ANSWERED,
    "NO ANSWER": NO_ANSWER,
    "BUSY": BUSY,
    "FAILED": FAILED,
    "CONGESTION": CONGESTION,
}
#: outcome → the disposition Asterisk would write (used by the synthetic generator).
OUTCOME_TO_ASTERISK: Final[dict[str, str]] = {
    ANSWERED: "ANSWERED",
    NO_ANSWER: "NO ANSWER",
    BUSY: "BUSY",
    FAILED: "FAILED",
    CANCELLED: "NO ANSWER",
    REJECTED: "BUSY",
    CONGESTION: "CONGESTION",
}

# --- FreeSWITCH ---------------------------------------------------------------------------------
#: FreeSWITCH hangup cause names → numeric code (``switch_channel.c`` CAUSE_CHART). Codes up to
#: 127 are Q.850 cause values; larger ones are FreeSWITCH's own.
FREESWITCH_CAUSE_CODES: Final[dict[str, int]] = {
    "NONE": 0,
    "UNSPECIFIED": 0,
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_TRANSIT_NET": 2,
    "NO_ROUTE_DESTINATION": 3,
    "CHANNEL_UNACCEPTABLE": 6,
    "CALL_AWARDED_DELIVERED": 7,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "REDIRECTION_TO_NEW_DESTINATION": 23,
    "EXCHANGE_ROUTING_ERROR": 25,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "FACILITY_REJECTED": 29,
    "RESPONSE_TO_STATUS_ENQUIRY": 30,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "ACCESS_INFO_DISCARDED": 43,
    "REQUESTED_CHAN_UNAVAIL": 44,
    "PRE_EMPTED": 45,
    "FACILITY_NOT_SUBSCRIBED": 50,
    "OUTGOING_CALL_BARRED": 52,
    "INCOMING_CALL_BARRED": 54,
    "BEARERCAPABILITY_NOTAUTH": 57,
    "BEARERCAPABILITY_NOTAVAIL": 58,
    "SERVICE_UNAVAILABLE": 63,
    "BEARERCAPABILITY_NOTIMPL": 65,
    "CHAN_NOT_IMPLEMENTED": 66,
    "FACILITY_NOT_IMPLEMENTED": 69,
    "SERVICE_NOT_IMPLEMENTED": 79,
    "INVALID_CALL_REFERENCE": 81,
    "INCOMPATIBLE_DESTINATION": 88,
    "INVALID_MSG_UNSPECIFIED": 95,
    "MANDATORY_IE_MISSING": 96,
    "MESSAGE_TYPE_NONEXIST": 97,
    "WRONG_MESSAGE": 98,
    "IE_NONEXIST": 99,
    "INVALID_IE_CONTENTS": 100,
    "WRONG_CALL_STATE": 101,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "MANDATORY_IE_LENGTH_ERROR": 103,
    "PROTOCOL_ERROR": 111,
    "INTERWORKING": 127,
    "SUCCESS": 142,
    "ORIGINATOR_CANCEL": 487,
    "CRASH": 700,
    "SYSTEM_SHUTDOWN": 701,
    "LOSE_RACE": 502,
    "MANAGER_REQUEST": 503,
    "BLIND_TRANSFER": 600,
    "ATTENDED_TRANSFER": 601,
    "ALLOTTED_TIMEOUT": 602,
    "USER_CHALLENGE": 603,
    "MEDIA_TIMEOUT": 604,
    "PICKED_OFF": 605,
    "USER_NOT_REGISTERED": 606,
    "PROGRESS_TIMEOUT": 607,
    "INVALID_GATEWAY": 608,
    "GATEWAY_DOWN": 609,
    "INVALID_URL": 610,
    "INVALID_PROFILE": 611,
    "NO_PICKUP": 612,
    "SRTP_READ_ERROR": 613,
}

#: FreeSWITCH-only causes (code > 127) whose meaning for an *unanswered* call is clear.
_FREESWITCH_OWN_OUTCOME: Final[dict[int, str]] = {
    487: CANCELLED,  # ORIGINATOR_CANCEL
    502: CANCELLED,  # LOSE_RACE: another leg of a forked call answered
    503: CANCELLED,  # MANAGER_REQUEST
    602: NO_ANSWER,  # ALLOTTED_TIMEOUT
    603: REJECTED,  # USER_CHALLENGE
    605: CANCELLED,  # PICKED_OFF
    606: FAILED,  # USER_NOT_REGISTERED
    607: NO_ANSWER,  # PROGRESS_TIMEOUT
    612: NO_ANSWER,  # NO_PICKUP
}

# --- Q.850 --------------------------------------------------------------------------------------
#: Q.850 cause value → outcome of an *unanswered* call. Values not listed are ``failed``.
Q850_UNANSWERED_OUTCOME: Final[dict[int, str]] = {
    16: CANCELLED,  # normal clearing before answer: the caller gave up
    31: CANCELLED,  # normal, unspecified
    17: BUSY,  # user busy
    18: NO_ANSWER,  # no user responding
    19: NO_ANSWER,  # no answer from user (user alerted)
    21: REJECTED,  # call rejected
    34: CONGESTION,  # no circuit/channel available
    42: CONGESTION,  # switching equipment congestion
    44: CONGESTION,  # requested circuit/channel not available
    47: CONGESTION,  # resource unavailable, unspecified
}

#: Q.850 names for the causes reports mention most (for labels, never for logic).
Q850_NAMES: Final[dict[int, str]] = {
    code: name
    for name, code in FREESWITCH_CAUSE_CODES.items()
    if code <= 127 and name not in {"NONE"}
}

# --- SIP ----------------------------------------------------------------------------------------
#: SIP final response → Q.850 cause (RFC 3398 section 8.2.6.1).
SIP_TO_Q850: Final[dict[int, int]] = {
    400: 41,
    401: 21,
    402: 21,
    403: 21,
    404: 1,
    405: 63,
    406: 79,
    407: 21,
    408: 102,
    410: 22,
    413: 127,
    414: 127,
    415: 79,
    416: 127,
    420: 127,
    421: 127,
    423: 127,
    480: 18,
    481: 41,
    482: 25,
    483: 25,
    484: 28,
    485: 1,
    486: 17,
    488: 127,
    500: 41,
    501: 79,
    502: 38,
    503: 41,
    504: 102,
    505: 127,
    513: 127,
    600: 17,
    603: 21,
    604: 1,
    606: 58,
}

#: SIP final responses whose outcome is not implied by their class alone.
_SIP_OUTCOME: Final[dict[int, str]] = {
    403: REJECTED,
    408: NO_ANSWER,
    480: NO_ANSWER,
    486: BUSY,
    487: CANCELLED,
    503: CONGESTION,
    600: BUSY,
    603: REJECTED,
}

#: SIP responses that challenge the request (a re-sent request follows; not a failure).
SIP_AUTH_CHALLENGES: Final[frozenset[int]] = frozenset({401, 407})


def sip_status_class(status: int) -> str:
    """Return the RFC 3261 class of a SIP status code.

    Examples
    --------
    >>> sip_status_class(183), sip_status_class(486)
    ('provisional', 'client_error')
    """
    classes = {
        1: "provisional",
        2: "success",
        3: "redirection",
        4: "client_error",
        5: "server_error",
        6: "global_failure",
    }
    return classes.get(status // 100, "invalid")


def outcome_from_sip(status: int) -> str:
    """Map a SIP *final* response code of an INVITE to a canonical outcome.

    Examples
    --------
    >>> outcome_from_sip(200), outcome_from_sip(486), outcome_from_sip(404)
    ('answered', 'busy', 'failed')
    """
    if 200 <= status < 300:
        return ANSWERED
    if status in _SIP_OUTCOME:
        return _SIP_OUTCOME[status]
    if status >= 600:
        return REJECTED
    if status >= 300:
        return FAILED
    raise ValueError(f"SIP status {status} is not a final response (expected 200-699)")


def registration_outcome(status: int | None, challenges: int, *, cut_off: bool = False) -> str:
    """Outcome of a registration attempt (see :data:`REGISTRATION_OUTCOMES`).

    Parameters
    ----------
    status : int or None
        The attempt's last final response (None when none was seen).
    challenges : int
        401/407 challenges answered by a re-sent REGISTER within the attempt.
    cut_off : bool
        Whether the capture ended within RFC 3261 Timer F of the attempt's last message: an
        attempt still waiting (no final response, or a challenge not yet answered) is then
        ``registration_unknown`` rather than failed.

    Examples
    --------
    >>> registration_outcome(200, 0), registration_outcome(200, 1)
    ('registered', 'registered_after_challenge')
    >>> registration_outcome(403, 1), registration_outcome(None, 0)
    ('registration_failed', 'registration_failed')
    >>> registration_outcome(401, 0, cut_off=True), registration_outcome(None, 0, cut_off=True)
    ('registration_unknown', 'registration_unknown')
    """
    if status is not None and 200 <= status < 300:
        return REGISTERED if challenges == 0 else REGISTERED_AFTER_CHALLENGE
    if status is not None and status < 200:
        raise ValueError(f"SIP status {status} is not a final response (expected 200-699)")
    waiting = status is None or status in SIP_AUTH_CHALLENGES
    return REGISTRATION_UNKNOWN if waiting and cut_off else REGISTRATION_FAILED


def outcome_from_q850(cause: int | None, answered: bool) -> str:
    """Map a Q.850 cause value (or a FreeSWITCH code above 127) to a canonical outcome.

    An answered call is ``answered`` whatever its release cause (drops are measured separately
    from the cause). An unanswered call is classified by its cause.

    Examples
    --------
    >>> outcome_from_q850(17, answered=False), outcome_from_q850(16, answered=True)
    ('busy', 'answered')
    """
    if answered:
        return ANSWERED
    if cause is None:
        return FAILED
    if cause in Q850_UNANSWERED_OUTCOME:
        return Q850_UNANSWERED_OUTCOME[cause]
    return _FREESWITCH_OWN_OUTCOME.get(cause, FAILED)


def outcome_from_freeswitch(cause_name: str, answered: bool) -> str:
    """Map a FreeSWITCH ``hangup_cause`` name to a canonical outcome.

    Examples
    --------
    >>> outcome_from_freeswitch("ORIGINATOR_CANCEL", answered=False)
    'cancelled'
    """
    return outcome_from_q850(FREESWITCH_CAUSE_CODES.get(cause_name.strip().upper()), answered)


def q850_from_freeswitch(cause_name: str) -> int | None:
    """Return the Q.850 cause value of a FreeSWITCH cause name, or None when it has none."""
    code = FREESWITCH_CAUSE_CODES.get(cause_name.strip().upper())
    return code if code is not None and code <= 127 else None


def outcomes_from_q850_array(causes: pd.Series, answered: pd.Series) -> pd.Series:
    """Vectorized :func:`outcome_from_q850` over a nullable integer cause column."""
    codes = causes.astype("Int64")
    lookup = {**_FREESWITCH_OWN_OUTCOME, **Q850_UNANSWERED_OUTCOME}
    out = codes.map(lookup).astype(object)
    out = out.where(out.notna(), FAILED)
    out = out.where(~answered.to_numpy(dtype=bool), ANSWERED)
    return pd.Series(np.asarray(out, dtype=object), index=causes.index).astype("string[pyarrow]")


def outcome_from_asterisk(disposition: str) -> str:
    """Map an Asterisk disposition; raises KeyError for unknown values (callers quarantine)."""
    return ASTERISK_DISPOSITION[disposition.strip().upper()]


# --- 3GPP TS 32.298 ------------------------------------------------------------------------------
#: causeForTerm values of MSC records that say how an unanswered call ended when the record
#: carries no Q.850 diagnostics: a normal release before answer is the caller giving up.
THREEGPP_UNANSWERED_OUTCOME: Final[dict[int, str]] = {
    0: CANCELLED,  # normalRelease before answer
    3: FAILED,  # unsuccessfulCallAttempt
    4: FAILED,  # abnormalRelease
    5: CANCELLED,  # cAMELInitCallRelease: the service ended the call
    52: REJECTED,  # unauthorizedRequestingNetwork
}


def outcome_from_3gpp(cause_for_term: int | None, q850: int | None, answered: bool) -> str:
    """Outcome of a TS 32.298 MSC record from causeForTerm and the diagnostics' Q.850 cause.

    An answered call is ``answered``; otherwise a Q.850 cause in the diagnostics decides
    (:func:`outcome_from_q850`), else causeForTerm (:data:`THREEGPP_UNANSWERED_OUTCOME`).

    Examples
    --------
    >>> outcome_from_3gpp(3, 17, answered=False), outcome_from_3gpp(0, None, answered=False)
    ('busy', 'cancelled')
    """
    if answered:
        return ANSWERED
    if q850 is not None:
        return outcome_from_q850(q850, answered=False)
    return THREEGPP_UNANSWERED_OUTCOME.get(cause_for_term if cause_for_term is not None else -1,
                                           FAILED)  # fmt: skip


def outcomes_from_3gpp_array(
    cause_for_term: np.ndarray, q850: np.ndarray, answered: np.ndarray
) -> np.ndarray:
    """Vectorized :func:`outcome_from_3gpp` (``-1`` for an absent cause); object array."""
    q = pd.Series(q850).map(Q850_UNANSWERED_OUTCOME).fillna(FAILED).to_numpy(dtype=object)
    t = pd.Series(cause_for_term).map(THREEGPP_UNANSWERED_OUTCOME).fillna(FAILED)
    return np.where(answered, ANSWERED, np.where(q850 >= 0, q, t.to_numpy(dtype=object)))
