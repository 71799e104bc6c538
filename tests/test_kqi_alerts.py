import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit.kqi import formulas
from cemkit.kqi.alerts import _z_score, find_alerts
from cemkit.model import ServiceModel

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def table(attempts, answered, obj="sw1", kind="group", drops=None):
    n = len(attempts)
    t = pd.DataFrame({c: np.zeros(n, dtype=np.int64) for c in formulas.COUNTERS})
    t["attempts"] = attempts
    t["answered"] = answered
    t["user_determined"] = answered
    if drops is not None:
        t["drops"] = drops
    ind = formulas.indicators(t)
    t = pd.concat([t, ind.drop(columns=["attempts"])], axis=1)
    t["object_kind"] = kind
    t["object"] = obj
    t["freq"] = "15min"
    t["bucket"] = pd.date_range(T0, periods=n, freq="15min")
    t["bucket_end"] = t["bucket"] + pd.Timedelta("15min")
    return t


def model(rules, customers=""):
    return ServiceModel.from_yaml_text(
        f"name: a\ngroups: [{{name: sw1, match: {{nodes: [sw1]}}}}]\nthresholds: {rules}\n"
        + customers
    )


def test_absolute_merges_consecutive_buckets_and_takes_worst():
    t = table([100, 100, 100, 100, 100, 100], [90, 40, 20, 45, 90, 30])
    m = model(
        "[{indicator: asr, absolute: 0.5, min_attempts: 50}, "
        "{indicator: asr, absolute: 0.25, severity: critical, min_attempts: 50}]"
    )
    a = find_alerts(t, m)
    assert list(a["start"]) == [T0 + pd.Timedelta("15min"), T0 + pd.Timedelta("75min")]
    assert list(a["end"]) == [T0 + pd.Timedelta("60min"), T0 + pd.Timedelta("90min")]
    first = a.iloc[0]
    assert first["severity"] == "critical" and first["value"] == 0.2
    assert first["threshold"] == 0.25 and first["buckets"] == 3
    assert a.iloc[1]["severity"] == "major" and a.iloc[1]["threshold"] == 0.5


def test_min_attempts_silences_thin_buckets():
    t = table([10, 100], [0, 90])
    a = find_alerts(t, model("[{indicator: asr, absolute: 0.5, min_attempts: 20}]"))
    assert a.empty


def test_gap_splits_alerts():
    t = table([100, 100, 100], [10, 10, 10])
    t.loc[2, "bucket"] += pd.Timedelta("1h")
    t.loc[2, "bucket_end"] += pd.Timedelta("1h")
    a = find_alerts(t, model("[{indicator: asr, absolute: 0.5}]"))
    assert len(a) == 2


def test_relative_share_against_pooled_baseline():
    # 40 quiet buckets with 2 % drops, then one bucket with 20 % drops
    answered = [200] * 41
    drops = [4] * 40 + [40]
    t = table([250] * 41, answered, drops=drops)
    a = find_alerts(t, model("[{indicator: drop_ratio, relative: 3.0, min_z: 4}]"))
    assert len(a) == 1
    row = a.iloc[0]
    assert row["start"] == T0 + pd.Timedelta(minutes=15 * 40)
    assert row["baseline"] == pytest.approx(0.02)  # the incident bucket is left out
    assert row["threshold"] == pytest.approx(0.06) and row["value"] == pytest.approx(0.2)
    assert row["kind"] == "relative"


def test_relative_needs_significance():
    # 3 drops of 20 answered is 7.5x a 2 % baseline but not significant at z >= 4
    t = table([250] * 40 + [25], [200] * 40 + [20], drops=[4] * 40 + [3])
    assert find_alerts(
        t, model("[{indicator: drop_ratio, relative: 3.0, min_z: 4, min_attempts: 10}]")
    ).empty
    assert (
        len(
            find_alerts(
                t, model("[{indicator: drop_ratio, relative: 3.0, min_z: 1, min_attempts: 10}]")
            )
        )
        == 1
    )


