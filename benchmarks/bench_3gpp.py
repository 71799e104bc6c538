"""Benchmark: TS 32.298 BER CDR files, cemkit's 3gpp-cdr loader vs pycrate record by record.

The input is made at run time (never committed): records from :mod:`cemkit.synth_3gpp` (MSC
voice + SMS, PGW data with partials) repeated to ``--records`` records in each of two TS 32.297
files (file header, CDR headers).

Contenders, on the same files:

* cemkit ``engine=fast`` (jitted TLV walk + vectorized mapping to the canonical schema), one
  file in one thread, and both files through ``cemkit.load`` with Dask threads (2 cores);
* what a user would write with the same library: for each record (CDR headers skipped)
  ``CSRecord.from_ber`` / ``GPRSRecord.from_ber`` of pycrate's compiled TS 32.298 module and
  ``get_val()`` — decode only, no mapping, timed on ``--baseline`` records per file;
* cemkit ``engine=library`` (pycrate + the same mapping), on the baseline's records.

Cross-check: the fast loader's records equal the library loader's on the baseline subset.

Run: ``PYTHONPATH=$PWD python -m benchmarks.bench_3gpp --records 200000``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import machine, versions


def _inputs(tmp: Path, records: int) -> tuple[list[Path], list[list[bytes]]]:
    from cemkit.synth_3gpp import generate_3gpp, write_file

    truth = generate_3gpp(tmp / "seed", calls=600, sms=300, sessions=600, customers=300, seed=5)
    t = truth["records"]
    out, raws = [], []
    for name in ("msc.ber", "pgw.ber"):
        base = list(t[t["file"] == name]["raw"])
        reps = -(-records // len(base))
        recs = (base * reps)[:records]
        out.append(write_file(tmp / f"big-{name}", recs, headers=True))
        raws.append(recs)
    return out, raws


def _baseline(raws: list[bytes], choice: object) -> float:
    t0 = time.perf_counter()
    for raw in raws:
        choice.from_ber(raw)  # type: ignore[attr-defined]
        choice.get_val()  # type: ignore[attr-defined]
    return time.perf_counter() - t0


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000, help="records per file (2 files)")
    ap.add_argument("--baseline", type=int, default=4_000, help="records per file for pycrate")
    args = ap.parse_args()
    import cemkit.io as cio
    from cemkit.io.base import registry

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        files, raws = _inputs(tmp, args.records)
        total = 2 * args.records
        fast = registry.get("3gpp-cdr")(default_region="GB")
        fast.read_part(fast.parts([str(files[0])])[0])  # compile the kernels once
        t0 = time.perf_counter()
        n1 = 0
        for f in files:
            r, q = fast.read_part(fast.parts([str(f)])[0])
            n1 += len(r) + len(q)
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        ddf = cio.load([str(f) for f in files], "3gpp-cdr", default_region="GB")
        n2 = len(ddf.compute(scheduler="threads", num_workers=2))
        t_two = time.perf_counter() - t0
        assert n1 == n2 == total, (n1, n2, total)

        from pycrate_asn1dir import CDR

        t_base = 0.0
        t_lib = 0.0
        for f, recs, choice in zip(files, raws, (CDR.CSChargingDataTypes.CSRecord,
                                                 CDR.GPRSChargingDataTypes.GPRSRecord),
                                   strict=True):  # fmt: skip
            sub = recs[: args.baseline]
            t_base += _baseline(sub, choice)
            from cemkit.synth_3gpp import write_file

            small = write_file(tmp / f"small-{f.name}", sub, headers=True)
            lib = registry.get("3gpp-cdr")(default_region="GB", engine="library")
            lib.read_part(lib.parts([str(small)])[0]) if f is files[0] else None
            t0 = time.perf_counter()
            got_lib, _ = lib.read_part(lib.parts([str(small)])[0])
            t_lib += time.perf_counter() - t0
            got_fast, _ = fast.read_part(fast.parts([str(small)])[0])
            pd.testing.assert_frame_equal(got_fast, got_lib)
        base_rate = 2 * args.baseline / t_base
        lib_rate = 2 * args.baseline / t_lib
        rows = [
            ("cemkit fast, 1 thread", total / t_one),
            ("cemkit fast, cemkit.load, Dask threads x2", total / t_two),
            ("cemkit library (pycrate + mapping)", lib_rate),
            ("pycrate from_ber + get_val per record (baseline)", base_rate),
        ]
        print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f} (shared machine)")
        print(versions(("cemkit", "pycrate", "numba", "numpy", "pandas", "pyarrow", "dask")))
        print(f"records: {total:,} (2 files); baseline and library on {2 * args.baseline:,}")
        print("| decoder | records/s | vs baseline |\n|---|---:|---:|")
        for name, rate in rows:
            print(f"| {name} | {rate:,.0f} | {rate / base_rate:.1f}x |")
        _ = np


if __name__ == "__main__":
    main()
