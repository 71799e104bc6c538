"""Coverage-aware KQIs of device measurements: real file vs a hand computation, suppression."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLES

from cemkit.io import plan
from cemkit.kqi.coverage import CoverageSpec, coverage_holes, coverage_kqis, wilson
from cemkit.privacy.engine import protect
from cemkit.privacy.keys import Key

FILE = SAMPLES / "agent-gnettrack" / "download-driving-B_2019.12.14_10.16.30.csv"
KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")


def test_wilson_known_values():
    lo, hi = wilson(np.array([0, 5, 10]), np.array([10, 10, 10]))
    # Wilson 95 % for 5/10: 0.2366 .. 0.7634; 0/10: 0 .. 0.2775.
    assert lo[1] == pytest.approx(0.2366, abs=1e-4) and hi[1] == pytest.approx(0.7634, abs=1e-4)
    assert lo[0] == pytest.approx(0.0, abs=1e-12) and hi[0] == pytest.approx(0.2775, abs=1e-4)


@pytest.mark.samples
@pytest.mark.skipif(not FILE.exists(), reason="shared samples absent")
def test_per_cell_kqis_equal_a_hand_computation_on_a_real_file():
    records = plan(str(FILE), "gnettrack", tz="Europe/Dublin").records().compute()
    protected = protect(records, "default", key=KEY)
    assert "latitude" in protected and protected.device.iloc[0] != "download-driving-B"
    k = coverage_kqis(protected, "cell", every="1D", spec=CoverageSpec(min_samples=1))
    k = k.set_index("cell")
    raw = pd.read_csv(FILE, na_values=["-"], dtype={"NODEHEX": str, "CELLHEX": str})
    raw["cell"] = raw.NODEHEX + "-" + raw.CELLHEX  # the cell: base station and its cell number
    by = raw.groupby("cell")
    assert k["samples"].to_dict() == by.size().to_dict()
    active = raw[raw.State != "I"].groupby("cell").DL_bitrate.mean()
    pd.testing.assert_series_equal(k["dl_kbps_mean"].dropna().sort_index(),
                                   active.sort_index().astype(float), check_names=False,
                                   check_index_type=False)  # fmt: skip
    share5g = by.NetworkMode.apply(lambda s: (s == "5G").mean())
    pd.testing.assert_series_equal(k["share_5G"].sort_index(), share5g.sort_index(),
                                   check_names=False, check_index_type=False)  # fmt: skip
    bad = by.RSRP.apply(lambda s: (s < -110).mean())
    pd.testing.assert_series_equal(k["coverage_bad"].sort_index(), bad.sort_index(),
                                   check_names=False, check_index_type=False)  # fmt: skip
    assert (k["seen_share"] <= 1).all() and (k["devices"] == 1).all()


@pytest.mark.samples
@pytest.mark.skipif(not FILE.exists(), reason="shared samples absent")
def test_small_buckets_are_suppressed_and_say_so():
    records = plan(str(FILE), "gnettrack").records().compute()
    k = coverage_kqis(records, "cell", every="1h", spec=CoverageSpec(min_samples=100))
    small = k[k.samples.isna()]
    assert len(small) and small.suppressed.all()
    assert (small.why == "fewer than 100 samples").all() and small.dl_kbps_mean.isna().all()
    # Intermittency stays visible even when figures are suppressed.
    assert small.seen_share.notna().all()
    assert coverage_holes(k, min_bad=0.0)["suppressed"].eq(False).all()
