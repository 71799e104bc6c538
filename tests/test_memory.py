"""cemkit's processes keep the memory they free (cemkit.memory): in runs, batches, workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cemkit import memory

EXAMPLE = Path(memory.__file__).parent / "data" / "models" / "example.yaml"


def _python(code: str, cwd, **env: str) -> list[str]:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env}
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                         check=True, cwd=cwd)  # fmt: skip
    return ran.stdout.split()


_KEEP_MEMORY = """
import resource, numpy as np, pyarrow as pa
from cemkit.memory import keep_memory
took = keep_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def fill():
    a = np.empty(256 << 20, np.uint8); a[::4096] = 1; return a
fill(); before = faults(); fill(); again = faults() - before
print(took, pa.default_memory_pool().backend_name, again)
"""


def test_freed_memory_is_reused_not_faulted_in_again(tmp_path):
    # a run frees and allocates the same few hundred MB per partition: handed back to the kernel
    # and faulted in again, that was half of a worker's CPU on a VM whose host reclaims free pages
    took, pool, again = _python(_KEEP_MEMORY, tmp_path)
    assert pool == "system"  # Arrow allocates through glibc, which keeps its freed blocks
    if took == "True":  # glibc: 256 MB freed and allocated again without faulting pages in
        assert int(again) < 16  # (else 65,536 faults, or 128 of 2 MB huge pages)


_RUN = """
import sys
from pathlib import Path
import pyarrow as pa
import cemkit
from cemkit import memory, synth
w = Path(sys.argv[1])
before = memory.backend()
synth.generate(w / "world", records=300, seed=3)
cemkit.run(w / "world" / "records", format="parquet", policy="default",
           model=w / "world" / "model.yaml", out=w / "run", scheduler="sync", overwrite=True)
print(before, memory.backend())
"""


def test_a_run_keeps_memory_unless_turned_off(tmp_path):
    before, after = _python(_RUN.replace("sys.argv[1]", repr(str(tmp_path))), tmp_path)
    assert after == "system"
    before_off, after_off = _python(_RUN.replace("sys.argv[1]", repr(str(tmp_path))), tmp_path,
                                    CEMKIT_KEEP_MEMORY="0")  # fmt: skip
    assert after_off == before_off == before  # left as the process had it


def test_batch_processor_keeps_memory(tmp_path):
    code = ("from cemkit import memory; from cemkit.pipeline import BatchProcessor; "
            f"BatchProcessor('default', model={str(EXAMPLE)!r}); "
            "print(memory.backend())")  # fmt: skip
    assert _python(code, tmp_path) == ["system"]


def test_embedded_cluster_workers_allocate_through_the_system_pool():
    from cemkit.cluster import connect

    with connect("local", n_workers=1) as client:
        assert set(client.run(memory.backend).values()) == {"system"}


def test_preload_sets_the_pool():
    memory.dask_setup(None)
    assert memory.backend() == "system"


def test_a_run_walks_only_what_it_allocates(tmp_path, monkeypatch):
    # the collector's full collections during a run skip the objects alive when it started
    # (modules, classes: ~200K); unfrozen after it, and a caller's own freeze is left alone
    import gc

    import cemkit
    from cemkit import synth
    from cemkit.runs import store

    synth.generate(tmp_path / "world", records=300, seed=3)
    seen = []
    write_part = store.write_part

    def spy(*args, **kwargs):
        seen.append(gc.get_freeze_count())
        return write_part(*args, **kwargs)

    monkeypatch.setattr(store, "write_part", spy)

    def run():
        cemkit.run(tmp_path / "world" / "records", format="parquet", policy="default",
                   model=tmp_path / "world" / "model.yaml", out=tmp_path / "run",
                   scheduler="sync", overwrite=True)  # fmt: skip

    gc.unfreeze()
    run()
    assert seen and min(seen) > 1000
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        run()
        assert gc.get_freeze_count() > frozen // 2  # still frozen (less what the run freed)
    finally:
        gc.unfreeze()
