import pandas as pd
import pytest

from cemkit import outcomes as o


def test_asterisk_dispositions():
    assert o.outcome_from_asterisk("ANSWERED") == "answered"
    assert o.outcome_from_asterisk("NO ANSWER") == "no_answer"
    assert o.outcome_from_asterisk("busy") == "busy"
    assert o.outcome_from_asterisk("CONGESTION") == "congestion"
    with pytest.raises(KeyError):
        o.outcome_from_asterisk("LOST")
    # Every outcome the generator writes maps back to a known disposition.
    assert set(o.OUTCOME_TO_ASTERISK) == set(o.OUTCOMES)
    assert set(o.OUTCOME_TO_ASTERISK.values()) <= set(o.ASTERISK_DISPOSITION)


@pytest.mark.parametrize(
    ("name", "answered", "outcome", "q850"),
    [
        ("NORMAL_CLEARING", True, "answered", 16),
        ("NORMAL_CLEARING", False, "cancelled", 16),
        ("USER_BUSY", False, "busy", 17),
        ("NO_ANSWER", False, "no_answer", 19),
        ("ORIGINATOR_CANCEL", False, "cancelled", None),
        ("RECOVERY_ON_TIMER_EXPIRE", False, "failed", 102),
        ("UNALLOCATED_NUMBER", False, "failed", 1),
        ("CALL_REJECTED", False, "rejected", 21),
        ("SWITCH_CONGESTION", False, "congestion", 42),
        ("USER_NOT_REGISTERED", False, "failed", None),
        ("SOMETHING_NEW", False, "failed", None),
    ],
)
def test_freeswitch_causes(name, answered, outcome, q850):
    assert o.outcome_from_freeswitch(name, answered) == outcome
    assert o.q850_from_freeswitch(name) == q850


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "answered"),
        (486, "busy"),
        (600, "busy"),
        (487, "cancelled"),
        (480, "no_answer"),
        (408, "no_answer"),
        (404, "failed"),
        (503, "congestion"),
        (500, "failed"),
        (603, "rejected"),
        (403, "rejected"),
        (302, "failed"),
        (604, "rejected"),
    ],
)
def test_sip_outcomes(status, outcome):
    assert o.outcome_from_sip(status) == outcome


def test_sip_provisional_is_not_final():
    with pytest.raises(ValueError, match="not a final response"):
        o.outcome_from_sip(180)
    assert o.sip_status_class(183) == "provisional"
    assert o.sip_status_class(503) == "server_error"


def test_rfc3398_mapping_spot_checks():
    assert o.SIP_TO_Q850[486] == 17
    assert o.SIP_TO_Q850[404] == 1
    assert o.SIP_TO_Q850[408] == 102
    assert o.SIP_TO_Q850[603] == 21


def test_vectorized_q850_matches_scalar():
    causes = pd.Series([16, 17, None, 487, 34, 1, 16], dtype="Int64")
    answered = pd.Series([True, False, False, False, False, False, False])
    got = o.outcomes_from_q850_array(causes, answered).tolist()
    want = [
        o.outcome_from_q850(None if pd.isna(c) else int(c), bool(a))
        for c, a in zip(causes, answered, strict=True)
    ]
    assert got == want


def test_user_determined_set():
    assert "answered" in o.USER_DETERMINED and "busy" in o.USER_DETERMINED
    assert "failed" not in o.USER_DETERMINED and "congestion" not in o.USER_DETERMINED
    assert set(o.USER_DETERMINED) < set(o.OUTCOMES)
