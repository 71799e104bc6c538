"""Seeded synthetic workload with ground truth, for the demo, tests and benchmarks.

The generated world: customers with E.164 numbers under a few national numbering plans, served by
switches grouped in regions and countries; calls arriving on a diurnal profile with lognormal
durations and realistic Q.850 / SIP failure causes; customers retrying failed calls; long calls cut
into partial records; on-net calls between two switches seen as an originating and a terminating
leg; SMS; a signaling probe seeing a share of the calls, including attempts that never produced a
CDR; and injected incidents (a switch whose answer ratio falls and post-dial delay rises in a time
window).

Everything is vectorized with NumPy and pyarrow: 10 million records take seconds, and the same
seed always gives byte-identical files.

Examples
--------
>>> import tempfile
>>> from cemkit import synth
>>> truth = synth.generate(tempfile.mkdtemp(), records=2_000, seed=1, incidents=1)
>>> truth["records"], len(truth["incidents"])
(2000, 1)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cemkit import config, outcomes
from cemkit.schema import CANONICAL

#: Where the synthetic PBX writing the source-format files sits (local time, national numbers).
DEFAULT_TIMEZONE = "Europe/London"
DEFAULT_REGION = "GB"
DEFAULT_START = "2026-03-02T00:00:00Z"
ROWS_PER_FILE = 1_000_000


@dataclass(frozen=True)
class Region:
    """A region of a national numbering plan served by some switches."""

    name: str
    country: str  #: ISO 3166 region code
    cc: str  #: country calling code
    ndc: str  #: national destination code (area code)
    subscriber_digits: int  #: digits after the NDC
    first_digit: str  #: leading digits of subscriber numbers (keeps numbers plausible)
    switches: tuple[str, ...]

    @property
    def prefix(self) -> str:
        """E.164 prefix of the region's numbers (country code + NDC)."""
        return f"+{self.cc}{self.ndc}"


#: The synthetic world's regions (numbers drawn from plausible geographic ranges).
REGIONS: tuple[Region, ...] = (
    Region("London", "GB", "44", "20", 8, "7", ("lon-sw1", "lon-sw2")),
    Region("Manchester", "GB", "44", "161", 7, "4", ("man-sw1",)),
    Region("Berlin", "DE", "49", "30", 8, "2", ("ber-sw1", "ber-sw2")),
    Region("Munich", "DE", "49", "89", 8, "3", ("muc-sw1",)),
    Region("New York", "US", "1", "212", 7, "5", ("nyc-sw1", "nyc-sw2")),
    Region("Paris", "FR", "33", "1", 8, "4", ("par-sw1",)),
)
SWITCHES: tuple[str, ...] = tuple(s for r in REGIONS for s in r.switches)
PLANS: tuple[str, ...] = ("consumer", "business", "prepaid")
_PLAN_P = (0.75, 0.05, 0.20)

_FIRST = (
    "Alex",
    "Sam",
    "Maria",
    "Jan",
    "Lea",
    "Omar",
    "Chen",
    "Ines",
    "Tom",
    "Aisha",
    "Noah",
    "Eva",
)
_LAST = ("Smith", "Müller", "Dubois", "Rossi", "Kowalski", "Nguyen", "Garcia", "Brown", "Okafor")

# Outcome mix of an ordinary hour, and during an incident on the caller's switch.
_OUTCOME_P = np.array([0.72, 0.10, 0.06, 0.06, 0.02, 0.03, 0.01])
_INCIDENT_P = np.array([0.30, 0.10, 0.06, 0.06, 0.02, 0.26, 0.20])
assert len(_OUTCOME_P) == len(outcomes.OUTCOMES)
_HOURLY = np.array(
    [
        1,
        0.6,
        0.4,
        0.3,
        0.3,
        0.5,
        1.2,
        2.5,
        4.5,
        6,
        6.5,
        6.3,
        5.5,
        5.8,
        6.2,
        6.4,
        6.1,
        5.5,
        5,
        5.2,
        4.8,
        3.8,
        2.6,
        1.6,
    ]
)
_HOURLY = _HOURLY / _HOURLY.sum()

# Q.850 causes per outcome (first entry most likely) and SIP final responses.
_CAUSES: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "no_answer": ((19, 18), (0.85, 0.15)),
    "busy": ((17,), (1.0,)),
    "cancelled": ((16,), (1.0,)),
    "rejected": ((21,), (1.0,)),
    "failed": ((1, 3, 27, 38, 41, 102), (0.25, 0.1, 0.15, 0.15, 0.25, 0.1)),
    "congestion": ((34, 42), (0.6, 0.4)),
}
_SIP: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "answered": ((200,), (1.0,)),
    "no_answer": ((480, 408), (0.8, 0.2)),
    "busy": ((486,), (1.0,)),
    "cancelled": ((487,), (1.0,)),
    "rejected": ((603,), (1.0,)),
    "failed": ((404, 484, 500, 502, 504), (0.35, 0.1, 0.25, 0.15, 0.15)),
    "congestion": ((503,), (1.0,)),
}
#: Abnormal release causes of answered calls that drop.
_DROP_CAUSES = (41, 38, 102)
_DROP_P = 0.02
_DROP_P_INCIDENT = 0.12


def _choice_by_outcome(
    rng: np.random.Generator, outcome_codes: np.ndarray, table: dict[str, Any], default: int
) -> np.ndarray:
    out = np.full(len(outcome_codes), default, dtype=np.int16)
    for code, name in enumerate(outcomes.OUTCOMES):
        if name not in table:
            continue
        idx = np.flatnonzero(outcome_codes == code)
        values, p = table[name]
        out[idx] = rng.choice(np.asarray(values, dtype=np.int16), size=len(idx), p=p)
    return out


