"""End to end on synthetic worlds: injected incidents are found, a clean world raises nothing."""

import json

import pandas as pd
import pytest

from cemkit import cli, synth
from cemkit.kqi import run
from cemkit.model import load_model

SLACK = pd.Timedelta("15min")  # one alerting bucket


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    out = {}
    for name, incidents in (("incidents", 3), ("clean", 0)):
        d = tmp_path_factory.mktemp(name)
        synth.generate(d, records=300_000, seed=8, incidents=incidents, days=3, formats=False)
        out[name] = d
    return out


def test_generated_model_names_truth_groups(worlds):
    d = worlds["incidents"]
    truth = json.loads((d / "truth.json").read_text())
    model = load_model(d / "model.yaml")
    names = {g.name for g in model.groups}
    assert {i["group"] for i in truth["incidents"]} <= names
    for reg in truth["world"]["regions"]:
        assert reg["name"] in names and reg["country"] in names
        assert model.group(reg["name"]).match.switches == reg["switches"]
        assert reg["prefix"] in model.group(reg["name"]).description
        assert model.group(reg["country"]).match.prefixes == [
            reg["prefix"][: 1 + len(next(r.cc for r in synth.REGIONS if r.name == reg["name"]))]
        ]
        for sw in reg["switches"]:
            assert model.ancestors(sw) == [reg["name"], reg["country"]]


def test_incidents_found_in_right_group_and_window(worlds, tmp_path):
    d = worlds["incidents"]
    truth = json.loads((d / "truth.json").read_text())
    model = load_model(d / "model.yaml")
    alerts = run(d, model).alerts
    incidents = [
        (i["group"], pd.Timestamp(i["start"]), pd.Timestamp(i["end"])) for i in truth["incidents"]
    ]
    assert len(incidents) == 3
    for group, start, end in incidents:
        mine = alerts[alerts["group"] == group]
        assert len(mine) > 0, f"no alert for the incident on {group}"
        assert mine["start"].min() <= start + SLACK  # found from its first bucket or the next
        assert mine["end"].max() >= end - SLACK  # ... until its end
        assert (mine["start"] >= start).all() and (mine["end"] <= end).all()
        assert {"asr", "ner"} <= set(mine["indicator"])
    # every alert belongs to an incident: its switch or a parent of it, inside its window
    for row in alerts.itertuples():
        assert any(
            row.group in (g, *model.ancestors(g)) and row.start >= s and row.end <= e + SLACK
            for g, s, e in incidents
        ), f"unexpected alert {row.group} {row.indicator} {row.start}"


def test_clean_world_raises_no_alert(worlds, tmp_path):
    d = worlds["clean"]
    assert json.loads((d / "truth.json").read_text())["incidents"] == []
    done = run(d, d / "model.yaml")
    assert done.alerts.empty
    assert (done.result.table["attempts"] > 0).any()  # there was traffic to judge


def test_cli_writes_outputs(worlds, tmp_path, capsys):
    d = worlds["incidents"]
    out = tmp_path / "cli"
    code = cli.main(
        [
            "kqi",
            str(d),
            "--model",
            str(d / "model.yaml"),
            "--out",
            str(out),
            "--freq",
            "hour",
            "--top",
            "7",
        ]
    )
    assert code == 0
    kqi = pd.read_parquet(out / "kqi" / "kqi.parquet")
    alerts = pd.read_parquet(out / "alerts.parquet")
    worst = pd.read_parquet(out / "kqi" / "worst_customers.parquet")
    assert set(kqi["freq"]) == {"hour", "15min"}  # the alerting bucket is always computed
    assert {"group", "indicator", "start", "end", "severity", "value", "threshold"} <= set(
        alerts.columns
    )
    assert len(alerts) > 0 and len(worst) == 7 and worst["reason"].str.len().gt(0).all()
    assert "alert(s)" in capsys.readouterr().out


def test_cli_reports_bad_model(worlds, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ngroups: [{name: a, mtch: {}}]\n")
    code = cli.main(["kqi", str(worlds["clean"]), "--model", str(bad), "--out", str(tmp_path)])
    assert code != 0
    assert "mtch: unknown key" in capsys.readouterr().err


def test_synthetic_world_identical_for_any_partitioning(small_world):
    import dask
    import dask.dataframe as dd

    from cemkit.kqi import rollup

    out, _ = small_world
    records = pd.read_parquet(out / "records")
    truth = pd.read_parquet(out / "truth")
    assert (truth["record_id"].to_numpy() == records["record_id"].to_numpy()).all()
    records["src_intent_id"] = truth["intent_key"].to_numpy()  # what sessionize would give
    model = load_model(out / "model.yaml")
    one = rollup(records, model)
    with dask.config.set(scheduler="threads"):
        many = rollup(dd.from_pandas(records.sample(frac=1.0, random_state=2), npartitions=7,
                                     sort=False), model)  # fmt: skip
    key = ["object_kind", "object", "freq", "bucket"]
    a = one.table.sort_values(key).reset_index(drop=True)
    b = many.table.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(one.worst_customers, many.worst_customers, check_exact=True)
    # repeats against the generator's truth: attempts after the first of their intent
    voice_cdr = (records["service"] == "voice") & (records["record_kind"] == "cdr")
    attempt = voice_cdr & (records["partial_seq"].fillna(1) <= 1)
    keys = truth.loc[attempt.to_numpy(), ["intent_key", "call_key"]]
    first_call = keys.groupby("intent_key")["call_key"].transform("min")
    expected = int((keys["call_key"] != first_call).sum())
    top = [g.name for g in model.groups if g.parent is None]
    day = a[(a["freq"] == "day") & a["object"].isin([*top, "(unassigned)"])]
    assert expected > 0 and day["repeat_attempts"].sum() == expected


def test_protected_world_gives_the_same_alerts(worlds, tmp_path, monkeypatch):
    """Numbers tokenized with a kept prefix (default policy) model into the same groups."""
    d = worlds["incidents"]
    monkeypatch.setenv("CEMKIT_KEY", "5e" * 32)
    protected = tmp_path / "protected"
    code = cli.main(["protect", str(d), "--policy", "default", "--out", str(protected),
                     "--scheduler", "threads"])  # fmt: skip
    assert code == 0
    sample = pd.read_parquet(protected / "records")["a_number"].head(50)
    assert sample.str.contains("#").all()  # tokens, not numbers
    model = load_model(d / "model.yaml")
    raw = run(d, model).alerts
    prot = run(protected, model).alerts
    assert len(raw) > 0
    pd.testing.assert_frame_equal(raw, prot)
