"""Every command that computes takes a scheduler: --scheduler or $CEMKIT_SCHEDULER.

An unknown scheduler name is refused by cemkit.cluster.connect before anything is computed or
written, so each command failing with that message shows it routes through connect.
"""

from __future__ import annotations

import faults_helpers as fh
import pytest

from cemkit import synth
from cemkit.cli import build_parser, main

COMPUTING = ("load", "protect", "reveal", "correlate", "kqi", "run", "demo", "report")
#: Commands that write files without Dask (generators, policy tools).
NO_DASK = (
    "synth",
    "sip-capture",
    "policy",
    "audit",
    "scan-notebook",
    "ledger",
    "warehouse",
    "watch",
)  # the warehouse counts file by file, in pandas


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("sworld")
    synth.generate(out, records=2_000, seed=3, incidents=0)
    return out


def commands(world, out):
    csv = str(world / "formats" / "asterisk" / "Master.csv")
    return {
        "load": ["load", "asterisk", csv, "--out", out],
        "protect": ["protect", str(world), "--policy", "default", "--out", out],
        "correlate": ["correlate", str(world / "records"), "--out", out],
        "kqi": ["kqi", str(world), "--model", str(world / "model.yaml"), "--out", out],
        "run": ["run", csv, "--format", "asterisk", "--model", str(world / "model.yaml"),
                "--out", out],
        "demo": ["demo", "--records", "1000", "--out", out],
    }  # fmt: skip


def test_every_command_that_computes_has_the_option():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    have = {n for n, p in sub.choices.items()
            if any("--scheduler" in a.option_strings for a in p._actions)}  # fmt: skip
    assert set(COMPUTING) <= have
    assert set(sub.choices) - have <= set(NO_DASK)


@pytest.mark.parametrize("how", ["option", "environment"])
@pytest.mark.parametrize("name", ["load", "protect", "correlate", "kqi", "run", "demo"])
def test_commands_route_through_connect(world, tmp_path, monkeypatch, capsys, name, how):
    monkeypatch.setenv("CEMKIT_KEY", fh.KEY)
    out = tmp_path / "out"
    argv = commands(world, str(out))[name]
    if how == "option":
        argv = [*argv, "--scheduler", "nonsense"]
    else:
        monkeypatch.setenv("CEMKIT_SCHEDULER", "nonsense")
    assert main(argv) != 0
    assert "unknown scheduler 'nonsense'" in capsys.readouterr().err
    assert not out.exists()
    assert not list(tmp_path.glob(".out*"))


def test_kqi_python_api_takes_a_scheduler(world):
    from cemkit.cluster import SchedulerError
    from cemkit.kqi.api import run

    with pytest.raises(SchedulerError, match="unknown scheduler"):
        run(world, world / "model.yaml", scheduler="nonsense")
    done = run(world, world / "model.yaml", scheduler="sync")
    assert len(done.result.table) > 0