class _World:
    """Customers, their numbers, switches and plans."""

    def __init__(self, rng: np.random.Generator, n_customers: int):
        weights = np.array([5, 2, 3, 2, 3, 2], dtype=float)
        self.region = rng.choice(len(REGIONS), size=n_customers, p=weights / weights.sum())
        self.switch = np.empty(n_customers, dtype=np.int16)
        nsn = np.empty(n_customers, dtype=object)
        self.national = np.empty(n_customers, dtype=object)
        self.e164 = np.empty(n_customers, dtype=object)
        for r_idx, reg in enumerate(REGIONS):
            members = np.flatnonzero(self.region == r_idx)
            sw_ids = np.array([SWITCHES.index(s) for s in reg.switches], dtype=np.int16)
            self.switch[members] = rng.choice(sw_ids, size=len(members))
            # Distinct subscriber numbers within the region.
            span = 10 ** (reg.subscriber_digits - 1)
            subs = rng.choice(span, size=len(members), replace=len(members) > span)
            subs_str = pa.array(subs).cast(pa.string())
            padded = pc.utf8_lpad(subs_str, width=reg.subscriber_digits - 1, padding="0")
            local = pc.binary_join_element_wise(reg.ndc + reg.first_digit, padded, "")
            nsn[members] = np.asarray(local.to_pylist(), dtype=object)
        nsn_arr = pa.array(nsn, type=pa.string())
        cc = pa.array([REGIONS[r].cc for r in range(len(REGIONS))]).take(pa.array(self.region))
        self.e164 = pc.binary_join_element_wise("+", cc, nsn_arr, "")
        is_home = pa.array(
            np.array([REGIONS[r].country == DEFAULT_REGION for r in self.region], dtype=bool)
        )
        self.national = pc.if_else(
            is_home,
            pc.binary_join_element_wise("0", nsn_arr, ""),
            pc.binary_join_element_wise("00", cc, nsn_arr, ""),
        )
        self.plan = rng.choice(len(PLANS), size=n_customers, p=_PLAN_P)
        first = rng.choice(len(_FIRST), size=n_customers)
        last = rng.choice(len(_LAST), size=n_customers)
        self.name = pc.binary_join_element_wise(
            pa.array(_FIRST).take(pa.array(first)), pa.array(_LAST).take(pa.array(last)), " "
        )
        # Activity: a few heavy users, many light ones.
        activity = rng.lognormal(0.0, 1.0, size=n_customers)
        self.activity_p = activity / activity.sum()