def test_relative_value_indicator():
    t = table([100] * 10, [90] * 10)
    t["pdd_count"] = 50
    t["pdd_p95_ms"] = [2000.0] * 9 + [5000.0]
    a = find_alerts(t, model("[{indicator: pdd_p95_ms, relative: 2.0, min_attempts: 20}]"))
    assert len(a) == 1 and a.iloc[0]["threshold"] == 4000.0 and a.iloc[0]["baseline"] == 2000.0


def test_customer_thresholds():
    t = pd.concat(
        [table([100] * 2, [90] * 2), table([10, 10], [9, 5], obj="acme", kind="customer")],
        ignore_index=True,
    )
    m = model(
        "[]",
        "customers: [{name: acme, pseudonyms: [x], thresholds: "
        "[{indicator: ner, absolute: 0.9, min_attempts: 5, severity: critical}]}]\n",
    )
    a = find_alerts(t, m)
    assert list(a["group"]) == ["acme"] and list(a["object_kind"]) == ["customer"]
    assert a.iloc[0]["value"] == 0.5


def test_z_score_tail_is_conservative_for_rare_events():
    # 10 drops out of 107 at a 1.85 % baseline: Wald z ~ 5.8, exact one-sided p ~ 4e-5 (z ~ 3.9)
    z = _z_score(np.array([10]), np.array([107]), 0.0185)[0]
    assert 3.7 < z < 4.4
    assert _z_score(np.array([0]), np.array([100]), 0.02)[0] < 0


_SHARE_RULE = st.fixed_dictionaries({
    "indicator": st.sampled_from(["asr", "ner", "drop_ratio", "ser", "isa", "sms_failure_ratio"]),
    "relative": st.sampled_from([1.05, 1.5, 2.0, 3]),
    "min_z": st.sampled_from([0, 0.5, 2.0, 5]),
    "min_attempts": st.integers(1, 40),
    "severity": st.sampled_from(["minor", "major", "critical"]),
})  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(_SHARE_RULE, min_size=1, max_size=6), st.integers(1, 60), st.integers(1, 5),
       st.integers(0, 2**32 - 1), st.integers(0, 50))  # fmt: skip
def test_relative_share_rules_judged_at_once_equal_each_rule_alone(rules, n, n_seg, seed,
                                                                   baseline_min):  # fmt: skip
    """Every relative rule on a share of a group of objects in one evaluation (a row per rule):
    the very bits of each rule judged alone (the code of before, tests/naive.py)."""
    from cemkit.kqi.alerts import _relative_shares, _share_params
    from cemkit.model.spec import Threshold
    from tests import naive

    rng = np.random.default_rng(seed)
    seg = np.sort(rng.integers(0, n_seg, n))
    seg = np.unique(seg, return_inverse=True)[1].astype(np.int64)  # objects numbered 0..
    n_seg = int(seg.max()) + 1
    rules = [Threshold(**r) for r in rules]
    den = rng.integers(0, 80, size=(len(rules), n)).astype(float)
    bad = np.floor(den * rng.random((len(rules), n)) ** 3)  # mostly few bad outcomes
    bad[:, rng.random(n) < 0.1] = 0.0
    value = np.where(den > 0, 1.0 - bad / np.where(den > 0, den, 1.0), np.nan)
    trials = den.astype(np.int64)
    got = _relative_shares(value, trials, bad, den, seg, n_seg, rules, baseline_min)
    # the parameters a model's rule group holds (alerts._rule_groups): the same bits
    held = _relative_shares(value, trials, bad, den, seg, n_seg, rules, baseline_min,
                            _share_params(rules))  # fmt: skip
    for k in ("breach", "limit", "baseline"):
        assert held[k].tobytes() == got[k].tobytes(), k
    for i, rule in enumerate(rules):
        want = naive.relative_share_rule(bad[i], den[i], value[i], trials[i], seg, n_seg, rule,
                                         baseline_min)  # fmt: skip
        for k in ("breach", "limit", "baseline"):
            assert got[k][i].tobytes() == want[k].tobytes(), (i, k)
