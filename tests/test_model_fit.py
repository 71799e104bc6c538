"""The service model and the privacy policy fit: checked by `policy check --model` and by runs."""

import pytest
from test_kqi_truth import KEY

import cemkit
from cemkit import synth
from cemkit.cli import main
from cemkit.errors import ResultWarning
from cemkit.privacy.check import model_fit
from cemkit.privacy.policy import POLICY_DIR, load_policy

EXAMPLE = POLICY_DIR.parent / "models" / "example.yaml"


@pytest.mark.parametrize("policy", ["default", "research"])
def test_shipped_model_fits_the_policies_that_keep_prefixes(policy, capsys):
    assert main(["policy", "check", policy, "--model", str(EXAMPLE), "--strict"]) == 0
    assert f"policy {policy}: 0 error(s), 0 warning(s)" in capsys.readouterr().out


def test_prefix_longer_than_kept_digits_is_named(tmp_path, capsys):
    model = tmp_path / "m.yaml"
    model.write_text("name: m\nnumbers: {kept_prefix_digits: 6}\ngroups:\n"
                     "  - {name: uk, match: {prefixes: ['+44']}}\n"
                     "  - {name: nw, parent: uk, match: {prefixes: ['+44161']}}\n")  # fmt: skip
    assert main(["policy", "check", "default", "--model", str(model), "--strict"]) == 1
    out = capsys.readouterr().out
    assert "model.groups.nw: matches prefixes of up to 5 digits" in out
    assert "keeps only 4 digit(s) of a_number" in out
    assert "model 'm' says protected numbers keep 6 digit(s); policy 'default' keeps 4" in out
    assert "model.groups.uk" not in out


def test_strict_keeps_no_prefix_so_prefix_groups_are_flagged():
    where = {f.where for f in model_fit("strict", EXAMPLE)}
    assert {"model.groups.uk", "model.groups.london", "model.groups.dublin"} <= where
    assert "model.groups.lon-sw1" not in where  # switch groups fill under any policy


def test_research_keeps_the_country_code_in_clear():
    # FPE with no kept digit encrypted the country code too: every +44 caller became some
    # other "country" and both injected incidents were missed
    for column in ("a_number", "b_number"):
        rule = load_policy("research").rule_for(column)
        assert rule.action == "fpe" and rule.keep_digits >= 4


def test_run_warns_when_records_match_no_group(tmp_path, monkeypatch):
    world = tmp_path / "w"
    synth.generate(world, records=2_000, seed=5, incidents=0, days=1, formats=False, workers=1)
    monkeypatch.setenv("CEMKIT_KEY", KEY)
    with pytest.warns(ResultWarning) as caught:
        cemkit.run(world / "records", format="parquet", policy="strict",
                   model=world / "model.yaml", out=tmp_path / "run", scheduler="threads",
                   freqs=("day",))  # fmt: skip
    text = "\n".join(str(w.message) for w in caught)
    assert "can never hold a protected record" in text  # before the run: the model's prefixes
    assert "match no group of the model" in text  # after it: the share in (unassigned)
