"""Loading G-NetTrack agent logs: cemkit's ``gnettrack`` loader vs pandas.read_csv.

    PYTHONPATH=$PWD python -m benchmarks.bench_agents [--devices 60] [--repeat 3]

Two input sets: the 15 real G-NetTrack Pro files of ../shared/data/samples/agent-gnettrack
(44,863 rows) when present, and a synthetic set written by :mod:`cemkit.synth_agents`. Both
contenders read every file into the same types: the time stamp as ``datetime64[ns, UTC]``
(from Europe/Dublin wall-clock), the 19 numeric fields as float64 (``-`` as null), text as
``string[pyarrow]``. pandas is what a user would otherwise write (``read_csv`` per file with
``na_values="-"``, ``to_datetime`` with the format, ``tz_localize``, ``concat``). cemkit does
more on top: range and sign checks that quarantine bad rows with file/line/field, the state
and radio-generation mappings, record ids, device and session from the file name. Best of
``--repeat`` runs, each contender in this process, the same files; rows must agree.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import dask
import pandas as pd

from cemkit.io import plan
from cemkit.synth_agents import generate_agents

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "samples" / "agent-gnettrack"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/data/samples/agent-gnettrack")
TZ = "Europe/Dublin"
NUMERIC = ["Longitude", "Latitude", "Speed", "RSRP", "RSRQ", "SNR", "CQI", "RSSI", "DL_bitrate",
           "UL_bitrate", "PINGAVG", "PINGMIN", "PINGMAX", "PINGSTDEV", "PINGLOSS", "NRxRSRP",
           "NRxRSRQ"]  # fmt: skip


def with_pandas(files: list[Path]) -> int:
    """What a user would write without cemkit."""
    frames = []
    for f in files:
        df = pd.read_csv(f, na_values=["-"], dtype={c: "float64" for c in NUMERIC} | {
            "Timestamp": "string[pyarrow]", "Operatorname": "string[pyarrow]",
            "CellID": "string[pyarrow]", "NetworkMode": "string[pyarrow]",
            "State": "string[pyarrow]", "CELLHEX": "string[pyarrow]",
            "NODEHEX": "string[pyarrow]", "LACHEX": "string[pyarrow]",
            "RAWCELLID": "string[pyarrow]"})  # fmt: skip
        t = pd.to_datetime(df["Timestamp"], format="%Y.%m.%d_%H.%M.%S")
        df["Timestamp"] = t.dt.tz_localize(TZ, ambiguous="NaT", nonexistent="NaT").dt.tz_convert(
            "UTC"
        )
        frames.append(df)
    return len(pd.concat(frames, ignore_index=True))


def with_cemkit(files: list[Path]) -> int:
    """cemkit's loader, computed on the threaded scheduler (Dask, 2 threads)."""
    ddf = plan([str(f) for f in files], "gnettrack", tz=TZ).records()
    with dask.config.set(scheduler="threads", num_workers=2):
        return len(ddf.compute())


def best(fn, files: list[Path], repeat: int) -> tuple[float, int]:
    """Fastest of ``repeat`` runs and the row count."""
    times, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = fn(files)
        times.append(time.perf_counter() - t0)
    return min(times), rows


def main() -> None:
    """Run both contenders on both input sets and print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=60, help="synthetic devices (3 sessions each)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sets: list[tuple[str, list[Path]]] = []
    if SAMPLES.is_dir():
        sets.append(("real G-NetTrack files", sorted(SAMPLES.glob("*.csv"))))
    tmp = tempfile.TemporaryDirectory()
    generate_agents(tmp.name, devices=args.devices, sessions=3, seed=0)
    sets.append((f"synthetic, {args.devices} devices",
                 sorted((Path(tmp.name) / "formats" / "gnettrack").glob("*.csv"))))  # fmt: skip
    print(f"python {platform.python_version()}, pandas {pd.__version__}, dask {dask.__version__}, "
          f"{platform.machine()}")  # fmt: skip
    print("| input | files | MiB | rows | cemkit s (rows/s) | pandas s (rows/s) | cemkit/pandas |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name, files in sets:
        mib = sum(f.stat().st_size for f in files) / 2**20
        tc, rc = best(with_cemkit, files, args.repeat)
        tp, rp = best(with_pandas, files, args.repeat)
        if rc != rp:
            raise SystemExit(f"row counts differ: cemkit {rc}, pandas {rp}")
        print(f"| {name} | {len(files)} | {mib:.1f} | {rc:,} | {tc:.2f} ({rc / tc:,.0f}) | "
              f"{tp:.2f} ({rp / tp:,.0f}) | {tp / tc:.2f}x |")  # fmt: skip
    tmp.cleanup()


if __name__ == "__main__":
    main()
