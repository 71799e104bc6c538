"""Every shipped notebook that takes a policy runs under every shipped policy.

The strict policy used to stop the pipeline (``stitch needs column(s) ['end']``) and so every
notebook that runs it; the research policy encrypted the country code.
"""

import nbformat
import pytest

from cemkit.report import runner

#: Notebooks with a ``policy`` parameter, at small sizes.
CASES = {
    "00_policy_review": {"records": 2_000},
    "02_usage_mining": {"records": 6_000, "scheduler": "threads"},
}


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["strict", "research"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_notebook_runs_under_policy(name, policy, tmp_path, monkeypatch):
    monkeypatch.delenv("CEMKIT_KEY", raising=False)  # the notebooks make a one-off demo key
    params = {**CASES[name], "policy": policy, "workdir": str(tmp_path / "work")}
    paths = runner.report(name, params, tmp_path / "r", progress=False)
    nb = nbformat.read(str(paths["notebook"]), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}))
                     for c in nb.cells for o in c.get("outputs", []))  # fmt: skip
    assert policy in text  # the policy that ran is reported
