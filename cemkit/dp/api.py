"""``cemkit.release``: DP counts of KQI counters per node group and bucket, ratios after noise.

Steps, in this order (nothing random happens before the ledger has the reservation):

1. read the protected records of a run (refused without the policy's ``release:`` section);
2. put each record in its node group (the service model) and 15-minute bucket of the period;
   the *public* list of cells is every group of the model at a level × every bucket of the
   period asked for — never only the cells the data happens to fill;
3. bound contributions on the pseudonymized subscriber codes (:mod:`cemkit.dp.bounding`),
   separately for every level of the hierarchy;
4. sum the counters of the kept records per cell (sums clamped per record);
5. reserve the spend in the ledger (refused when a period's budget would be exceeded);
6. add OpenDP's noise to every counter vector (:mod:`cemkit.dp.mechanism`), derive the
   ratios from the noisy counts, write the release and commit it in the ledger.

The spend of one release is split evenly over the levels released and the counters released;
groups within a level are disjoint, so one level's share covers all its groups and buckets
(parallel composition).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cemkit.dp import bounding, mechanism
from cemkit.dp.ledger import Ledger
from cemkit.dp.spec import INDICATOR_COUNTERS, SUM_COUNTERS, ReleaseSpec
from cemkit.errors import InputError, PolicyError

#: Widths of the release's cells in time (15-minute buckets by default, as the KQI tables).
FREQS: dict[str, pd.Timedelta] = {"15min": pd.Timedelta("15min"), "hour": pd.Timedelta("1h"),
                                  "day": pd.Timedelta("1D")}  # fmt: skip
#: Name of the ledger file looked for next to a run when none is given.
LEDGER_NAME = "privacy-ledger.jsonl"
#: Label of records no group matches (a public cell like the others).
UNASSIGNED = "(unassigned)"


@dataclass
class Release:
    """What :func:`release` published."""

    table: pd.DataFrame  #: one row per group × bucket: noisy counters, their sd, ratios
    release_id: str
    spent: dict[str, float]  #: per period of the data
    measure: str
    out: Path | None = None
    ledger: Path | None = None

    def _repr_html_(self) -> str:
        spent = ", ".join(f"{p}: {v:g}" for p, v in self.spent.items())
        return (f"<p><b>DP release</b> {self.release_id[:12]}: {len(self.table):,} cells, "
                f"{self.measure} spent {spent}</p>")  # fmt: skip


def _periods(bucket_starts: pd.DatetimeIndex, per: str) -> np.ndarray:
    if per == "day":
        return np.asarray(bucket_starts.strftime("%Y-%m-%d"))
    if per == "week":
        iso = bucket_starts.isocalendar()
        return np.asarray([f"{y}-W{w:02d}" for y, w in zip(iso["year"], iso["week"], strict=True)])
    if per == "month":
        return np.asarray(bucket_starts.strftime("%Y-%m"))
    return np.asarray(bucket_starts.strftime("%Y"))


def _levels(spec_model: Any, group_names: list[str]) -> dict[int, list[int]]:
    """Group codes per hierarchy depth (the unassigned pseudo-group is a top-level group)."""
    out: dict[int, list[int]] = {}
    for code, name in enumerate(group_names):
        depth = 1 if name == UNASSIGNED else spec_model.depth(name)
        out.setdefault(depth, []).append(code)
    return out


def _ancestor_at(spec_model: Any, group_names: list[str], depth: int) -> np.ndarray:
    """For every group code, its ancestor (or itself) at ``depth``, else -1."""
    index = {n: i for i, n in enumerate(group_names)}
    out = np.full(len(group_names), -1, dtype=np.int64)
    for code, name in enumerate(group_names):
        if name == UNASSIGNED:
            out[code] = code if depth == 1 else -1
            continue
        chain = [name, *spec_model.ancestors(name)]  # nearest first; chain[-1] is depth 1
        own = len(chain)
        if own >= depth:
            out[code] = index[chain[own - depth]]
    return out


def prepare(records: pd.DataFrame, spec: ReleaseSpec, model: Any, start: pd.Timestamp,
            end: pd.Timestamp, width: pd.Timedelta = FREQS["15min"]) -> dict[str, Any]:  # fmt: skip
    """Per-record unit code, leaf group code, bucket index and counters (no noise, no output).

    Records outside ``[start, end)`` are not part of the release.
    """
    from cemkit.kqi import formulas
    from cemkit.model.assign import GROUP_COLUMN, Assigner

    if spec.unit not in records.columns:
        raise InputError(
            f"records have no {spec.unit!r} column (the policy's privacy unit)",
            hint="release from a run whose records keep the unit's pseudonym",
        )
    times = pd.to_datetime(records["start"], utc=True)
    inside = ((times >= start) & (times < end)).to_numpy(dtype=bool, na_value=False)
    recs = records.loc[inside]
    times = times[inside]
    if formulas.INTENT_COLUMN in recs.columns:
        from cemkit.kqi.rollup import _mark_first_of_intent  # the rollup's own definition

        recs = _mark_first_of_intent(recs)
    assigner = Assigner(model)
    assigned = assigner.assign(recs)
    group_names = [*assigner.group_names, UNASSIGNED]
    codes = np.asarray(assigned[GROUP_COLUMN].cat.codes, dtype=np.int64)
    codes = np.where(codes < 0, len(group_names) - 1, codes)
    unit_values = recs[spec.unit]
    unit_codes, _ = pd.factorize(unit_values, use_na_sentinel=True)
    bucket = ((times - start) // width).to_numpy(dtype=np.int64)
    counters = formulas.contributions(recs)
    return {
        "unit": np.asarray(unit_codes, dtype=np.int64),
        "group": codes,
        "bucket": bucket,
        "counters": counters,
        "group_names": group_names,
    }


def bounded_sums(prep: dict[str, Any], spec: ReleaseSpec, model: Any, n_buckets: int,
                 seed: int) -> dict[int, dict[str, Any]]:  # fmt: skip
    """True (pre-noise) sums per level, counter and cell after contribution bounding.

    Returns ``{depth: {"groups": codes, "sums": {counter: array (groups × buckets)}}}``.
    Never shown to anyone: the input of the noise step (and of the tests).
    """
    levels = _levels(model, prep["group_names"])
    out: dict[int, dict[str, Any]] = {}
    for depth, level_groups in sorted(levels.items()):
        ancestor = _ancestor_at(model, prep["group_names"], depth)[prep["group"]]
        slot = np.full(len(prep["group_names"]), -1, dtype=np.int64)
        slot[level_groups] = np.arange(len(level_groups))
        position = np.where(ancestor >= 0, slot[np.maximum(ancestor, 0)], -1)
        in_level = position >= 0
        cell = np.where(in_level, position * n_buckets + prep["bucket"], -1)
        unit = np.where(in_level, prep["unit"], -1)
        keep = bounding.bound(unit, cell, max_cells=spec.bounds.max_cells,
                              max_records=spec.bounds.max_records, seed=seed + depth)  # fmt: skip
        size = len(level_groups) * n_buckets
        sums: dict[str, np.ndarray] = {}
        for name in spec.counters():
            values = prep["counters"][name].to_numpy(dtype=np.int64)
            if name in SUM_COUNTERS:
                values = np.clip(values, 0, spec.bounds.clamp[name])
            sums[name] = np.bincount(cell[keep], weights=values[keep], minlength=size).astype(
                np.int64
            )  # integer weights below 2**53: exact
        out[depth] = {"groups": level_groups, "sums": sums}
    return out


def _ratios(table: pd.DataFrame, indicators: list[str]) -> pd.DataFrame:
    """Indicators derived from the noisy counters (post-processing: no further privacy cost)."""

    def ratio(num: pd.Series, den: pd.Series, scale: float = 1.0) -> pd.Series:
        den = den.astype(float)
        return (num.astype(float) / den.where(den > 0) / scale).astype("float64")

    out = {}
    for name in indicators:
        cols = INDICATOR_COUNTERS[name]
        if name == "attempts":
            continue
        if name in ("ser", "seer"):
            num, inv, inv3 = (table[c] for c in cols)
            out[name] = ratio(num, inv - inv3).clip(0, 1)
        elif name == "acd_s" or name == "pdd_mean_ms":
            out[name] = ratio(table[cols[0]], table[cols[1]], 1000.0).clip(lower=0)
        elif name == "mos":
            out[name] = ratio(table[cols[0]], table[cols[1]], 1e6).clip(1.0, 4.5)
        else:
            out[name] = ratio(table[cols[0]], table[cols[1]]).clip(0, 1)
    return table.assign(**out)


def release(
    records: Any,
    *,
    policy: Any,
    model: Any,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    spend: float | None = None,
    levels: list[int] | None = None,
    freq: str = "15min",
    data_set: str | None = None,
    ledger: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    bounding_seed: int | None = None,
    scheduler: Any = None,
) -> Release:
    """Release DP counters and ratios per node group and 15-minute bucket of ``[start, end)``.

    Parameters
    ----------
    records : path of a run directory, or pandas.DataFrame
        Protected records (as ``cemkit run`` or ``cemkit protect`` wrote them).
    policy : path, name or Policy
        The policy whose ``release:`` section governs the release (budget, bounds, mechanism).
    model : path or ServiceModel
        The service model: its groups are the public list of groups.
    start, end : str or Timestamp
        The period released (UTC; ``end`` excluded).
    spend : float, optional
        ε (laplace) or ρ (gaussian) this release spends in every period it touches (default a
        quarter of the period's budget, so four such reports fit in one period).
    levels : list of int, optional
        Hierarchy depths to release (1 = top-level groups); default every level.
    freq : {"15min", "hour", "day"}
        Width of the released buckets (coarser buckets hold larger counts for the same noise).
    data_set : str, optional
        Name of the data set whose budget is spent (default: the model's name): every release
        of the same network's records shares one budget per period.
    ledger : path, optional
        The ledger (default ``privacy-ledger.jsonl`` next to the run directory, or
        ``$CEMKIT_LEDGER``).
    out : path, optional
        Directory to write ``release.parquet`` and a manifest into.
    bounding_seed : int, optional
        Seed of the random choice of a heavy user's kept records (default: fresh randomness).
    scheduler : optional
        Where Dask reads the run's records (:mod:`cemkit.cluster`; default: the one in use).

    Examples
    --------
    >>> import cemkit
    >>> rel = cemkit.release("runs/today", policy="default", model="models/example.yaml",
    ...                      start="2026-05-01", end="2026-06-01")  # doctest: +SKIP
    """
    from cemkit.model.spec import ServiceModel, load_model
    from cemkit.privacy.policy import Policy, load_policy

    pol = policy if isinstance(policy, Policy) else load_policy(policy)
    spec = pol.release
    if spec is None:
        raise PolicyError(f"policy {pol.name!r} has no `release:` section",
                          hint="a privacy officer must add one (see policies/default.yaml) "
                          "before anything is released with differential privacy")  # fmt: skip
    spec_model = model if isinstance(model, ServiceModel) else load_model(model)
    t0, t1 = _utc(start), _utc(end)
    if t1 <= t0:
        raise InputError(f"the period is empty (end {t1} is not after start {t0})")
    if freq not in FREQS:
        raise InputError(f"unknown bucket {freq!r}; known: {', '.join(FREQS)}")
    width = FREQS[freq]
    n_buckets = int(np.ceil((t1 - t0) / width))
    run_dir: Path | None = None
    if isinstance(records, str | os.PathLike):
        run_dir = Path(records)
        import contextlib

        from cemkit.cluster import connect

        with contextlib.nullcontext() if scheduler is None else connect(scheduler):
            frame = _read_run(run_dir, spec, spec_model)
    elif isinstance(records, pd.DataFrame):
        frame = records
    else:
        raise InputError(f"records must be a run directory or a pandas DataFrame, found "
                         f"{type(records).__name__}")  # fmt: skip
    ledger_path = Path(
        ledger
        or os.environ.get("CEMKIT_LEDGER")
        or ((run_dir.resolve().parent if run_dir is not None else Path.cwd()) / LEDGER_NAME)
    )
    book = Ledger(ledger_path)
    budget = spec.budget
    amount = float(spend) if spend is not None else budget.total / 4
    if amount <= 0:
        raise InputError("the spend of a release must be positive")
    prep = prepare(frame, spec, spec_model, t0, t1, width)
    all_levels = sorted(_levels(spec_model, prep["group_names"]))
    chosen = sorted(set(levels)) if levels else all_levels
    unknown = [lv for lv in chosen if lv not in all_levels]
    if unknown:
        raise InputError(f"level(s) {unknown} not in the model; it has {all_levels}")
    bucket_starts = pd.date_range(t0, periods=n_buckets, freq=width)
    periods = sorted(set(_periods(bucket_starts, budget.per)))
    seed = secrets.randbits(62) if bounding_seed is None else int(bounding_seed)
    sums = bounded_sums(prep, spec, spec_model, n_buckets, seed)
    counters = spec.counters()
    share = amount / (len(chosen) * len(counters))
    noises = {}
    for name in counters:
        per_record = spec.bounds.clamp.get(name, 1)
        sens = mechanism.sensitivity(spec.mechanism, spec.bounds.max_cells,
                                     spec.bounds.max_records, per_record)  # fmt: skip
        noises[name] = mechanism.calibrate(spec.mechanism, sens, share)
    release_id = book.reserve(
        data_set=data_set or spec_model.name, measure=budget.measure,
        spend=dict.fromkeys(periods, amount), budget=budget.total,
        details={"policy": pol.summary(), "levels": chosen, "counters": counters,
                 "period": [t0.isoformat(), t1.isoformat()], "freq": freq,
                 "mechanism": spec.mechanism, "bounds": spec.bounds.model_dump(),
                 "model": spec_model.name},
    )  # fmt: skip
    frames = []
    for depth in chosen:
        level = sums[depth]
        names = np.array(prep["group_names"], dtype=object)[level["groups"]]
        cols: dict[str, Any] = {
            "level": depth,
            "object": np.repeat(names, n_buckets),
            "bucket": np.tile(bucket_starts, len(names)),
        }
        for name in counters:
            cols[name] = mechanism.noisy(level["sums"][name], noises[name])
            cols[f"{name}_sd"] = noises[name].sd
        frames.append(pd.DataFrame(cols))
    table = pd.concat(frames, ignore_index=True)
    table["bucket"] = pd.to_datetime(table["bucket"], utc=True)
    table.insert(3, "bucket_end", table["bucket"] + width)
    table = _ratios(table, spec.indicators)
    written = None
    if out is not None:
        written = _write(out, table, overwrite, {
            "release_id": release_id, "policy": pol.summary(), "data_set": data_set or
            spec_model.name, "measure": budget.measure, "spent": dict.fromkeys(periods, amount),
            "mechanism": spec.mechanism, "levels": chosen, "counters": counters,
            "noise_sd": {n: z.sd for n, z in noises.items()}, "ledger": str(ledger_path),
            "period": [t0.isoformat(), t1.isoformat()], "bounds": spec.bounds.model_dump(),
        })  # fmt: skip
    book.commit(release_id, {"out": None if written is None else str(written)})
    return Release(
        table, release_id, dict.fromkeys(periods, amount), budget.measure, written, ledger_path
    )


def _utc(when: Any) -> pd.Timestamp:
    """A time as UTC (a naive time is taken as UTC)."""
    t = pd.Timestamp(when)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _read_run(run: Path, spec: ReleaseSpec, model: Any) -> pd.DataFrame:
    from cemkit.io.output import read_records
    from cemkit.kqi import formulas

    ddf = read_records(run)
    wanted = [spec.unit, "start", "node", model.numbers.column, formulas.INTENT_COLUMN,
              "src_match", *formulas.INPUT_COLUMNS]  # fmt: skip
    cols = [c for c in dict.fromkeys(wanted) if c in ddf.columns]
    return ddf[cols].compute()


def _write(out: Any, table: pd.DataFrame, overwrite: bool, section: dict[str, Any]) -> Path:
    from cemkit.io.output import RunDir

    with RunDir(out, overwrite=overwrite) as run:
        table.to_parquet(run.path / "release.parquet", index=False)
        run.manifest.add_section("release", section)
        run.manifest.data["stages"] = ["release"]
    return Path(out)
