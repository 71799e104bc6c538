"""Every experience indicator (KQI) of cemkit: its definition, its source, and its formula.

This is the one place formulas live. Indicators are computed in two steps so that any
aggregation (pandas, Dask, any partitioning) gives the same answer to the last bit:

1. :func:`contributions` turns each record into **integer counters** (:data:`COUNTERS`): counts,
   and fixed-point sums (conversation time in milliseconds, PDD in microseconds, MOS in
   millionths). Integer sums are associative, so partial sums combine exactly.
2. :func:`indicators` turns summed counters (plus exact PDD percentiles, see
   :func:`weighted_quantile`) into the indicators of :data:`INDICATORS`.

Which records count
-------------------
* A *call attempt* is a voice CDR (``service == "voice"``, ``record_kind == "cdr"``) that is not
  a continuation of a long call (``partial_seq`` null or 1). Each CDR leg is an observation by
  the element that wrote it: a call seen at two switches is an attempt at each switch (node
  group KQIs); per-customer KQIs use originating legs only (see :mod:`cemkit.kqi.rollup`).
  After correlation (:func:`cemkit.correlate.match`), a signaling xDR that no CDR matched
  (``src_match == "xdr_only"``) is an attempt too: one the network saw and billing never did.
* *Conversation time* sums ``billsec_s`` over every answered voice CDR, partials included.
* *SIP* indicators (RFC 6076) count signaling xDRs (``record_kind == "xdr"``) with a final
  ``sip_status`` as INVITE transactions, and after correlation also the CDRs that carry their
  matched xDR's ``sip_status`` (``src_match == "matched"``).
* *PDD* counts every voice record that measured it; *MOS* every voice record that measured it
  or that has ``loss_ratio``/``jitter_ms`` for the E-model.

*Data sessions* count SGSN/SGW/PGW CDRs (``service == "data"``) that are not a continuation
(``partial_seq`` null or 1): the counter ``data_sessions`` is their number; volumes and
session time sum over every data record, partials included; a session is released abnormally
when its (last) record's ``closing_cause`` is in :data:`ABNORMAL_CLOSING_CAUSES`.
*SMS attempts* count SMS CDRs that are not a delivery (``leg != "term"``); a failure is an
attempt whose outcome is not ``answered`` (the record carries an smsResult).
*Registrations* (``record_kind == "registration"``, SIP REGISTER attempts) are never call
attempts: they have their own outcomes (:data:`cemkit.outcomes.REGISTRATION_OUTCOMES`) and
counters; ``registration_unknown`` attempts (the capture ended first) count in no ratio.

Ratios are fractions in [0, 1] (RFC 6076 and E.411 state percentages: multiply by 100).

Examples
--------
>>> import pandas as pd
>>> recs = pd.DataFrame({"service": ["voice"] * 4, "record_kind": ["cdr"] * 4,
...     "outcome": ["answered", "busy", "failed", "answered"], "billsec_s": [30.0, 0, 0, 90.0]})
>>> ind = indicators(contributions(recs).sum().to_frame().T)
>>> float(ind["asr"].iloc[0]), float(ind["ner"].iloc[0]), float(ind["acd_s"].iloc[0])
(0.5, 0.75, 60.0)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cemkit import config
from cemkit.kqi.columns import RecordColumns
from cemkit.outcomes import (
    ANSWERED,
    REGISTERED_AFTER_CHALLENGE,
    REGISTRATION_RESOLVED,
    REGISTRATION_SUCCESS,
    REGISTRATION_UNKNOWN,
    USER_DETERMINED,
)

# --- counters ------------------------------------------------------------------------------------
#: Radio access groups of the per-RAT data-session counters (``other``: any other or unknown).
DATA_RATS: tuple[str, ...] = ("geran", "utran", "eutran", "nr", "other")
#: 3GPP closing causes (causeForTerm / causeForRecClosing) of an abnormal release.
ABNORMAL_CLOSING_CAUSES: frozenset[int] = frozenset({4})

#: Integer counters per record; summing them is exact in any order.
COUNTERS: tuple[str, ...] = (
    "attempts",  # voice call attempts (CDR, first partial; xDR-only attempts included)
    "xdr_only_attempts",  # ... of which only signaling saw (no CDR: billing never saw them)
    "answered",  # attempts answered
    "user_determined",  # attempts answered or ended by the user (E.425)
    "short_calls",  # answered attempts with billsec < config.SHORT_CALL_S
    "drops",  # answered voice CDRs released with an abnormal cause
    "conversation_ms",  # sum of billsec over answered voice CDRs, milliseconds
    "pdd_count",  # voice records with a PDD measurement
    "pdd_us",  # sum of PDD, microseconds
    "invites",  # SIP INVITE transactions with a final response (xDR)
    "invites_2xx",  # ... answered with 2xx
    "invites_3xx",  # ... redirected with 3xx
    "invites_effective",  # ... answered with 200, 480, 486, 600 or 603 (RFC 6076 SEER)
    "invites_ineffective",  # ... answered with 408, 500, 503 or 504 (RFC 6076 ISA)
    "sessions_completed",  # ... 2xx and released normally (RFC 6076 SCR)
    "mos_count",  # voice records with a measured or E-model MOS
    "mos_micro",  # sum of MOS x 1e6
    "repeat_attempts",  # attempts that repeat an earlier attempt of the same intent
    # --- data sessions (3GPP SGSN/SGW/PGW records) and SMS ---
    "data_sessions",  # data sessions (data CDR, first partial)
    "data_abnormal",  # data records closed by an abnormal release (the session's last record)
    "data_up_bytes",  # uplink octets over every data record, partials included
    "data_down_bytes",  # downlink octets over every data record
    "data_duration_ms",  # session time over every data record, milliseconds
    *(f"data_sessions_{rat}" for rat in DATA_RATS),  # sessions by radio access of 1st record
    "sms_attempts",  # SMS sent (SMS CDR, not a terminating/delivery record)
    "sms_failures",  # ... not delivered (outcome other than answered)
    "registrations",  # SIP registration attempts whose outcome is known (record_kind registration)
    "registrations_ok",  # ... registered (2xx), after a 401/407 challenge or not
    "rrd_count",  # ... registered with a measured delay (RFC 6076 RRD)
    "rrd_us",  # sum of registration request delay (first REGISTER to 2xx), microseconds
    "registrations_challenged",  # registered after a 401/407 challenge (one attempt, not two)
    "registrations_unknown",  # registration attempts cut off by the capture end (not counted)
)

#: RFC 6076 section 4.6: responses that count as an effective session (SEER numerator).
SEER_RESPONSES: frozenset[int] = frozenset({200, 480, 486, 600, 603})
#: RFC 6076 section 4.7: responses that make an attempt ineffective (ISA numerator).
ISA_RESPONSES: frozenset[int] = frozenset({408, 500, 503, 504})

#: Record columns the formulas read (others are not needed to compute indicators).
INPUT_COLUMNS: tuple[str, ...] = (
    "service", "record_kind", "outcome", "billsec_s", "cause_q850", "partial_seq", "pdd_ms",
    "sip_status", "mos", "loss_ratio", "jitter_ms", "delay_ms", "src_match", "leg", "duration_s",
    "closing_cause", "rat", "volume_up_bytes", "volume_down_bytes",
)  # fmt: skip

#: Constant arguments of the counter kernels, after :func:`counter_inputs`'s arrays.
COUNTER_CONSTANTS: tuple[Any, ...] = (
    np.array(sorted(config.NORMAL_RELEASE_CAUSES), dtype=np.float64),
    np.array(sorted(SEER_RESPONSES), dtype=np.float64),
    np.array(sorted(ISA_RESPONSES), dtype=np.float64),
    np.array(sorted(ABNORMAL_CLOSING_CAUSES), dtype=np.float64),
    float(config.SHORT_CALL_S),
)

#: Column holding the intent id from :func:`cemkit.correlate.sessionize`, when present.
INTENT_COLUMN = "src_intent_id"  # added by cemkit.correlate.sessionize(output="records")
#: Seconds after an intent's first attempt within which records still belong to that attempt
#: (its terminating leg, written ~1 s later by the far switch); a retry comes later, after the
#: caller has heard the failure.
SAME_ATTEMPT_WINDOW_S = 5.0
#: Boolean column marking the first attempt of each intent (set by the rollup pre-step).
FIRST_OF_INTENT_COLUMN = "first_of_intent"

# --- ITU-T G.107 E-model -------------------------------------------------------------------------
#: Default R with every G.107 default parameter and no impairment (G.107 section 7.7).
EMODEL_R_DEFAULT = 93.2
#: Equipment impairment of G.711 (ITU-T G.113 Appendix I).
EMODEL_IE = 0.0
#: Packet-loss robustness of G.711 with packet-loss concealment (G.113 Appendix I).
EMODEL_BPL = 25.1
#: One-way mouth-to-ear delay assumed when a record gives none, milliseconds.
EMODEL_DEFAULT_DELAY_MS = 40.0
#: A de-jitter buffer adds about twice the jitter to the delay.
EMODEL_JITTER_BUFFER_FACTOR = 2.0


def emodel_r(loss_ratio: np.ndarray, jitter_ms: np.ndarray, delay_ms: np.ndarray) -> np.ndarray:
    """Transmission rating R of ITU-T G.107 (06/2015) from loss, jitter and delay.

    ``R = 93.2 - Idd(Ta) - Ie,eff`` with every other parameter at its G.107 default; the absolute
    delay is ``Ta = delay + 2 x jitter`` (de-jitter buffer), ``Idd`` per G.107 eq. 7-28 and
    ``Ie,eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl)`` (eq. 7-29) for G.711 with PLC
    (``Ie = 0``, ``Bpl = 25.1``, random loss ``BurstR = 1``). Missing loss or jitter count as 0.

    Examples
    --------
    >>> float(emodel_r(np.array([0.0]), np.array([0.0]), np.array([40.0]))[0])
    93.2
    """
    ppl = 100.0 * np.nan_to_num(np.asarray(loss_ratio, dtype=float), nan=0.0)
    jitter = np.nan_to_num(np.asarray(jitter_ms, dtype=float), nan=0.0)
    ta = np.asarray(delay_ms, dtype=float) + EMODEL_JITTER_BUFFER_FACTOR * jitter
    x = np.log2(np.maximum(ta, 100.0) / 100.0)
    idd = np.where(
        ta > 100.0,
        25.0 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2),
        0.0,
    )
    ie_eff = EMODEL_IE + (95.0 - EMODEL_IE) * ppl / (ppl / 1.0 + EMODEL_BPL)
    return EMODEL_R_DEFAULT - idd - ie_eff


def mos_from_r(r: np.ndarray) -> np.ndarray:
    """MOS (conversational quality, estimated) from R, ITU-T G.107 Annex B eq. B-4.

    Examples
    --------
    >>> [round(float(v), 3) for v in mos_from_r(np.array([-5.0, 50.0, 93.2, 120.0]))]
    [1.0, 2.575, 4.409, 4.5]
    """
    r = np.asarray(r, dtype=float)
    mid = 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6
    return np.where(r < 0, 1.0, np.where(r > 100, 4.5, mid))


# --- per-record contributions -------------------------------------------------------------------
#: Every value of a label column the formulas test for (matched in one pass over its bytes).
LABELS: dict[str, tuple[str, ...]] = {
    "service": ("voice", "data", "sms"),
    "record_kind": ("cdr", "xdr", "registration"),
    "outcome": tuple(
        sorted(
            {
                ANSWERED,
                *USER_DETERMINED,
                *REGISTRATION_RESOLVED,
                *REGISTRATION_SUCCESS,
                REGISTERED_AFTER_CHALLENGE,
                REGISTRATION_UNKNOWN,
            }
        )
    ),
    "src_match": ("matched", "xdr_only"),
    "rat": DATA_RATS[:-1],
    "leg": ("term",),
}


def contributions(records: pd.DataFrame) -> pd.DataFrame:
    """Integer counters (:data:`COUNTERS`) of each record, int64, same index.

    Parameters
    ----------
    records : pandas.DataFrame
        Canonical records (missing optional columns count as null). If it has the boolean column
        :data:`FIRST_OF_INTENT_COLUMN`, repeat attempts are counted from it.
    """
    block = contribution_block(RecordColumns(records, LABELS))
    return pd.DataFrame(block.T, columns=list(COUNTERS), index=records.index, copy=False)


def contribution_block(cols: RecordColumns) -> np.ndarray:
    """:func:`contributions` as one int64 (counter, record) block (a view of record-major rows).

    Each column is read once (:class:`cemkit.kqi.columns.RecordColumns`, best built with
    :data:`LABELS`); one jitted pass computes every counter of every record
    (:func:`cemkit.kqi._kernels.contribution_rows`, the rules of this module's docstring).
    """
    from cemkit.kqi import _kernels  # Numba: imported when records are read, not with a model

    return _kernels.contribution_rows(*counter_inputs(cols), *COUNTER_CONSTANTS).T


def counter_inputs(cols: RecordColumns) -> tuple[Any, ...]:
    """The arrays the counter kernels read (:mod:`cemkit.kqi._kernels`), each taken once.

    Label columns become bit fields (which of the values this module tests for a record has),
    numbers float64 (int64 for byte volumes, exact beyond 2**53).
    """
    service = cols.bits("service", ({"voice"}, {"data"}, {"sms"}))
    kind = cols.bits("record_kind", ({"cdr"}, {"xdr"}, {"registration"}))
    outcome = cols.bits("outcome", ({ANSWERED}, USER_DETERMINED, REGISTRATION_RESOLVED,
                                      REGISTRATION_SUCCESS, {REGISTERED_AFTER_CHALLENGE},
                                      {REGISTRATION_UNKNOWN}))  # fmt: skip
    match = cols.bits("src_match", ({"xdr_only"}, {"matched"}))
    rat = cols.bits("rat", [{r} for r in DATA_RATS[:-1]])
    leg = cols.bits("leg", ({"term"},))
    use_first = cols.has(FIRST_OF_INTENT_COLUMN)
    first = cols.bools(FIRST_OF_INTENT_COLUMN) if use_first else np.ones(cols.n, dtype=bool)
    return (service, kind, outcome, match, rat, leg, cols.floats("partial_seq"),
            cols.floats("billsec_s"), cols.floats("cause_q850"), cols.floats("pdd_ms"),
            cols.floats("sip_status"), _record_mos(cols), cols.floats("closing_cause"),
            cols.floats("duration_s"), cols.ints("volume_up_bytes"),
            cols.ints("volume_down_bytes"), first, use_first, len(DATA_RATS) - 1)  # fmt: skip


def record_flags(inputs: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Records that count as call attempts, and that count a PDD, from :func:`counter_inputs`."""
    from cemkit.kqi import _kernels

    flags = _kernels.record_flags(inputs[0], inputs[1], inputs[3], inputs[6], inputs[9])
    return (flags & 1) != 0, (flags & 2) != 0


def with_first_of_intent(inputs: tuple[Any, ...], first: np.ndarray) -> tuple[Any, ...]:
    """:func:`counter_inputs` as if the records had :data:`FIRST_OF_INTENT_COLUMN` ``first``."""
    return (*inputs[:16], np.asarray(first, dtype=bool), True, *inputs[18:])


def record_mos(records: pd.DataFrame) -> np.ndarray:
    """MOS of each record: measured, else the G.107 E-model estimate, else NaN.

    The estimate uses ``loss_ratio``/``jitter_ms`` (and ``delay_ms`` if the frame has it).
    """
    return _record_mos(RecordColumns(records))


def _record_mos(cols: RecordColumns) -> np.ndarray:
    mos = cols.floats("mos")
    loss = cols.floats("loss_ratio")
    jitter = cols.floats("jitter_ms")
    if cols.has("delay_ms"):
        delay = cols.floats("delay_ms")
        delay = np.where(np.isnan(delay), EMODEL_DEFAULT_DELAY_MS, delay)
    else:
        delay = np.full(cols.n, EMODEL_DEFAULT_DELAY_MS)
    out = mos.copy()
    estimate = np.isnan(mos) & (~np.isnan(loss) | ~np.isnan(jitter))
    if estimate.any():
        out[estimate] = mos_from_r(emodel_r(loss[estimate], jitter[estimate], delay[estimate]))
    return out


# --- indicators ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Indicator:
    """One KQI: what it means, where it is defined, and how it is computed from counters."""

    name: str
    title: str
    definition: str
    source: str
    #: +1 when higher is better (ASR), -1 when lower is better (PDD).
    direction: int
    #: For shares: counters of numerator and denominator (used by alert significance tests).
    numerator: str | None = None
    denominator: str | None = None
    unit: str = "ratio"

    @property
    def is_share(self) -> bool:
        """True for indicators that are a count over a count."""
        return self.numerator is not None


_INDICATOR_LIST: tuple[Indicator, ...] = (
    Indicator("attempts", "Call attempts", "Voice call attempts (CDR seizures, first partial).",
              "ITU-T E.411 (seizure)", +1, unit="count"),
    Indicator("asr", "Answer seizure ratio",
              "Seizures resulting in an answer signal / total seizures.",
              "ITU-T E.411 section 3 (ASR)", +1, "answered", "attempts"),
    Indicator("ner", "Network effectiveness ratio",
              "Seizures resulting in answer or a user-determined end (busy, no answer, user "
              "rejection, caller abandon) / total seizures; cemkit.outcomes.USER_DETERMINED.",
              "ITU-T E.425 section 3 (NER)", +1, "user_determined", "attempts"),
    Indicator("ser", "Session establishment ratio",
              "INVITEs answered with 2xx / (INVITEs - INVITEs answered with 3xx).",
              "IETF RFC 6076 section 4.6 (SER)", +1, "invites_2xx", "invites_not_3xx"),
    Indicator("seer", "Session establishment effectiveness ratio",
              "INVITEs answered with 200, 480, 486, 600 or 603 / (INVITEs - INVITEs with 3xx).",
              "IETF RFC 6076 section 4.7 (SEER)", +1, "invites_effective", "invites_not_3xx"),
    Indicator("isa", "Ineffective session attempts",
              "INVITEs answered with 408, 500, 503 or 504 / total INVITEs.",
              "IETF RFC 6076 section 4.8 (ISA)", -1, "invites_ineffective", "invites"),
    Indicator("scr", "Session completion ratio",
              "Sessions answered with 2xx and released normally (no abnormal Q.850 cause) / "
              "total INVITEs.",
              "IETF RFC 6076 section 4.9 (SCR)", +1, "sessions_completed", "invites"),
    Indicator("acd_s", "Average call duration",
              "Conversation time (billsec, partials summed) / answered attempts, seconds.",
              "ITU-T E.437 (ACD)", +1, unit="s"),
    Indicator("pdd_mean_ms", "Post-dial delay, mean",
              "Mean of PDD over voice records that measured it (microsecond sums).",
              "ITU-T E.431 (post-selection delay); RFC 6076 section 4.1 (SRD)", -1, unit="ms"),
    Indicator("pdd_p50_ms", "Post-dial delay, median",
              "Exact median of PDD rounded to whole milliseconds (linear interpolation).",
              "ITU-T E.431", -1, unit="ms"),
    Indicator("pdd_p95_ms", "Post-dial delay, 95th percentile",
              "Exact 95th percentile of PDD rounded to whole milliseconds (linear interpolation).",
              "ITU-T E.431", -1, unit="ms"),
    Indicator("drop_ratio", "Drop ratio",
              "Answered voice CDRs released with a Q.850 cause outside "
              "config.NORMAL_RELEASE_CAUSES / answered attempts (abnormal release after answer).",
              "ITU-T E.804 section 7.3.4 (dropped call ratio), Q.850 causes", -1,
              "drops", "answered"),
    Indicator("short_call_ratio", "Short-call ratio",
              "Answered attempts with billsec < config.SHORT_CALL_S / answered attempts.",
              "operator practice (short calls signal poor quality or wrong numbers)", -1,
              "short_calls", "answered"),
    Indicator("repeat_attempt_rate", "Repeat-attempt rate",
              "Attempts that repeat an earlier attempt of the same intent (same customer, same "
              "destination, from cemkit.correlate.sessionize) / attempts.",
              "ITU-T E.425 Annex (repeated attempts)", -1, "repeat_attempts", "attempts"),
    Indicator("registration_success_ratio", "Registration success ratio",
              "SIP registration attempts registered (2xx) / registration attempts whose outcome "
              "is known (a 401/407 challenge answered by a re-sent REGISTER on the same "
              "Call-ID is one attempt; a REGISTER without a final response is a failure unless "
              "the capture ended within Timer F: then it is not counted); "
              "cemkit.outcomes.REGISTRATION_OUTCOMES.",
              "IETF RFC 6076 section 4.1 (registration); cemkit.io.sip.dialogs", +1,
              "registrations_ok", "registrations"),
    Indicator("rrd_mean_ms", "Registration request delay, mean",
              "Mean time from the first REGISTER of a successful attempt to its 2xx (the "
              "challenge round trip included), milliseconds.",
              "IETF RFC 6076 section 4.1 (RRD)", -1, unit="ms"),
    Indicator("mos", "Mean opinion score",
              "Mean of measured MOS, or of the ITU-T G.107 E-model estimate from loss, jitter "
              "and delay where MOS was not measured (1 to 4.5).",
              "ITU-T P.800.1 (MOS), G.107 (E-model)", +1, unit="MOS"),
    Indicator("data_abnormal_release_ratio", "Abnormal data-session release ratio",
              "Data sessions whose last record closed with causeForRecClosing abnormalRelease "
              "(ABNORMAL_CLOSING_CAUSES) / data sessions.",
              "3GPP TS 32.298 causeForRecClosing; ITU-T E.804 (retainability)", -1,
              "data_abnormal", "data_sessions"),
    Indicator("data_volume_mb", "Data volume",
              "Uplink + downlink octets over every data record / 1e6 (megabytes).",
              "3GPP TS 32.298 (listOfTrafficVolumes, listOfServiceData)", +1, unit="MB"),
    Indicator("data_mean_session_s", "Mean data-session duration",
              "Session time over every data record (partials summed) / data sessions, seconds.",
              "3GPP TS 32.298 (duration)", +1, unit="s"),
    *(Indicator(f"data_share_{rat}", f"Data sessions on {rat.upper()}",
                f"Data sessions whose (first) record's RAT is {rat} / data sessions.",
                "3GPP TS 29.274 RAT Type", +1, f"data_sessions_{rat}", "data_sessions")
      for rat in DATA_RATS),
    Indicator("sms_failure_ratio", "SMS delivery failure ratio",
              "SMS attempts whose record carries an smsResult (not delivered) / SMS attempts.",
              "3GPP TS 32.298 (smsResult); ETSI TS 102 250-2 (SMS service failure ratio)", -1,
              "sms_failures", "sms_attempts"),
    Indicator("experience_score", "Experience score",
              "0-100: weighted mean of component scores, see SCORE_WEIGHTS.",
              "cemkit (documented weighting)", +1, unit="score"),
)  # fmt: skip

#: Indicators by name.
INDICATORS: dict[str, Indicator] = {i.name: i for i in _INDICATOR_LIST}

# --- experience score ---------------------------------------------------------------------------
#: Component weights of the experience score. Each component is a score in [0, 1]:
#: ``effectiveness`` = NER (the network let the call through); ``retainability`` =
#: 1 - drop ratio; ``quality`` = (MOS - 1) / 3.5; ``responsiveness`` = 1 at PDD mean <=
#: SCORE_PDD_GOOD_MS falling linearly to 0 at SCORE_PDD_BAD_MS; ``completion`` = 1 - short-call
#: ratio. Components without data are left out and the remaining weights renormalized.
SCORE_WEIGHTS: dict[str, float] = {
    "effectiveness": 0.35,
    "retainability": 0.25,
    "quality": 0.20,
    "responsiveness": 0.10,
    "completion": 0.10,
}
SCORE_PDD_GOOD_MS = 2000.0
SCORE_PDD_BAD_MS = 8000.0
#: Reason texts of each score component (for "worst customers" tables).
SCORE_REASONS: dict[str, str] = {
    "effectiveness": "calls failed in the network (low NER)",
    "retainability": "calls dropped after answer",
    "quality": "poor voice quality (low MOS)",
    "responsiveness": "long post-dial delay",
    "completion": "many very short calls",
}


def _component_arrays(ind: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    pdd = np.asarray(ind["pdd_mean_ms"], dtype=np.float64)
    return {
        "effectiveness": np.asarray(ind["ner"], dtype=np.float64),
        "retainability": 1.0 - np.asarray(ind["drop_ratio"], dtype=np.float64),
        "quality": np.clip((np.asarray(ind["mos"], dtype=np.float64) - 1.0) / 3.5, 0.0, 1.0),
        "responsiveness": np.clip(
            (SCORE_PDD_BAD_MS - pdd) / (SCORE_PDD_BAD_MS - SCORE_PDD_GOOD_MS), 0.0, 1.0
        ),
        "completion": 1.0 - np.asarray(ind["short_call_ratio"], dtype=np.float64),
    }


def score_components(ind: pd.DataFrame) -> pd.DataFrame:
    """Component scores in [0, 1] (NaN when there is no data), one column per component."""
    cols = {c: ind[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in SCORE_INDICATORS}
    return pd.DataFrame(_component_arrays(cols), index=ind.index)


def score_arrays(ind: Mapping[str, np.ndarray],
                 reasons: bool = True) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """:func:`experience_score` on NumPy arrays: the score and the reason's position.

    The position indexes :data:`SCORE_REASONS`' components; -1: no reason (a score of 100),
    -2: no voice data (``reasons=False``: None, not worked out). The weighted sums add the
    components in :data:`SCORE_WEIGHTS` order, one after the other.
    """
    comp = np.stack(list(_component_arrays(ind).values()))  # (component, row), weights' order
    weights = _score_weights()
    present = ~np.isnan(comp)
    have = present * weights
    part = np.where(present, comp, 0.0) * weights
    total_w, weighted = have[0].copy(), part[0].copy()
    for i in range(1, len(comp)):
        total_w += have[i]
        weighted += part[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        score = 100.0 * weighted / np.where(total_w > 0, total_w, np.nan)
    if not reasons:
        return score, None
    loss = np.fmax(1.0 - comp, 0.0) * weights  # a component without data loses nothing
    reason = np.where(loss.max(axis=0, initial=0.0) > 0, loss.argmax(axis=0), -1)
    return score, np.where(np.isnan(score), -2, reason)


@functools.lru_cache(maxsize=1)
def _score_weights() -> np.ndarray:
    weights = np.array(list(SCORE_WEIGHTS.values()), dtype=np.float64)[:, None]
    weights.flags.writeable = False  # shared by every call
    return weights


#: The indicators the experience score reads (:func:`experience_score`).
SCORE_INDICATORS = ("ner", "drop_ratio", "mos", "pdd_mean_ms", "short_call_ratio")


def scores(sums: pd.DataFrame) -> np.ndarray:
    """The experience score of each row of summed counters, and nothing else (no reasons).

    What ``experience_score(indicators(sums))[0]`` gives, from the counters the score reads
    only (a counter ``sums`` lacks counts as zero, as for a customer without such records).
    """
    counters = {c: _counter_array(sums[c]) if c in sums.columns
                else np.zeros(len(sums), dtype=np.int64)
                for c in counters_needed(SCORE_INDICATORS) or ()}  # fmt: skip
    return score_arrays(indicator_arrays(counters, SCORE_INDICATORS), reasons=False)[0]


def experience_score(ind: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Experience score 0-100 and the main reason it is below 100 (largest weighted loss).

    Examples
    --------
    >>> ind = pd.DataFrame({"ner": [1.0, 0.5], "drop_ratio": [0.0, 0.0], "mos": [np.nan] * 2,
    ...                     "pdd_mean_ms": [np.nan] * 2, "short_call_ratio": [0.0, 0.0]})
    >>> s, r = experience_score(ind)
    >>> [float(v) for v in s], list(r)
    ([100.0, 75.0], ['', 'calls failed in the network (low NER)'])
    """
    cols = {c: ind[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in SCORE_INDICATORS}
    score, reason = score_arrays(cols)
    assert reason is not None
    texts = np.array([*(SCORE_REASONS[c] for c in SCORE_WEIGHTS), "no voice data", ""],
                     dtype=object)  # fmt: skip
    return (
        pd.Series(score, index=ind.index, dtype=np.float64),
        pd.Series(texts[reason], index=ind.index, dtype=pd.StringDtype("pyarrow")),
    )


# --- percentiles -------------------------------------------------------------------------------
def weighted_quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """Exact ``q`` quantile (numpy "linear" method) of values repeated ``counts`` times.

    Equal to ``numpy.quantile(numpy.repeat(values, counts), q)`` without materializing it;
    ``values`` must be sorted ascending and distinct.

    Examples
    --------
    >>> weighted_quantile(np.array([1.0, 2.0, 10.0]), np.array([2, 1, 1]), 0.5)
    1.5
    """
    total = int(counts.sum())
    if total == 0:
        return math.nan
    h = (total - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, total - 1)
    cum = np.cumsum(counts)
    v_lo = float(values[np.searchsorted(cum, lo, side="right")])
    v_hi = float(values[np.searchsorted(cum, hi, side="right")])
    t = h - lo
    # numpy's _lerp: a + (b - a) * t, computed from the nearer end for t >= 0.5
    diff = v_hi - v_lo
    return v_hi - diff * (1 - t) if t >= 0.5 else v_lo + diff * t


PDD_QUANTILES: dict[str, float] = {"pdd_p50_ms": 0.50, "pdd_p95_ms": 0.95}


def grouped_weighted_quantile(
    group_id: np.ndarray, values: np.ndarray, counts: np.ndarray, q: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`weighted_quantile` of every group at once (vectorized).

    Parameters
    ----------
    group_id : int64[n]
        Group of each row; rows sorted by group, then by value (values distinct per group).
    values, counts : arrays [n]
        Distinct values and how often each occurs (counts >= 1).
    q : float
        Quantile in [0, 1].

    Returns
    -------
    (int64[g], float64[g])
        The group ids (in order) and their quantiles.

    Examples
    --------
    >>> g, v = grouped_weighted_quantile(np.array([0, 0, 0, 5]), np.array([1.0, 2, 10, 7]),
    ...                                  np.array([2, 1, 1, 3]), 0.5)
    >>> g.tolist(), v.tolist()
    ([0, 5], [1.5, 7.0])
    """
    if len(group_id) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    starts = np.flatnonzero(np.r_[True, group_id[1:] != group_id[:-1]])
    cum = np.cumsum(counts.astype(np.int64))
    before = np.r_[0, cum[:-1]][starts]  # items before each group
    total = np.add.reduceat(counts.astype(np.int64), starts)
    h = (total - 1) * q
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, total - 1)
    v_lo = values[np.searchsorted(cum, before + lo, side="right")].astype(float)
    v_hi = values[np.searchsorted(cum, before + hi, side="right")].astype(float)
    t = h - lo
    diff = v_hi - v_lo
    out = np.where(t >= 0.5, v_hi - diff * (1 - t), v_lo + diff * t)
    return group_id[starts], out


#: Means: indicator → (sum counter, count counter, divisor of the unit).
MEANS: dict[str, tuple[str, str, float]] = {
    "acd_s": ("conversation_ms", "answered", 1000.0),
    "pdd_mean_ms": ("pdd_us", "pdd_count", 1000.0),
    "rrd_mean_ms": ("rrd_us", "rrd_count", 1000.0),
    "mos": ("mos_micro", "mos_count", 1e6),
    "data_mean_session_s": ("data_duration_ms", "data_sessions", 1000.0),
}
#: Sums: indicator → (counters added up, divisor of the unit).
SUMS: dict[str, tuple[tuple[str, ...], float]] = {
    "data_volume_mb": (("data_up_bytes", "data_down_bytes"), 1e6),
}
#: A denominator that is not a stored counter: ``invites - invites_3xx``.
DERIVED: dict[str, tuple[str, str]] = {"invites_not_3xx": ("invites", "invites_3xx")}


def _operands(name: str) -> tuple[str, ...] | None:
    """The counters indicator ``name`` reads (None: not a function of counters alone)."""
    ind = INDICATORS[name]
    if name == "attempts":
        return ("attempts",)
    if ind.is_share:
        assert ind.numerator is not None and ind.denominator is not None
        return (ind.numerator, *DERIVED.get(ind.denominator, (ind.denominator,)))
    if name in MEANS:
        return MEANS[name][:2]
    if name in SUMS:
        return SUMS[name][0]
    return None


def counters_needed(names: Sequence[str]) -> list[str] | None:
    """The counters the indicators ``names`` read (None: one is not a function of counters).

    The PDD percentiles and the experience score are not.
    """
    out: dict[str, None] = {}
    for name in names:
        ops = _operands(name)
        if ops is None:
            return None
        out.update(dict.fromkeys(ops))
    return list(out)


def indicator_arrays(counters: Mapping[str, np.ndarray] | np.ndarray,
                     names: Sequence[str]) -> dict[str, np.ndarray]:  # fmt: skip
    """The indicators ``names`` from summed counters: the one computation of each of them.

    Every indicator that is a function of counters (shares, means, sums) is computed here and
    nowhere else: :func:`indicators`, the KQI tables (:mod:`cemkit.kqi.rollup`, batch and
    real-time paths) and the warehouse's queries all call it. Every name must read counters
    only (:func:`counters_needed` is not None).

    Parameters
    ----------
    counters : mapping of str to array, or array
        The summed counters: by name (arrays of equal length; those the names read), or every
        counter of :data:`COUNTERS` as one (counter, row) array (the KQI table's block, read
        as it is).
    names : sequence of str
        Indicators of :data:`INDICATORS`.

    Notes
    -----
    The counters are one (counter, row) block, by name stacked into one (float64 when one of
    them is: a counter with missing values, NaN; int64 otherwise). Every ratio is
    ``num / (den - sub)`` (``sub``: the subtracted counter of a derived denominator,
    :data:`DERIVED`, taken away in the block's dtype first), both sides float64, NaN where the
    denominator is not positive, then divided by its unit (:data:`MEANS`): one NumPy call for
    all the ratios of a table, whatever its number of rows.

    Examples
    --------
    >>> out = indicator_arrays({"answered": np.array([3, 0]), "attempts": np.array([4, 0])},
    ...                        ["asr"])
    >>> out["asr"].tolist()
    [0.75, nan]
    """
    names = tuple(names)
    if isinstance(counters, np.ndarray):
        if counters.ndim != 2 or counters.shape[0] != len(COUNTERS):
            raise ValueError(f"a counter block has {len(COUNTERS)} rows (COUNTERS), "
                             f"found shape {counters.shape}")  # fmt: skip
        order, block = COUNTERS, counters
    else:
        order = _operand_order(names)
        if not order:
            return {}
        block = np.stack([np.asarray(counters[c]) for c in order])
    plan = _indicator_plan(names, order)
    d = block[plan.den]
    if len(plan.derived):  # a derived denominator: its counter taken away in the block's dtype
        d[plan.derived] -= block[plan.sub]
    d = d.astype(np.float64)
    values = np.full(d.shape, np.nan)
    np.divide(block[plan.num].astype(np.float64), d, out=values, where=d > 0)
    if plan.scaled:
        values /= plan.unit
    out = dict(zip(plan.ratios, values, strict=True))
    for name, rows, unit in plan.sums:
        added = block[rows[0]]
        for r in rows[1:]:
            added = added + block[r]
        out[name] = added.astype(np.float64) / unit
    if plan.attempts is not None:
        out["attempts"] = block[plan.attempts].astype(np.int64)
    return {name: out[name] for name in names}


@functools.lru_cache(maxsize=16)
def _operand_order(names: tuple[str, ...]) -> tuple[str, ...]:
    needed = counters_needed(names)
    if needed is None:
        bad = [n for n in names if _operands(n) is None]
        raise ValueError(f"{bad[0]} is not a function of counters alone")
    return tuple(needed)


@dataclass(frozen=True)
class _Plan:
    """:func:`indicator_arrays`' rows of the counter block, per indicator kind."""

    ratios: tuple[str, ...]  # shares and means, in the rows below
    num: np.ndarray  # block row of each ratio's numerator
    den: np.ndarray  # ... of its denominator
    derived: np.ndarray  # the ratios whose denominator is derived (DERIVED)
    sub: np.ndarray  # ... and the block row taken away from it
    unit: np.ndarray  # float64[ratios, 1]: each ratio's unit divisor (1: a share)
    scaled: bool  # a unit other than 1
    sums: tuple[tuple[str, tuple[int, ...], float], ...]  # SUMS: rows added, unit
    attempts: int | None  # the block row of attempts, when asked for


@functools.lru_cache(maxsize=16)
def _indicator_plan(names: tuple[str, ...], order: tuple[str, ...]) -> _Plan:
    # worked out once per list of names and counters: every KQI table asks (a micro-batch too)
    at = {c: i for i, c in enumerate(order)}
    ratios: list[str] = []
    num: list[int] = []
    den: list[int] = []
    derived: list[int] = []
    sub: list[int] = []
    unit: list[float] = []
    sums: list[tuple[str, tuple[int, ...], float]] = []
    attempts = None
    for name in names:
        ind = INDICATORS[name]
        if name == "attempts":
            attempts = at["attempts"]
        elif ind.is_share:
            assert ind.numerator is not None and ind.denominator is not None
            if ind.denominator in DERIVED:
                a, b = DERIVED[ind.denominator]
                derived.append(len(ratios))
                sub.append(at[b])
            else:
                a = ind.denominator
            ratios.append(name)
            num.append(at[ind.numerator])
            den.append(at[a])
            unit.append(1.0)
        elif name in MEANS:
            total, count, u = MEANS[name]
            ratios.append(name)
            num.append(at[total])
            den.append(at[count])
            unit.append(u)
        elif name in SUMS:
            cols, u = SUMS[name]
            sums.append((name, tuple(at[c] for c in cols), u))
        else:
            raise ValueError(f"{name} is not a function of counters alone")

    def rows(v: list[int]) -> np.ndarray:
        a = np.array(v, dtype=np.int64)
        a.flags.writeable = False  # shared by every call
        return a

    units = np.array(unit, dtype=np.float64)[:, None]
    units.flags.writeable = False
    return _Plan(tuple(ratios), rows(num), rows(den), rows(derived), rows(sub), units,
                 bool((units != 1.0).any()), tuple(sums), attempts)  # fmt: skip


def _counter_array(col: pd.Series) -> np.ndarray:
    """A counter column as int64, or as float64 with NaN where it holds missing values."""
    if pd.api.types.is_integer_dtype(col.dtype) and not col.hasnans:
        return col.to_numpy(dtype=np.int64)
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


#: Column order of :func:`indicators` (as the KQI tables have always had them).
_COLUMN_ORDER: tuple[str, ...] = (
    "attempts", "asr", "ner", "ser", "seer", "isa", "scr", "drop_ratio", "short_call_ratio",
    "acd_s", "pdd_mean_ms", *PDD_QUANTILES, "repeat_attempt_rate", "registration_success_ratio",
    "rrd_mean_ms", "mos", "data_abnormal_release_ratio", "data_volume_mb", "data_mean_session_s",
    *(f"data_share_{rat}" for rat in DATA_RATS), "sms_failure_ratio",
)  # fmt: skip


def indicators(sums: pd.DataFrame) -> pd.DataFrame:
    """Indicators from summed counters (one row per object and bucket).

    ``sums`` has the :data:`COUNTERS` columns; PDD percentile columns (``pdd_p50_ms``,
    ``pdd_p95_ms``) are passed through when present (see :mod:`cemkit.kqi.rollup`).
    Returns the :data:`INDICATORS` columns (float64; ``attempts`` int64).
    """
    names = _counter_names_of("registrations" in sums.columns)
    counters = {c: _counter_array(sums[c]) for c in _operand_order(names)}
    quantiles = {name: sums[name].to_numpy(dtype=np.float64, na_value=np.nan)
                 for name in PDD_QUANTILES if name in sums.columns}  # fmt: skip
    return pd.DataFrame(indicator_columns(counters, len(sums), quantiles), index=sums.index)


@functools.lru_cache(maxsize=2)
def _counter_names_of(registrations: bool) -> tuple[str, ...]:
    # worked out once: every KQI table asks (~30 µs a micro-batch)
    names = [n for n in INDICATORS if _operands(n) is not None]
    if not registrations:  # counters of records written before registrations
        names = [n for n in names if n not in ("registration_success_ratio", "rrd_mean_ms")]
    return tuple(names)


def indicator_columns(counters: Mapping[str, np.ndarray] | np.ndarray, n: int,
                      quantiles: Mapping[str, np.ndarray] | None = None,
                      ) -> dict[str, np.ndarray]:  # fmt: skip
    """Every column of :func:`indicators`, in its order, for ``n`` rows.

    ``counters`` as :func:`indicator_arrays` reads them (by name, or every counter as one
    (counter, row) block: then with the registration counters); ``quantiles``: the PDD
    percentile columns, when known (NaN otherwise).
    """
    registrations = isinstance(counters, np.ndarray) or "registrations" in counters
    values = indicator_arrays(counters, _counter_names_of(registrations))
    quantiles = quantiles or {}
    out: dict[str, np.ndarray] = {}
    for name in _COLUMN_ORDER:
        if name in values:
            out[name] = values[name]
        elif name in quantiles:
            out[name] = np.asarray(quantiles[name], dtype=np.float64)
        elif name != "experience_score":
            out[name] = np.full(n, np.nan)
    out["experience_score"] = score_arrays(out, reasons=False)[0]
    return out


def bad_share(sums: Any, name: str) -> tuple[Any, Any]:
    """For a share indicator: the count of *bad* outcomes and the number of trials (int64).

    ``sums``: summed counters, a frame (Series returned) or a mapping of arrays (arrays); those
    :func:`counters_needed` names suffice. The alerts' significance tests read shares this way.
    """
    ind = INDICATORS[name]
    if not ind.is_share:
        raise ValueError(f"{name} is not a share of counts")
    assert ind.numerator is not None and ind.denominator is not None
    num = sums[ind.numerator].astype("int64")
    if ind.denominator in DERIVED:
        a, b = DERIVED[ind.denominator]
        den = (sums[a] - sums[b]).astype("int64")
    else:
        den = sums[ind.denominator].astype("int64")
    bad = den - num if ind.direction > 0 else num
    return bad, den
