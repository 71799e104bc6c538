"""Slow, obviously-correct references for the correlation kernels (the stumpy tests/naive.py idea).

Plain Python over lists: every rule written out once, no sorting tricks. Same inputs and outputs
as the kernels in cemkit.correlate._kernels.
"""

from __future__ import annotations

import math

import numpy as np

NULL = np.iinfo(np.int64).min
INF = math.inf


def asof(lkey, ltime, rkey, rtime, tolerance=-1, direction="backward", allow_exact=True):
    """Right position per left row: brute force over every right row."""
    out = []
    for i in range(len(lkey)):
        best_b = best_f = None
        if lkey[i] >= 0 and ltime[i] != NULL:
            t = int(ltime[i])
            for j in range(len(rkey)):
                if rkey[j] != lkey[i] or rtime[j] == NULL:
                    continue
                r = int(rtime[j])
                before = r <= t if allow_exact else r < t
                after = r >= t if allow_exact else r > t
                # backward: latest time; among equal times the last row
                ok_b = before and (tolerance < 0 or t - r <= tolerance)
                if ok_b and (best_b is None or r >= int(rtime[best_b])):
                    best_b = j
                # forward: earliest time; among equal times the first row
                ok_f = after and (tolerance < 0 or r - t <= tolerance)
                if ok_f and (best_f is None or r < int(rtime[best_f])):
                    best_f = j
        if direction == "backward":
            out.append(-1 if best_b is None else best_b)
        elif direction == "forward":
            out.append(-1 if best_f is None else best_f)
        else:
            if best_b is None:
                out.append(-1 if best_f is None else best_f)
            elif best_f is None:
                out.append(best_b)
            else:
                db = int(ltime[i]) - int(rtime[best_b])
                df = int(rtime[best_f]) - int(ltime[i])
                out.append(best_b if db <= df else best_f)
    return np.array(out, dtype=np.int64)


def nearest_pairs(key, time, side, tolerance):
    """Every candidate pair, sorted by (distance, side-0 row, side-1 row), taken greedily."""
    n = len(key)
    cands = []
    for i in range(n):
        for j in range(n):
            if side[i] != 0 or side[j] != 1:
                continue
            if key[i] < 0 or key[i] != key[j] or time[i] == NULL or time[j] == NULL:
                continue
            d = abs(int(time[i]) - int(time[j]))
            if d <= tolerance:
                cands.append((d, i, j))
    partner = [-1] * n
    for _, i, j in sorted(cands):
        if partner[i] == -1 and partner[j] == -1:
            partner[i] = j
            partner[j] = i
    return np.array(partner, dtype=np.int64)


def stitch(key, seq, start, end, chain, gap):
    """(label, rank, flags) per row, group by group."""
    n = len(key)
    label = list(range(n))
    rank = [0] * n
    flags = [0] * n
    groups: dict[int, list[int]] = {}
    for i in range(n):
        if key[i] >= 0:
            groups.setdefault(int(key[i]), []).append(i)

    def num(v):
        return INF if v == NULL else int(v)

    for rows in groups.values():
        if not chain[rows[0]]:
            order = sorted(
                rows, key=lambda i: (INF if seq[i] < 0 else int(seq[i]), num(start[i]), i)
            )
            for r, i in enumerate(order):
                label[i] = order[0]
                rank[i] = r
            seqs = [int(seq[i]) for i in rows if seq[i] >= 0]
            f = 0
            if len(set(seqs)) < len(seqs):
                f |= 4
            if seqs and sorted(set(seqs)) != list(range(1, max(seqs) + 1)):
                f |= 2
            for a in rows:
                for b in rows:
                    later_seq = seq[a] >= 0 and seq[b] >= 0 and seq[a] < seq[b]
                    known = start[a] != NULL and start[b] != NULL
                    if later_seq and known and start[b] < start[a]:
                        f |= 1
            for i in rows:
                flags[i] = f
        else:
            order = sorted(rows, key=lambda i: (num(start[i]), i))
            head, k = order[0], 0
            for r, i in enumerate(order):
                if r > 0:
                    prev = order[r - 1]
                    ok = start[i] != NULL and end[prev] != NULL
                    if ok and abs(int(start[i]) - int(end[prev])) <= gap:
                        k += 1
                    else:
                        head, k = i, 0
                label[i] = head
                rank[i] = k
    return (np.array(label, np.int64), np.array(rank, np.int64), np.array(flags, np.int8))


