"""Region and zone are validated up front; numbers left unparsed are reported, not hidden."""

import pytest

from cemkit import synth
from cemkit.cli import main
from cemkit.errors import ResultWarning


@pytest.fixture(scope="module")
def asterisk_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("rworld")
    synth.generate(out, records=1_500, seed=4, incidents=0, days=1, workers=1)
    return out / "formats" / "asterisk" / "Master.csv"  # national numbers, as a GB PBX writes


def _load(path, out, *extra):
    return main(["load", "asterisk", str(path), "--out", str(out), "--scheduler", "sync", *extra])


def test_region_uk_is_refused_with_the_iso_code(asterisk_csv, tmp_path, capsys):
    assert _load(asterisk_csv, tmp_path / "r", "--region", "UK") != 0
    err = capsys.readouterr().err
    assert "unknown region 'UK'" in err and "GB" in err and not (tmp_path / "r").exists()


def test_misspelt_zone_is_a_clean_error(asterisk_csv, tmp_path, capsys):
    assert _load(asterisk_csv, tmp_path / "r", "--tz", "Europe/Londn") != 0
    err = capsys.readouterr().err
    assert "unknown time zone 'Europe/Londn'" in err and "Europe/London" in err
    assert "ArrowInvalid" not in err and "Traceback" not in err


def test_national_numbers_without_region_warn_with_count_and_option(asterisk_csv, tmp_path):
    with pytest.warns(ResultWarning, match=r"\d+ of \d+ numbers \(\d+\.\d%\) stay unparsed") as w:
        assert _load(asterisk_csv, tmp_path / "r", "--tz", "Europe/London") == 0
    assert "set --region" in str(w[0].message)


def test_with_the_region_nothing_is_left_unparsed(asterisk_csv, tmp_path, recwarn):
    assert _load(asterisk_csv, tmp_path / "r", "--tz", "Europe/London", "--region", "GB") == 0
    assert not [w for w in recwarn if issubclass(w.category, ResultWarning)]


def test_every_source_of_a_run_is_checked_for_unparsed_numbers(asterisk_csv, tmp_path,
                                                               monkeypatch):  # fmt: skip
    # the source without a region comes first: its unparsed numbers are reported even when the
    # last source of the run (given its region) leaves none unparsed
    from pathlib import Path

    import cemkit
    from cemkit.runs.runner import Source

    monkeypatch.setenv("CEMKIT_KEY", "ab" * 32)
    fs = sorted((asterisk_csv.parents[1] / "freeswitch").glob("*.csv"))
    model = Path(cemkit.__file__).parent / "data" / "models" / "example.yaml"
    sources = [Source("asterisk", [str(asterisk_csv)], tz="Europe/London"),
               Source("freeswitch", [str(f) for f in fs], tz="Europe/London",
                      default_region="GB")]  # fmt: skip
    with pytest.warns(ResultWarning) as said:
        cemkit.run(sources=sources, model=model, out=tmp_path / "run", scheduler="sync",
                   freqs=("day",))  # fmt: skip
    assert any("stay unparsed" in str(w.message) for w in said)
