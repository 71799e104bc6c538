"""Quiet by default: a real command prints what it did, not Dask's logs; a bar where watched."""

import io
import os
import subprocess
import sys
from pathlib import Path

import dask
import pytest

from cemkit import cluster, progress, synth

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-world")
    synth.generate(out, records=2_000, seed=5, incidents=0, formats=False)
    return out


def cemkit_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO), "CEMKIT_KEY": "cd" * 32}
    env.pop("CEMKIT_SCHEDULER", None)
    done = subprocess.run([sys.executable, "-m", "cemkit.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_run_on_a_local_cluster_is_quiet_unless_verbose(tiny_world, tmp_path):
    args = ["run", str(tiny_world / "records"), "--format", "parquet", "--model",
            str(tiny_world / "model.yaml"), "--scheduler", "local"]  # fmt: skip
    rc, out, err = cemkit_cli(*args, "--out", "quiet", cwd=tmp_path)
    assert rc == 0, err
    assert "2000 records loaded" in out.replace(",", "")
    assert "distributed." not in err, err  # no INFO lines, no shuffle warnings
    assert "Traceback" not in err and "CommClosedError" not in err, err
    assert [line for line in err.splitlines() if not line.startswith("cemkit: ")] == [], err
    dashboard = "Dask dashboard at http" in err
    assert dashboard == cluster.has_dashboard(), "dashboard link only when bokeh can serve it"
    rc, _, err = cemkit_cli("-v", *args, "--out", "loud", cwd=tmp_path)
    assert rc == 0, err
    assert "INFO distributed.scheduler" in err  # -v shows them


class Terminal(io.StringIO):
    """What a step writes to a terminal."""

    def isatty(self):
        return True


def test_step_shows_a_bar_with_rate_and_time_left_and_is_off_in_reports(monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    stream = Terminal()
    with dask.config.set(scheduler="threads"), progress.step("summing", stream=stream) as s:
        dask.compute(*[dask.delayed(sum)([i, 1]) for i in range(50)])
        s.records = 50
    text = stream.getvalue()
    assert text.startswith("cemkit: summing ...")
    assert "50/50" in text and "task/s" in text and "<" in text  # done/total, rate, time left
    assert "(50 records," in text and "records/s)" in text
    monkeypatch.setenv(progress.ENV_VAR, "0")
    quiet = Terminal()
    with progress.step("summing", stream=quiet):
        dask.compute(dask.delayed(sum)([1, 2]))
    assert quiet.getvalue() == ""


def test_a_log_file_gets_the_step_lines_without_bars_unless_asked(monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    log = io.StringIO()  # a file or a pipe: no terminal
    with dask.config.set(scheduler="threads"), progress.step("summing", stream=log) as s:
        dask.compute(*[dask.delayed(sum)([i, 1]) for i in range(50)])
        s.records = 50
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and lines[0] == "cemkit: summing ...", lines
    assert lines[1].startswith("cemkit: summing: done in ") and "records/s)" in lines[1]
    assert "\r" not in log.getvalue() and "task/s" not in log.getvalue()
    with progress.bar(total=4_000, desc="batch", stream=log) as b:
        b.update(4_000)
    assert len(log.getvalue().splitlines()) == 2  # no bar either
    monkeypatch.setenv(progress.ENV_VAR, "1")  # asked for: bars in the log too
    asked = io.StringIO()
    with dask.config.set(scheduler="threads"), progress.step("summing", stream=asked):
        dask.compute(*[dask.delayed(sum)([i, 1]) for i in range(50)])
    assert "50/50" in asked.getvalue() and "task/s" in asked.getvalue()


def test_a_run_logged_to_a_file_holds_only_its_step_lines(tiny_world, tmp_path):
    """The default scheduler (a local one, where the Dask bar is drawn), stderr a pipe."""
    args = ["run", str(tiny_world / "records"), "--format", "parquet", "--model",
            str(tiny_world / "model.yaml"), "--out", "logged"]  # fmt: skip
    rc, out, err = cemkit_cli(*args, cwd=tmp_path)
    assert rc == 0, err
    assert "2000 records loaded" in out.replace(",", "")
    lines = err.splitlines()
    assert lines and all(line.startswith("cemkit: ") for line in lines), err
    assert "\r" not in err and "task/s" not in err, err


def test_bar_counts_records(monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    stream = Terminal()
    with progress.bar(total=4_000, desc="batch", stream=stream) as b:
        b.update(4_000)
    assert "4.00k/4.00k" in stream.getvalue() and "records/s" in stream.getvalue()


def test_bar_is_a_widget_in_a_notebook_kernel(monkeypatch):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as notebook_tqdm

    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    assert progress._tqdm() is notebook_tqdm
    monkeypatch.setattr(progress, "_in_notebook", lambda: False)
    assert progress._tqdm() is not notebook_tqdm