def sessions(key, start, end, answered, window, close_on_answer):
    """(label, rank) per row: walk each key's attempts in time order."""
    n = len(key)
    label = list(range(n))
    rank = [0] * n
    groups: dict[int, list[int]] = {}
    for i in range(n):
        if key[i] >= 0 and start[i] != NULL:
            groups.setdefault(int(key[i]), []).append(i)
    for rows in groups.values():
        order = sorted(rows, key=lambda i: (int(start[i]), i))
        head, k = order[0], 0
        for r, i in enumerate(order):
            if r > 0:
                prev = order[r - 1]
                ref = int(end[prev]) if end[prev] != NULL else int(start[prev])
                closed = close_on_answer and bool(answered[prev])
                if int(start[i]) - ref <= window and not closed:
                    k += 1
                else:
                    head, k = i, 0
            label[i] = head
            rank[i] = k
    return np.array(label, np.int64), np.array(rank, np.int64)


def bound_contributions(unit, cell, cell_priority, record_priority, max_cells, max_records):
    """Keep mask: per unit its max_cells most preferred cells, in each its max_records records."""
    keep = [False] * len(unit)
    by_unit: dict[int, dict[int, list[int]]] = {}
    for i in range(len(unit)):
        if unit[i] >= 0:
            by_unit.setdefault(int(unit[i]), {}).setdefault(int(cell[i]), []).append(i)
    for cells in by_unit.values():
        ranked = sorted(cells, key=lambda c: (int(cell_priority[cells[c][0]]), c))
        for c in ranked[:max_cells]:
            rows = sorted(cells[c], key=lambda i: (int(record_priority[i]), i))
            for i in rows[:max_records]:
                keep[i] = True
    return np.array(keep, dtype=bool)


# --- frame-level references: the correlators as main had them (0c535fe), on naive kernels ------
# The fast correlators (one factorization, one shared sort, one gather) must give exactly these
# frames. Keys are pandas.factorize codes of the key columns; the kernels are the references above
# (nearest_pairs applied key by key, which is the same rule: rows of two keys never pair).


def nearest_pairs_by_key(key, time, side, tolerance):
    """:func:`nearest_pairs`, run separately on the rows of each key (same result, less work)."""
    partner = np.full(len(key), -1, np.int64)
    rows_of: dict[int, list[int]] = {}
    for i in range(len(key)):
        if key[i] >= 0:
            rows_of.setdefault(int(key[i]), []).append(i)
    for rows in rows_of.values():
        sub = nearest_pairs(key[rows], time[rows], side[rows], tolerance)
        for a, b in enumerate(sub):
            if b >= 0:
                partner[rows[a]] = rows[b]
    return partner


def _ref_key(records, columns, null_is_value=None):
    import pandas as pd

    key = np.zeros(len(records), np.int64)
    bad = np.zeros(len(records), bool)
    for j, c in enumerate(columns):
        keep_null = bool(null_is_value and null_is_value[j])
        codes, uniques = pd.factorize(records[c], use_na_sentinel=not keep_null)
        bad |= codes < 0
        key = key * (len(uniques) + 1) + codes
    return np.where(bad, -1, key)


def _ref_time(s):
    from cemkit.correlate._frames import time_ns

    return time_ns(s)


def _ref_bool(s):
    return s.fillna(False).to_numpy(dtype=bool)


