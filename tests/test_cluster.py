import dask
import dask.dataframe as dd
import loopback_cluster as loopback
import pandas as pd
import pytest

from cemkit import cluster as cl


@pytest.fixture(scope="module")
def real_cluster(tmp_path_factory):
    c = loopback.start(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


def frame():
    return pd.DataFrame({"k": [i % 7 for i in range(1000)], "v": range(1000)})


def test_connect_by_address_runs_on_the_workers(real_cluster):
    ddf = dd.from_pandas(frame(), npartitions=4)
    with cl.connect(real_cluster.address) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        got = ddf.groupby("k")["v"].sum().compute()
        who = client.run(lambda: 1)
    assert set(who) and len(who) == 2
    pd.testing.assert_series_equal(got.sort_index(), frame().groupby("k")["v"].sum())


def test_environment_variable_and_client_object(real_cluster, monkeypatch):
    from distributed import Client

    monkeypatch.setenv(cl.ENV_VAR, real_cluster.address)
    assert cl.resolve(None) == real_cluster.address
    with cl.connect() as client:
        assert client.scheduler.address == real_cluster.address
    with Client(real_cluster.address) as mine, cl.connect(mine) as used:
        assert used is mine
        assert dask.compute(dask.delayed(sum)([1, 2, 3]))[0] == 6
    assert mine.status == "closed"  # closed by its owner's with-block, not by cemkit


def test_local_names_and_errors():
    with cl.connect("sync") as client:
        assert client is None
    with (
        pytest.raises(cl.SchedulerError, match="unknown scheduler 'nonsense'"),
        cl.connect("nonsense"),
    ):
        pass
    with (
        pytest.raises(cl.SchedulerError, match="cannot reach the Dask scheduler"),
        cl.connect("tcp://127.0.0.1:9"),
    ):
        pass


def test_embedded_local_cluster():
    with cl.connect("local", n_workers=1) as client:
        assert len(client.scheduler_info()["workers"]) == 1
        assert dd.from_pandas(frame(), npartitions=2)["v"].sum().compute() == sum(range(1000))


def test_default_is_the_measured_fastest_and_starts_no_cluster(monkeypatch, tmp_path):
    # benchmarks/RESULTS.md: sync measured fastest (LocalCluster / processes 3.4-4.6x the CPU,
    # threads the same at 1M records and slower at 2M)
    import distributed

    from cemkit import synth
    from cemkit.runs.runner import Source, execute

    monkeypatch.delenv(cl.ENV_VAR, raising=False)
    assert cl.resolve() == cl.DEFAULT_SCHEDULER == "sync"

    def no_cluster(*args, **kwargs):
        raise AssertionError("the default started a LocalCluster")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    synth.generate(tmp_path / "w", records=300, seed=1, incidents=0, days=1, workers=1)
    csv = tmp_path / "w" / "formats" / "asterisk" / "Master.csv"
    src = Source("asterisk", [str(csv)], tz="Europe/London", default_region="GB")
    done = execute([], tmp_path / "run", sources=[src])
    assert done.manifest["load"]["totals"]["rows_loaded"] > 0
    monkeypatch.setenv(cl.ENV_VAR, "threads")  # the environment still wins over the default
    assert cl.resolve() == "threads"