def _external_numbers(intent_keys: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Off-net destinations (E.164, and as a GB PBX dials them), one per intent.

    Derived from the intent key by a fixed integer hash, so every record of an intent (retries,
    both legs, partials, the probe's xDR) names the same destination.
    """
    plans = (("33", "6"), ("39", "3"), ("34", "6"), ("31", "6"), ("1", "415"))
    h = (intent_keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(17)
    which = (h % np.uint64(len(plans))).astype(np.int64)
    subs = ((h // np.uint64(8)) % np.uint64(10_000_000)).astype(np.int64)
    cc = pa.array([p[0] for p in plans]).take(pa.array(which))
    lead = pa.array([p[1] for p in plans]).take(pa.array(which))
    digits = pc.utf8_lpad(pa.array(subs).cast(pa.string()), width=7, padding="0")
    nsn = pc.binary_join_element_wise(lead, digits, "")
    return (
        pc.binary_join_element_wise("+", cc, nsn, ""),
        pc.binary_join_element_wise("00", cc, nsn, ""),
    )


def _ts(seconds: np.ndarray, origin: pd.Timestamp) -> pa.Array:
    """Seconds (float, NaN for none) since origin → Arrow timestamp[ns, UTC] array."""
    ns = np.round(seconds * 1e9)
    mask = np.isnan(ns)
    values = np.where(mask, 0, ns).astype(np.int64) + origin.value
    return pa.array(values, type=pa.timestamp("ns", tz="UTC"), mask=mask)


#: Records per generation chunk: bounds memory, and chunks run on every core.
CHUNK_RECORDS = 1_000_000


def _chunks(records: int, days: int) -> list[tuple[int, int, int]]:
    """Split the period into whole-day windows: (first day, number of days, records) each.

    Whole days keep the diurnal profile intact; records are split in proportion to days.
    """
    n_chunks = min(days, max(1, -(-records // CHUNK_RECORDS)))
    windows = np.array_split(np.arange(days), n_chunks)
    sizes = [int(records * len(w) // days) for w in windows]
    sizes[-1] += records - sum(sizes)
    return [(int(w[0]), len(w), n) for w, n in zip(windows, sizes, strict=True)]


def generate(
    out_dir: str | os.PathLike[str],
    *,
    records: int = 100_000,
    seed: int = 0,
    incidents: int = 2,
    days: int = 7,
    start: str = DEFAULT_START,
    formats: bool = True,
    workers: int | None = None,
) -> dict[str, Any]:
    """Generate a synthetic world and write it to ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Directory to write: ``records/`` (canonical Parquet), ``formats/asterisk/Master.csv``,
        ``formats/freeswitch/Master.csv``, ``truth.json`` and ``truth/`` (per-record ground
        truth: ``record_id``, ``call_key``, ``intent_key``, ``a_customer``, ``b_customer``).
    records : int
        Exact number of canonical records to generate.
    seed : int
        Random seed: the same seed gives byte-identical files, whatever ``workers`` is.
    incidents : int
        How many incidents to inject (0 gives a clean world).
    days : int
        Length of the observed period.
    start : str
        ISO-8601 start of the period (UTC).
    formats : bool
        Also write the source-format files.
    workers : int, optional
        Processes generating chunks of the period in parallel (default: one per core).

    Returns
    -------
    dict
        The ground truth also written to ``truth.json``.
    """
    if records < 1:
        raise ValueError(f"records must be at least 1, got {records}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    out = Path(out_dir)
    origin = pd.Timestamp(start)
    if origin.tzinfo is None:
        origin = origin.tz_localize("UTC")
    world, incident_list = _world_and_incidents(seed, records, incidents, days)
    subdirs = ["records", "truth", ".chunks"]
    subdirs += ["formats/asterisk", "formats/freeswitch"] if formats else []
    for sub in subdirs:
        (out / sub).mkdir(parents=True, exist_ok=True)
    chunks = _chunks(records, days)
    offsets = np.concatenate([[0], np.cumsum([c[2] for c in chunks])[:-1]])
    jobs = [
        (str(out), seed, records, incidents, days, origin.isoformat(), formats, i, c, int(o))
        for i, (c, o) in enumerate(zip(chunks, offsets, strict=True))
    ]
    n_workers = min(len(jobs), workers or os.cpu_count() or 1)
    if n_workers > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            results = list(pool.map(_write_chunk, jobs))
    else:
        results = [_write_chunk(job) for job in jobs]
    counts: dict[str, int] = {}
    for chunk_counts in results:
        for key, value in chunk_counts.items():
            counts[key] = counts.get(key, 0) + value
    if formats:
        for fmt in ("asterisk", "freeswitch"):
            with open(out / "formats" / fmt / "Master.csv", "wb") as sink:
                for i in range(len(jobs)):
                    piece = out / ".chunks" / f"{fmt}-{i:05d}.csv"
                    with open(piece, "rb") as src:
                        shutil.copyfileobj(src, sink, 16 * 2**20)
                    piece.unlink()
    (out / ".chunks").rmdir()

    truth = {
        "seed": seed,
        "records": records,
        "days": days,
        "start": origin.isoformat(),
        "timezone": DEFAULT_TIMEZONE,
        "default_region": DEFAULT_REGION,
        "incidents": [
            {
                "group": SWITCHES[i["switch"]],
                "start": (origin + pd.Timedelta(seconds=i["t0"])).isoformat(),
                "end": (origin + pd.Timedelta(seconds=i["t1"])).isoformat(),
                "indicators": ["asr", "ner", "pdd", "drop_ratio"],
            }
            for i in incident_list
        ],
        "counts": counts,
        "world": {
            "customers": len(world.region),
            "regions": [
                {
                    "name": r.name,
                    "country": r.country,
                    "prefix": r.prefix,
                    "switches": list(r.switches),
                }
                for r in REGIONS
            ],
            "plans": list(PLANS),
        },
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    _write_manifest(out, truth)
    write_service_model(out / "model.yaml")
    return truth


def _write_manifest(out: Path, truth: dict[str, Any]) -> None:
    """A run manifest, written last: the directory is a complete run like ``cemkit load``'s."""
    from cemkit.runs.store import Manifest, seal_manifest

    manifest = Manifest()
    manifest.add_section("synth", {
        "seed": truth["seed"], "records": truth["records"], "days": truth["days"],
        "incidents": len(truth["incidents"]), "counts": truth["counts"],
    })  # fmt: skip
    manifest.data["stages"] = ["synth"]
    # Generated data, no person behind it: the only input a one-off key may protect
    # (cemkit.privacy.enforce.run_key) and raw stages may read without --allow-raw.
    manifest.data["generated"] = {"by": "cemkit.synth", "seed": truth["seed"]}
    manifest.data["created_utc"] = truth["start"]  # keeps same seed → same bytes
    seal_manifest(out, manifest)


def _world_and_incidents(
    seed: int, records: int, incidents: int, days: int
) -> tuple[_World, list[dict[str, Any]]]:
    """The customer base and incidents: drawn from the seed alone, identical in every worker."""
    rng = np.random.default_rng([seed, 0])
    world = _World(rng, n_customers=max(200, min(records // 20, 2_000_000)))
    return world, _draw_incidents(rng, incidents, days)


def _write_chunk(job: tuple[Any, ...]) -> dict[str, int]:
    """Generate and write one chunk of the period (runs in a worker process)."""
    out_s, seed, records, incidents, days, origin_s, formats, index, chunk, row_offset = job
    out = Path(out_s)
    first_day, n_days, n_records = chunk
    world, incident_list = _world_and_incidents(seed, records, incidents, days)
    rng = np.random.default_rng([seed, 1 + index])
    table, truth_tbl, dialled, counts = _build_records(
        rng,
        world,
        incident_list,
        n_records,
        pd.Timestamp(origin_s),
        first_day=first_day,
        n_days=n_days,
        row_offset=row_offset,
        key_offset=index << 40,
    )
    pq.write_table(table, out / "records" / f"part-{index:05d}.parquet")
    pq.write_table(truth_tbl, out / "truth" / f"part-{index:05d}.parquet")
    if formats:
        voice_cdr = pc.and_(
            pc.equal(table["record_kind"], "cdr"), pc.equal(table["service"], "voice")
        )
        cdrs = table.filter(voice_cdr)
        parties = dialled.filter(voice_cdr)
        names, national = parties["name"], (parties["a"], parties["b"])
        local = _local_times(cdrs, DEFAULT_TIMEZONE)
        pieces = out / ".chunks"
        write_asterisk(
            cdrs,
            names,
            national,
            local,
            pieces / f"asterisk-{index:05d}.csv",
            row_offset=row_offset,
        )
        write_freeswitch(
            cdrs,
            names,
            national,
            local,
            pieces / f"freeswitch-{index:05d}.csv",
            row_offset=row_offset,
        )
        counts["voice_cdrs_in_formats"] = cdrs.num_rows
    return counts


def _draw_incidents(rng: np.random.Generator, n: int, days: int) -> list[dict[str, Any]]:
    if n > len(SWITCHES):
        raise ValueError(f"at most {len(SWITCHES)} incidents (one per switch), got {n}")
    chosen = rng.choice(len(SWITCHES), size=n, replace=False)
    result = []
    for sw in sorted(int(s) for s in chosen):
        day = int(rng.integers(1, max(2, days)))
        hour = int(rng.integers(8, 17))
        length_h = int(rng.integers(2, 5))
        t0 = (day * 24 + hour) * 3600.0
        result.append({"switch": sw, "t0": t0, "t1": t0 + length_h * 3600.0})
    return result


def _build_records(
    rng: np.random.Generator,
    world: _World,
    incident_list: list[dict[str, Any]],
    n_records: int,
    origin: pd.Timestamp,
    *,
    first_day: int,
    n_days: int,
    row_offset: int,
    key_offset: int,
) -> tuple[pa.Table, pa.Table, pa.Table, dict[str, int]]:
    """Draw intents → attempts → records (legs, partials, xDRs) and SMS, exactly n_records rows."""
    n_customers = len(world.region)
    # Expected rows per voice intent ≈ 1.9 (retries, second legs, xDRs, partials);
    # SMS fill the rest.
    n_intents = max(1, int(n_records * 0.85 / 1.9))
    caller = rng.choice(n_customers, size=n_intents, p=world.activity_p)
    on_net = rng.random(n_intents) < 0.6
    callee = rng.choice(n_customers, size=n_intents, p=world.activity_p)
    t_intent = _diurnal_times(rng, n_intents, first_day, n_days)

    # Up to three attempts per intent: retry after a failure with probability 0.45.
    max_attempts = 3
    att_intent = np.repeat(np.arange(n_intents), max_attempts)
    att_no = np.tile(np.arange(max_attempts), n_intents)
    gaps = rng.uniform(15, 90, size=(n_intents, max_attempts))
    gaps[:, 0] = 0
    att_time = t_intent[att_intent] + np.cumsum(gaps, axis=1).ravel()
    sw_of_caller = world.switch[caller][att_intent]
    in_incident = np.zeros(len(att_intent), dtype=bool)
    for inc in incident_list:
        in_incident |= (
            (sw_of_caller == inc["switch"]) & (att_time >= inc["t0"]) & (att_time < inc["t1"])
        )
    u = rng.random(len(att_intent))
    cdf_normal, cdf_incident = np.cumsum(_OUTCOME_P), np.cumsum(_INCIDENT_P)
    outcome = np.where(
        in_incident,
        np.searchsorted(cdf_incident, u * cdf_incident[-1], side="right"),
        np.searchsorted(cdf_normal, u * cdf_normal[-1], side="right"),
    ).astype(np.int8)
    retry = rng.random(len(att_intent)) < 0.45
    keep = np.ones((n_intents, max_attempts), dtype=bool)
    o2 = outcome.reshape(n_intents, max_attempts)
    r2 = retry.reshape(n_intents, max_attempts)
    for j in range(1, max_attempts):
        keep[:, j] = keep[:, j - 1] & (o2[:, j - 1] != 0) & r2[:, j - 1]
    keep_flat = keep.ravel()
    att_intent, att_no, att_time = att_intent[keep_flat], att_no[keep_flat], att_time[keep_flat]
    outcome, in_incident = outcome[keep_flat], in_incident[keep_flat]
    n_att = len(att_intent)

    # Timing of each attempt.
    answered = outcome == 0
    pdd = rng.lognormal(np.log(1400), 0.35, size=n_att) * np.where(in_incident, 2.8, 1.0)
    ring = rng.lognormal(np.log(7), 0.5, size=n_att)
    billsec = np.floor(np.clip(rng.lognormal(np.log(70), 1.3, size=n_att), 1, 4 * 3600))
    unanswered_len = np.select(
        [outcome == 1, outcome == 2, outcome == 4],
        [rng.uniform(25, 45, n_att), rng.uniform(1, 4, n_att), rng.uniform(3, 20, n_att)],
        rng.uniform(0, 3, n_att),
    )
    start = np.floor(att_time)  # CDRs carry whole seconds
    answer = np.where(answered, start + np.ceil((pdd / 1000) + ring), np.nan)
    end = np.where(answered, answer + billsec, start + np.floor(unanswered_len))
    billsec = np.where(answered, billsec, 0.0)
    drop_p = np.where(in_incident, _DROP_P_INCIDENT, _DROP_P)
    dropped = answered & (rng.random(n_att) < drop_p)
    cause = _choice_by_outcome(rng, outcome, _CAUSES, default=16)
    cause[dropped] = rng.choice(np.asarray(_DROP_CAUSES, dtype=np.int16), size=int(dropped.sum()))
    sip = _choice_by_outcome(rng, outcome, _SIP, default=200)
    released = np.where(
        answered,
        np.where(dropped, 2, rng.choice(2, size=n_att)),
        np.select([outcome == 4, outcome == 5], [0, 1], 2),
    )

    a_cust = caller[att_intent]
    b_cust = np.where(on_net[att_intent], callee[att_intent], -1)
    a_sw = world.switch[a_cust]
    b_sw = np.where(b_cust >= 0, world.switch[np.maximum(b_cust, 0)], -1)
    two_legs = (b_cust >= 0) & (b_sw != a_sw) & answered | (
        (b_cust >= 0) & (b_sw != a_sw) & np.isin(outcome, (1, 2, 4, 5))
    )
    probe_sees = rng.random(n_att) < 0.3

    # Records per attempt: partial records per leg, legs, one xDR when the probe sees it.
    n_partials = np.where(
        answered, np.maximum(1, np.ceil(billsec / config.PARTIAL_RECORD_INTERVAL_S)), 1
    ).astype(np.int64)
    per_attempt = n_partials * (1 + two_legs) + probe_sees
    # Signaling-only attempts: the probe saw an INVITE that never reached billing.
    xdr_only_share = 0.08
    cum = np.cumsum(per_attempt)
    voice_budget = int(n_records * 0.85)
    n_keep = int(np.searchsorted(cum, voice_budget, side="right"))
    n_xdr_only = min(
        int(n_keep * xdr_only_share * 0.3),
        max(0, n_records - int(cum[n_keep - 1]) if n_keep else n_records),
    )
    voice_rows = int(cum[n_keep - 1]) if n_keep else 0
    n_sms = n_records - voice_rows - n_xdr_only

    sl = slice(0, n_keep)
    cols = _expand_voice(
        rng,
        world,
        sl,
        att_intent,
        a_cust,
        b_cust,
        a_sw,
        b_sw,
        start,
        answer,
        end,
        billsec,
        outcome,
        cause,
        sip,
        released,
        pdd,
        two_legs,
        probe_sees,
        n_partials,
    )
    xonly = _xdr_only(rng, world, n_xdr_only, n_intents, n_att, (first_day, n_days))
    sms = _sms(rng, world, n_sms, n_intents + n_xdr_only, n_att + n_xdr_only, (first_day, n_days))

    parts = [cols, xonly, sms]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in cols}
    # Sort by start time (then a tiebreaker) so files look like what switches write.
    order = np.lexsort((merged["seq"], merged["start"]))
    merged = {k: v[order] for k, v in merged.items()}

    # Off-net parties: one external destination per intent (see _external_numbers).
    off_net = merged["b_customer"] < 0
    ext_e164, ext_dialled = _external_numbers(merged["intent_key"][off_net] + key_offset)
    ext_pos = pa.array(np.cumsum(off_net) - 1)
    a_num = world.e164.take(pa.array(np.maximum(merged["a_customer"], 0)))
    b_num = pc.if_else(
        pa.array(~off_net),
        world.e164.take(pa.array(np.maximum(merged["b_customer"], 0))),
        ext_e164.take(pc.max_element_wise(ext_pos, 0)) if len(ext_e164) else ext_e164,
    )
    n = len(merged["start"])
    merged["call_key"] += key_offset
    merged["intent_key"] += key_offset
    record_id = pc.binary_join_element_wise(
        "synth:", pa.array(np.arange(row_offset, row_offset + n)).cast(pa.string()), ""
    )
    kind = pa.array(["cdr", "xdr"]).take(pa.array(merged["is_xdr"].astype(np.int8)))
    source = pa.array(["switch", "sip-probe"]).take(pa.array(merged["is_xdr"].astype(np.int8)))
    service = pa.array(["voice", "sms"]).take(pa.array(merged["is_sms"].astype(np.int8)))
    outcome_arr = pa.array(list(outcomes.OUTCOMES)).take(pa.array(merged["outcome"]))
    leg = pa.array(["orig", "term", None]).take(pa.array(merged["leg"]))
    released_arr = pa.array(["caller", "callee", "network", None]).take(
        pa.array(merged["released"])
    )
    call_prefix = pa.array(["sw-", "sip-"]).take(pa.array(merged["is_xdr"].astype(np.int8)))
    call_id = pc.binary_join_element_wise(
        call_prefix,
        pa.array(merged["call_key"]).cast(pa.string()),
        pa.array(["-o", "-t", ""]).take(pa.array(merged["leg"])),
        "",
    )
    partial = merged["partial_seq"]
    arrays = {
        "record_id": record_id,
        "source": source,
        "record_kind": kind,
        "service": service,
        "a_number": a_num,
        "b_number": b_num,
        "a_number_kind": pa.array(np.full(n, "e164", dtype=object), pa.string()),
        "b_number_kind": pa.array(np.full(n, "e164", dtype=object), pa.string()),
        "start": _ts(merged["start"], origin),
        "answer": _ts(merged["answer"], origin),
        "end": _ts(merged["end"], origin),
        "duration_s": pa.array(merged["end"] - merged["start"]),
        "billsec_s": pa.array(merged["billsec"]),
        "outcome": outcome_arr,
        "cause_q850": pa.array(merged["cause"], pa.int16(), mask=merged["cause"] < 0),
        "sip_status": pa.array(merged["sip"], pa.int16(), mask=~merged["is_xdr"]),
        "released_by": released_arr,
        "call_id": call_id,
        "leg": leg,
        "partial_seq": pa.array(partial, pa.int32(), mask=partial == 0),
        "node": pa.array(list(SWITCHES)).take(pa.array(merged["switch"])),
        # missing is null, one way: an xDR-only attempt that measured no PDD has NaN here
        "pdd_ms": pa.array(
            np.round(merged["pdd"], 1), mask=~merged["is_xdr"] | np.isnan(merged["pdd"])
        ),
        "mos": pa.nulls(n, pa.float64()),
        "loss_ratio": pa.nulls(n, pa.float64()),
        "jitter_ms": pa.nulls(n, pa.float64()),
    }
    for f in CANONICAL:  # columns the PBX world has no value for (mobile identities, ...)
        arrays.setdefault(f.name, pa.nulls(n, f.type))
    table = pa.table(arrays, schema=CANONICAL)
    # As a GB PBX writes the parties: national for GB numbers, 00-prefixed otherwise.
    dialled = pa.table(
        {
            "a": world.national.take(pa.array(np.maximum(merged["a_customer"], 0))),
            "b": pc.if_else(
                pa.array(~off_net),
                world.national.take(pa.array(np.maximum(merged["b_customer"], 0))),
                ext_dialled.take(pc.max_element_wise(ext_pos, 0)) if len(ext_e164) else ext_dialled,
            ),
            "name": world.name.take(pa.array(np.maximum(merged["a_customer"], 0))),
        }
    )
    truth_tbl = pa.table(
        {
            "record_id": record_id,
            "call_key": pa.array(merged["call_key"]),
            "intent_key": pa.array(merged["intent_key"]),
            "a_customer": pa.array(merged["a_customer"]),
            "b_customer": pa.array(merged["b_customer"]),
        }
    )
    counts = {
        "voice_attempts": int(n_keep),
        "intents": int(np.count_nonzero(np.bincount(att_intent[sl]))) if n_keep else 0,
        "two_leg_calls": int(two_legs[sl].sum()),
        "partial_calls": int((n_partials[sl] > 1).sum()),
        "partial_records": int(n_partials[sl][n_partials[sl] > 1].sum() * 1),
        "xdr_with_cdr": int(probe_sees[sl].sum()),
        "xdr_only_attempts": int(n_xdr_only),
        "sms": int(n_sms),
        "cdr": int((~merged["is_xdr"]).sum()),
        "xdr": int(merged["is_xdr"].sum()),
    }
    return table, truth_tbl, dialled, counts


def _diurnal_times(rng: np.random.Generator, n: int, first_day: int, n_days: int) -> np.ndarray:
    """Seconds from the period start of n events on the diurnal profile, in the given days."""
    day = first_day + rng.integers(0, n_days, size=n)
    hour = rng.choice(24, size=n, p=_HOURLY)
    return day * 86_400.0 + hour * 3600.0 + rng.uniform(0, 3600, size=n)


def _expand_voice(
    rng: np.random.Generator,
    world: _World,
    sl: slice,
    att_intent: np.ndarray,
    a_cust: np.ndarray,
    b_cust: np.ndarray,
    a_sw: np.ndarray,
    b_sw: np.ndarray,
    start: np.ndarray,
    answer: np.ndarray,
    end: np.ndarray,
    billsec: np.ndarray,
    outcome: np.ndarray,
    cause: np.ndarray,
    sip: np.ndarray,
    released: np.ndarray,
    pdd: np.ndarray,
    two_legs: np.ndarray,
    probe_sees: np.ndarray,
    n_partials: np.ndarray,
) -> dict[str, np.ndarray]:
    """One row per (attempt, leg, partial) plus one xDR row per probed attempt."""
    idx = np.arange(sl.stop)
    interval = float(config.PARTIAL_RECORD_INTERVAL_S)
    rows: list[dict[str, np.ndarray]] = []
    for leg in (0, 1):
        attempts = idx if leg == 0 else idx[two_legs[: sl.stop]]
        reps = n_partials[attempts]
        att = np.repeat(attempts, reps)
        seq = np.arange(len(att)) - np.repeat(np.cumsum(reps) - reps, reps) + 1
        multi = np.repeat(reps > 1, reps)
        offset = 0.0 if leg == 0 else 1.0  # the terminating switch sees the call 1 s later
        # Partial k of an answered call covers [answer + (k-1)*I, answer + k*I) after the first.
        p_start = np.where(seq == 1, start[att], answer[att] + (seq - 1) * interval) + offset
        last = seq == np.repeat(reps, reps)
        p_end = np.where(last, end[att], answer[att] + seq * interval) + offset
        p_answer = np.where(seq == 1, answer[att] + offset, p_start)
        p_bill = np.where(np.isnan(answer[att]), 0.0, p_end - p_answer)
        rows.append(
            {
                "start": p_start,
                "answer": p_answer,
                "end": p_end,
                "billsec": p_bill,
                "outcome": outcome[att],
                "cause": np.where(last, cause[att], -1).astype(np.int16),
                "sip": sip[att],
                "released": np.where(last, released[att], 3),
                "pdd": pdd[att],
                "is_xdr": np.zeros(len(att), bool),
                "is_sms": np.zeros(len(att), bool),
                "leg": np.where(two_legs[att] | (b_cust[att] < 0), leg, 2).astype(np.int8),
                "partial_seq": np.where(multi, seq, 0).astype(np.int32),
                "switch": (a_sw[att] if leg == 0 else b_sw[att]).astype(np.int16),
                "a_customer": a_cust[att],
                "b_customer": b_cust[att],
                "call_key": att.astype(np.int64),
                "intent_key": att_intent[att].astype(np.int64),
                "seq": (att * 8 + leg * 4).astype(np.int64) * 64 + seq,
            }
        )
    probed = idx[probe_sees[: sl.stop]]
    jitter = rng.normal(0, 0.04, size=len(probed))
    rows.append(
        {
            "start": start[probed] - 0.2 + jitter,
            "answer": answer[probed] - 0.2 + jitter,
            "end": end[probed] + 0.1 + jitter,
            "billsec": billsec[probed],
            "outcome": outcome[probed],
            "cause": cause[probed],
            "sip": sip[probed],
            "released": released[probed],
            "pdd": pdd[probed],
            "is_xdr": np.ones(len(probed), bool),
            "is_sms": np.zeros(len(probed), bool),
            "leg": np.full(len(probed), 2, np.int8),
            "partial_seq": np.zeros(len(probed), np.int32),
            "switch": a_sw[probed].astype(np.int16),
            "a_customer": a_cust[probed],
            "b_customer": b_cust[probed],
            "call_key": probed.astype(np.int64),
            "intent_key": att_intent[probed].astype(np.int64),
            "seq": probed.astype(np.int64) * 512 + 511,
        }
    )
    # A non-final partial record has no release cause (-1 → null) and no releasing side (3).
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def _standalone(
    world: _World, a: np.ndarray, b: np.ndarray, key_base: int, call_base: int
) -> dict[str, np.ndarray]:
    """Fields of records that are a call and an intent of their own (no legs, no partials)."""
    n = len(a)
    keys = np.arange(n, dtype=np.int64)
    return {
        "leg": np.full(n, 2, np.int8),
        "partial_seq": np.zeros(n, np.int32),
        "switch": world.switch[a].astype(np.int16),
        "a_customer": a,
        "b_customer": b,
        "call_key": call_base + keys,
        "intent_key": key_base + keys,
        "seq": (call_base + keys) * 512,
    }


def _xdr_only(
    rng: np.random.Generator,
    world: _World,
    n: int,
    key_base: int,
    call_base: int,
    days: tuple[int, int],
) -> dict[str, np.ndarray]:
    """Signaling attempts that failed before any switch wrote a CDR."""
    a = rng.choice(len(world.region), size=n, p=world.activity_p)
    b = np.where(rng.random(n) < 0.6, rng.choice(len(world.region), size=n), -1)
    t = np.round(_diurnal_times(rng, n, *days), 3)
    sips = rng.choice(np.array([408, 500, 503, 404], np.int16), size=n, p=(0.4, 0.2, 0.3, 0.1))
    outcome_names = [outcomes.outcome_from_sip(int(s)) for s in (408, 500, 503, 404)]
    oc_lookup = {
        s: outcomes.OUTCOMES.index(o)
        for s, o in zip((408, 500, 503, 404), outcome_names, strict=True)
    }
    outcome = (
        np.array([oc_lookup[int(s)] for s in sips], dtype=np.int8) if n else np.zeros(0, np.int8)
    )
    cause = (
        np.array([outcomes.SIP_TO_Q850[int(s)] for s in sips], dtype=np.int16)
        if n
        else np.zeros(0, np.int16)
    )
    dur = np.round(rng.uniform(0.5, 32, size=n), 3)
    return {
        "start": t,
        "answer": np.full(n, np.nan),
        "end": t + dur,
        "billsec": np.zeros(n),
        "outcome": outcome,
        "cause": cause,
        "sip": sips,
        "released": np.full(n, 2),
        "pdd": np.full(n, np.nan),
        "is_xdr": np.ones(n, bool),
        "is_sms": np.zeros(n, bool),
        **_standalone(world, a, b, key_base, call_base),
    }


def _sms(
    rng: np.random.Generator,
    world: _World,
    n: int,
    key_base: int,
    call_base: int,
    days: tuple[int, int],
) -> dict[str, np.ndarray]:
    a = rng.choice(len(world.region), size=n, p=world.activity_p)
    b = np.where(rng.random(n) < 0.7, rng.choice(len(world.region), size=n), -1)
    t = np.floor(_diurnal_times(rng, n, *days))
    failed = rng.random(n) < 0.03
    return {
        "start": t,
        "answer": np.where(failed, np.nan, t),
        "end": t,
        "billsec": np.zeros(n),
        "outcome": np.where(failed, 3, 0).astype(np.int8),
        "cause": np.where(failed, 41, 16).astype(np.int16),
        "sip": np.zeros(n, np.int16),
        "released": np.full(n, 3),
        "pdd": np.full(n, np.nan),
        "is_xdr": np.zeros(n, bool),
        "is_sms": np.ones(n, bool),
        **_standalone(world, a, b, key_base, call_base),
    }


class _LocalClock:
    """Formats whole-second UTC times as local ``YYYY-MM-DD HH:MM:SS`` strings, fast.

    Formatting with a time zone costs ~1 µs a value, so each second of the observed span is
    formatted once and records gather their strings by offset.
    """

    def __init__(self, first: pd.Timestamp, last: pd.Timestamp, tz: str):
        self.lo = int(first.floor("s").value // 10**9)
        hi = int(last.ceil("s").value // 10**9)
        secs = pa.array(np.arange(self.lo, hi + 1, dtype=np.int64))
        local = pc.cast(pc.cast(secs, pa.timestamp("s", tz="UTC")), pa.timestamp("s", tz=tz))
        self.strings = pc.strftime(local, format="%Y-%m-%d %H:%M:%S")

    def format(self, ts: pa.ChunkedArray | pa.Array) -> pa.Array:
        secs = pc.cast(pc.cast(ts, pa.timestamp("s", tz="UTC")), pa.int64())
        if isinstance(secs, pa.ChunkedArray):
            secs = secs.combine_chunks()
        return self.strings.take(pc.subtract(secs, self.lo))


def _local_times(cdrs: pa.Table, tz: str) -> dict[str, pa.Array]:
    """start/answer/end of CDRs as local time strings."""
    if cdrs.num_rows == 0:
        return {c: pa.array([], pa.string()) for c in ("start", "answer", "end")}
    first = pd.Timestamp(pc.min(cdrs["start"]).as_py())
    last = pd.Timestamp(pc.max(cdrs["end"]).as_py())
    clock = _LocalClock(first, last, tz)
    return {c: clock.format(cdrs[c]) for c in ("start", "answer", "end")}


def write_asterisk(
    cdrs: pa.Table,
    names: pa.Array,
    national: tuple[pa.Array, pa.Array],
    local: dict[str, pa.Array],
    path: Path,
    row_offset: int = 0,
) -> None:
    """Write voice CDRs as Asterisk ``cdr_csv`` (18 columns, no header, local time).

    Text fields are double-quoted with inner quotes doubled, integers unquoted, and an unset
    answer time an empty unquoted field, as ``cdr_csv.c`` writes them.
    """
    n = cdrs.num_rows
    src, dst = national
    # B numbers dialled externally are not in the synthetic numbering plan: keep their 00 form.
    disposition = {o: outcomes.OUTCOME_TO_ASTERISK[o] for o in outcomes.OUTCOMES}
    disp_arr = pa.array([disposition[o] for o in outcomes.OUTCOMES]).take(
        pc.index_in(cdrs["outcome"], value_set=pa.array(list(outcomes.OUTCOMES)))
    )
    clid = pc.binary_join_element_wise('"', names, '" <', src, ">", "")
    seq = pa.array(np.arange(row_offset, row_offset + n)).cast(pa.string())
    epoch = pc.cast(pc.cast(cdrs["start"], pa.timestamp("s", tz="UTC")), pa.int64())
    uniqueid = pc.binary_join_element_wise(pc.cast(epoch, pa.string()), seq, ".")
    channel = pc.binary_join_element_wise("SIP/", cdrs["node"], "-", pc.utf8_lpad(seq, 8, "0"), "")
    answered = pc.is_valid(cdrs["answer"])
    dstchannel = pc.if_else(
        answered, pc.binary_join_element_wise("SIP/trunk-", pc.utf8_lpad(seq, 8, "0"), ""), ""
    )
    empty = pa.array(np.full(n, "", dtype=object), pa.string())
    table = pa.table(
        {
            "accountcode": empty,
            "src": src,
            "dst": dst,
            "dcontext": pa.array(np.full(n, "from-internal", dtype=object), pa.string()),
            "clid": clid,
            "channel": channel,
            "dstchannel": dstchannel,
            "lastapp": pa.array(np.full(n, "Dial", dtype=object), pa.string()),
            "lastdata": pc.binary_join_element_wise("SIP/trunk/", dst, ",60", ""),
            "start": local["start"],
            "answer": local["answer"],
            "end": local["end"],
            "duration": pc.cast(cdrs["duration_s"], pa.int64()),
            "billsec": pc.cast(cdrs["billsec_s"], pa.int64()),
            "disposition": disp_arr,
            "amaflags": pa.array(np.full(n, "DOCUMENTATION", dtype=object), pa.string()),
            "uniqueid": uniqueid,
            "userfield": empty,
        }
    )
    _write_csv(table, path)


def write_freeswitch(
    cdrs: pa.Table,
    names: pa.Array,
    national: tuple[pa.Array, pa.Array],
    local: dict[str, pa.Array],
    path: Path,
    row_offset: int = 0,
) -> None:
    """Write voice CDRs as FreeSWITCH ``mod_cdr_csv`` with the default "example" template.

    Every field is double-quoted (the template is
    ``"${caller_id_name}","${caller_id_number}",...``);
    An unanswered call has an empty quoted ``answer_stamp``.
    """
    n = cdrs.num_rows
    src, dst = national
    code_names: dict[int, str] = {}
    for name, code in outcomes.FREESWITCH_CAUSE_CODES.items():
        code_names.setdefault(code, name)
    code_names[0] = "UNSPECIFIED"
    cause = cdrs["cause_q850"].to_numpy(zero_copy_only=False)
    oc = cdrs["outcome"].to_numpy(zero_copy_only=False)
    cancelled = oc == outcomes.CANCELLED
    cause_names = np.array(
        [code_names.get(int(c), "NORMAL_CLEARING") for c in range(128)], dtype=object
    )
    hangup = np.where(
        cancelled,
        "ORIGINATOR_CANCEL",
        cause_names[np.nan_to_num(cause.astype(float), nan=16).astype(int) % 128],
    )
    uid = pc.cast(pa.array(np.arange(row_offset, row_offset + n)), pa.string())
    uuid = pc.binary_join_element_wise("5e1f0000-0000-4000-8000-", pc.utf8_lpad(uid, 12, "0"), "")
    answered = pc.is_valid(cdrs["answer"])
    table = pa.table(
        {
            "caller_id_name": names,
            "caller_id_number": src,
            "destination_number": dst,
            "context": pa.array(np.full(n, "default", dtype=object), pa.string()),
            "start_stamp": local["start"],
            "answer_stamp": pc.fill_null(local["answer"], ""),
            "end_stamp": local["end"],
            "duration": pc.cast(pc.cast(cdrs["duration_s"], pa.int64()), pa.string()),
            "billsec": pc.cast(pc.cast(cdrs["billsec_s"], pa.int64()), pa.string()),
            "hangup_cause": pa.array(hangup, pa.string()),
            "uuid": uuid,
            "bleg_uuid": pc.if_else(answered, pc.utf8_replace_slice(uuid, 0, 4, "b1e9"), ""),
            "accountcode": src,
            "read_codec": pc.if_else(answered, "PCMA", ""),
            "write_codec": pc.if_else(answered, "PCMA", ""),
        }
    )
    _write_csv(table, path)


def _write_csv(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed", delimiter=",")
    with pa.OSFile(str(path), "wb") as sink:
        pacsv.write_csv(table, sink, write_options=options)


# --- the service model of the generated world (used by ``cemkit kqi``) --------------------------
#: Country names of the ISO codes the world uses (group names are the codes, as in truth.json).
_COUNTRY_NAMES = {"GB": "United Kingdom", "DE": "Germany", "US": "United States", "FR": "France"}


def write_service_model(path: str | os.PathLike[str]) -> Path:
    """Write the service model of the synthetic world: country -> region -> switch.

    Group names are those of ``truth.json``: countries by ISO code (``GB``), regions by name
    (``London``), switches by node name (``lon-sw1``, the ``group`` of every incident). Countries
    match the callers' country codes; regions and switches the record's ``node`` (a region's
    area prefix, e.g. ``+44161``, can be longer than the 4 digits the default privacy policy
    keeps, so it is given as a description, not a rule). Thresholds are
    relative to each group's own baseline with a significance test, so that a clean world raises
    no alert and an injected incident (answer ratio down, failures and post-dial delay up) does.
    """
    lines = [
        "# Service model of a cemkit synthetic world (written by cemkit.synth).",
        "# Countries hold the customers whose numbers start with their country code; regions and",
        "# switches the records their switches wrote for them. Works on raw numbers and on numbers",
        "# protected with a kept prefix of at least 3 digits (the default policy keeps 4).",
        "name: synthetic-world",
        "version: 1",
        "numbers: {column: a_number}",
        "groups:",
    ]
    for country in dict.fromkeys(r.country for r in REGIONS):
        ccs = sorted({r.cc for r in REGIONS if r.country == country})
        prefixes = ", ".join(f'"+{cc}"' for cc in ccs)
        lines.append(f"  - name: {country}")
        lines.append(f"    description: {_COUNTRY_NAMES.get(country, country)}")
        lines.append(f"    match: {{prefixes: [{prefixes}]}}")
        for reg in (r for r in REGIONS if r.country == country):
            switches = ", ".join(reg.switches)
            lines.append(f"  - name: {reg.name}")
            lines.append(f"    parent: {country}")
            lines.append(f'    description: "numbers {reg.prefix}..."')
            lines.append(f"    match: {{switches: [{switches}]}}")
            for sw in reg.switches:
                lines.append(f"  - name: {sw}")
                lines.append(f"    parent: {reg.name}")
                lines.append(f"    match: {{switches: [{sw}]}}")
    lines += [
        "# Every group: a share of bad outcomes at least twice its usual share, with z >= 5;",
        "# post-dial delay (median) 1.8 times its usual value.",
        "thresholds:",
        "  - {indicator: asr, relative: 2.0, min_z: 5, min_attempts: 30, severity: major}",
        "  - {indicator: ner, relative: 2.0, min_z: 5, min_attempts: 30, severity: critical}",
        "  - {indicator: pdd_p50_ms, relative: 1.8, min_attempts: 20, severity: minor}",
        "  - {indicator: drop_ratio, relative: 3.0, min_z: 5, min_attempts: 30, severity: major}",
        "alerting: {bucket: 15min, baseline_min_attempts: 30}",
    ]
    target = Path(path)
    target.write_text("\n".join(lines) + "\n")
    return target