def _ref_take(s, idx, index):
    """main's ``_frames.take(..., as_if_missing=True)``: NumPy ints → float64, bools → object."""
    import pandas as pd

    ok = idx >= 0
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        out = np.full(idx.size, np.nan)
        out[ok] = s.to_numpy()[idx[ok]]
        return pd.Series(out, index=index, name=s.name)
    if isinstance(dtype, np.dtype) and dtype.kind in "fcmM":
        values = s.to_numpy()
        out = np.empty(idx.size, dtype)
        out[ok] = values[idx[ok]]
        out[~ok] = np.array("NaT", dtype) if dtype.kind in "mM" else np.nan
        return pd.Series(out, index=index, name=s.name)
    if isinstance(dtype, np.dtype):
        out = np.full(idx.size, np.nan, dtype=object)
        out[ok] = np.asarray(s.to_numpy(), dtype=object)[idx[ok]]
        return pd.Series(out, index=index, name=s.name, dtype=object)
    return pd.Series(s.array.take(idx, allow_fill=True), index=index, name=s.name)


def _ref_absorb(records, partner, keeper, prefix, columns):
    import pandas as pd

    matched = partner >= 0
    kept = np.flatnonzero(~(matched & ~keeper))
    out = records.iloc[kept]
    idx = np.where(matched[kept] & keeper[kept], partner[kept], -1)
    added = {prefix + c: _ref_take(records[c], idx, out.index) for c in columns
             if c in records.columns}  # fmt: skip
    return pd.concat([out, pd.DataFrame(added, index=out.index)], axis=1)


def ref_stitch(records, gap="1s", by=("record_kind", "node", "leg")):
    """main's ``stitch`` on pandas records (reductions by pandas groupby over every group)."""
    import pandas as pd

    from cemkit.correlate import _frames

    by = list(by)
    gap_ns = _frames.delta_ns(gap, _frames.time_kind(records["start"]), "gap")
    has_ref = records["call_id"].notna().to_numpy(dtype=bool)
    kref = _ref_key(records, [*by, "call_id"], [True] * len(by) + [False])
    kpar = _ref_key(records, [*by, "a_number", "b_number"], [True] * len(by) + [False] * 2)
    top = int(kref.max()) + 1 if len(kref) else 0
    key = np.where(has_ref, kref, np.where(kpar >= 0, kpar + top, -1))
    seq = records["partial_seq"].to_numpy(dtype=np.int64, na_value=-1)
    label, rank, flags = stitch(key, seq, _ref_time(records["start"]),
                                _ref_time(records["end"]), ~has_ref, gap_ns)  # fmt: skip
    n = len(records)
    reps = np.flatnonzero(label == np.arange(n))
    out = records.iloc[reps].copy()
    group_of = np.full(n, -1, np.int64)
    group_of[reps] = np.arange(reps.size)
    group = group_of[label]
    sizes = np.bincount(group, minlength=reps.size)
    g = records.reset_index(drop=True).groupby(group, sort=True)
    multi = sizes > 1

    def put(c, values):
        col = out[c].array.copy()
        col[multi] = pd.Series(values.array).astype(records[c].dtype).array[multi]
        out[c] = col

    if multi.any():
        for c, how in [("start", "min"), ("answer", "min"), ("end", "max"),
                       ("duration_s", "sum"), ("billsec_s", "sum"), ("volume_up_bytes", "sum"),
                       ("volume_down_bytes", "sum"), ("mos", "mean"), ("loss_ratio", "mean"),
                       ("jitter_ms", "mean")]:  # fmt: skip
            if c in records.columns:
                r = getattr(g[c], how)()
                if how == "sum":
                    r = r.where(g[c].count() > 0)
                put(c, r.reindex(np.arange(reps.size)))
        last_rank = pd.Series(rank).groupby(group).transform("max").to_numpy()
        is_last = np.flatnonzero(rank == last_rank)
        last = np.empty(reps.size, np.int64)
        last[group[is_last]] = is_last
        for c in ("outcome", "cause_q850", "sip_status", "released_by", "closing_cause"):
            if c in records.columns:
                out[c] = records[c].iloc[last].set_axis(out.index)
        pseq = out["partial_seq"].copy()
        pseq[multi] = pd.NA
        out["partial_seq"] = pseq
    f = flags[reps]
    out["src_partials"] = pd.array(sizes, dtype="Int32")
    out["src_partials_out_of_order"] = pd.array((f & 1) != 0, dtype="boolean")
    out["src_partials_missing"] = pd.array((f & 2) != 0, dtype="boolean")
    out["src_partials_duplicate"] = pd.array((f & 4) != 0, dtype="boolean")
    return out


