"""Load inputs into a run directory in one parallel pass, with reconciled counts.

Each Dask task reads one part and writes its records and its quarantine as Parquet part files
straight from the worker, returning only its counts; the client gathers counts and checksums,
never data. Formats that combine parts (:meth:`~cemkit.io.base.Loader.finish`, e.g. CUCM) write
their records from the combined lazy frame instead.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import dask

from cemkit.errors import SchemaError
from cemkit.io.api import Plan, number_counts, warn_unparsed
from cemkit.io.base import QUARANTINE_SCHEMA, Loader, Part
from cemkit.io.output import RunDir, sha256_file, write_frame
from cemkit.schema import arrow_schema


def _read_and_write(loader: Loader, part: Part, records_dir: str | None,
                    quarantine_dir: str) -> dict[str, Any]:  # fmt: skip
    records, quarantine = loader.read_part(part)
    if records_dir is not None:
        write_frame(records, records_dir, part.index, arrow_schema(loader.extension_columns()))
    write_frame(quarantine, quarantine_dir, part.index, QUARANTINE_SCHEMA)
    read = loader.rows_read(part, records, quarantine)
    attached = loader.rows_attached(part, records, quarantine)
    return {"path": part.path, "rows_read": read, "rows_quarantined": len(quarantine),
            "rows_attached": attached, "rows_loaded": read - len(quarantine) - attached,
            **number_counts(records)}  # fmt: skip


def load_to_dir(plan: Plan, out: str | os.PathLike[str], *, overwrite: bool = False,
                command: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Load a planned set of inputs into a run directory; return the manifest's ``load`` section.

    Parameters
    ----------
    plan : Plan
        From :func:`cemkit.io.plan`.
    out : str or path
        Run directory to create (atomically).
    overwrite : bool
        Replace an existing run directory.
    command : str, optional
        Command line to record in the manifest.
    """
    loader = plan.loader
    combined = type(loader).finish is not Loader.finish
    with RunDir(out, overwrite=overwrite) as run:
        tasks = [
            dask.delayed(_read_and_write, pure=False)(
                loader, part, None if combined else str(run.records_dir), str(run.quarantine_dir)
            )
            for part in plan.parts
        ]
        hashes = [dask.delayed(sha256_file, pure=False)(p) for p in plan.paths]
        with run.manifest.timed("load"):
            if combined:
                plan.records().to_parquet(
                    run.records_dir, write_index=False, write_metadata_file=False,
                    name_function=lambda i: f"part-{i:05d}.parquet",
                )  # fmt: skip
            counts, digests = dask.compute(tasks, hashes)
        per_file: dict[str, dict[str, int]] = defaultdict(
            lambda: {"rows_read": 0, "rows_loaded": 0, "rows_quarantined": 0, "rows_attached": 0}
        )
        for c in counts:
            for k in ("rows_read", "rows_loaded", "rows_quarantined", "rows_attached"):
                per_file[c["path"]][k] += c[k]
        inputs = [{**d, **per_file[d["path"]]} for d in digests]
        keys = ("rows_read", "rows_loaded", "rows_quarantined", "rows_attached")
        totals = {k: sum(f[k] for f in inputs) for k in keys}
        if totals["rows_read"] != (totals["rows_loaded"] + totals["rows_quarantined"]
                                   + totals["rows_attached"]):  # fmt: skip
            raise SchemaError("row counts do not reconcile "
                              "(read != loaded + quarantined + attached)")  # fmt: skip
        plan.check_quarantine(inputs)
        warn_unparsed(counts, loader.default_region)
        section = {
            "format": loader.name,
            "tz": loader.tz,
            "default_region": loader.default_region,
            "options": {k: v for k, v in loader.opts.items() if _jsonable(v)},
            "parts": len(plan.parts),
            "inputs": inputs,
            "totals": totals,
        }
        if command is not None:
            section["command"] = command
        run.manifest.add_section("load", section)
        run.manifest.data["inputs"] = [
            {k: f[k] for k in ("path", "size", "sha256")} for f in inputs
        ]
        run.manifest.data["stages"] = ["load"]
    _ = Path(out)
    return section


def _jsonable(v: object) -> bool:
    return v is None or isinstance(v, str | int | float | bool | list | tuple | dict)