_PARTIES = ("service", "a_number", "b_number")


def ref_pair_legs(records, tolerance="5s"):
    """main's ``pair_legs`` on pandas records."""
    import pandas as pd

    from cemkit.correlate import _frames
    from cemkit.correlate.pair_legs import TERM_FIELDS

    tol = _frames.delta_ns(tolerance, _frames.time_kind(records["start"]), "tolerance")
    is_cdr = _ref_bool(records["record_kind"] == "cdr")
    side = np.full(len(records), 2, np.int8)
    side[is_cdr & _ref_bool(records["leg"] == "orig")] = 0
    side[is_cdr & _ref_bool(records["leg"] == "term")] = 1
    partner = nearest_pairs_by_key(_ref_key(records, _PARTIES), _ref_time(records["start"]),
                                   side, tol)  # fmt: skip
    keeper = _ref_bool(records["leg"] == "orig")
    out = _ref_absorb(records, partner, keeper, "src_term_", TERM_FIELDS)
    kept = ~((partner >= 0) & ~keeper)
    out["src_paired"] = pd.array(((partner >= 0) & keeper)[kept], dtype="boolean")
    return out


def ref_match(records, tolerance="5s"):
    """main's ``match`` on pandas records."""
    import pandas as pd

    from cemkit.correlate import _frames
    from cemkit.correlate.match import XDR_FIELDS

    tol = _frames.delta_ns(tolerance, _frames.time_kind(records["start"]), "tolerance")
    is_xdr = _ref_bool(records["record_kind"] == "xdr")
    is_cdr = _ref_bool(records["record_kind"] == "cdr")
    side = np.full(len(records), 2, np.int8)
    side[is_xdr] = 0
    side[is_cdr] = 1
    partner = nearest_pairs_by_key(_ref_key(records, _PARTIES), _ref_time(records["start"]),
                                   side, tol)  # fmt: skip
    out = _ref_absorb(records, partner, is_cdr, "src_xdr_", XDR_FIELDS)
    kept = ~((partner >= 0) & is_xdr)
    status = np.full(len(records), None, dtype=object)
    status[is_cdr] = "cdr_only"
    status[is_cdr & (partner >= 0)] = "matched"
    status[is_xdr] = "xdr_only"
    out["src_match"] = pd.array(status[kept], dtype="string[pyarrow]")
    return out


def _ref_sessions(records, window, close_on_answer):
    from cemkit.correlate import _frames

    win = _frames.delta_ns(window, _frames.time_kind(records["start"]), "window")
    return sessions(_ref_key(records, _PARTIES), _ref_time(records["start"]),
                    _ref_time(records["end"]), _ref_bool(records["outcome"] == "answered"),
                    win, close_on_answer)  # fmt: skip


def ref_sessionize_records(records, window="120s", close_on_answer=True):
    """main's ``sessionize(..., output="records")`` on pandas records."""
    import pandas as pd

    label, rank = _ref_sessions(records, window, close_on_answer)
    out = records.copy(deep=False)
    out["src_intent_id"] = records["record_id"].iloc[label].to_numpy()
    out["src_intent_id"] = out["src_intent_id"].astype(records["record_id"].dtype)
    out["src_attempt"] = pd.array(rank + 1, dtype="Int32")
    return out


def ref_with_signaling(calls):
    """main's ``cemkit.runs.library.with_signaling``."""
    filled = {}
    for name in ("pdd_ms", "sip_status", "mos", "loss_ratio", "jitter_ms"):
        src = f"src_xdr_{name}"
        if name in calls.columns and src in calls.columns:
            filled[name] = calls[name].fillna(calls[src].astype(calls[name].dtype))
    return calls.assign(**filled)


def ref_correlate(records, gap="1s", pair_tolerance="5s", match_tolerance="5s", window="120s"):
    """main's correlate stages on one partition: stitch, pair, match, signaling, intents."""
    calls = ref_match(ref_pair_legs(ref_stitch(records, gap), pair_tolerance), match_tolerance)
    return ref_sessionize_records(ref_with_signaling(calls), window)
