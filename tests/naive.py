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


# --- protect: tokens and the record-id prefilter as main computed them (issue 15) -----------


def token(value, purpose_key, keep_digits, length, min_hidden=4):
    """One value's token, one ``hmac.digest`` and one regex: ``<kept prefix>#<hex>``."""
    import hashlib
    import hmac
    import re

    if value is None:
        return None
    if value == "":
        return ""
    prefix = ""
    if keep_digits:
        m = re.fullmatch(rf"(\+?[0-9]{{{keep_digits}}})[0-9]{{{min_hidden},}}", value)
        prefix = m.group(1) if m else ""
    digest = hmac.digest(purpose_key, value.encode("utf-8"), hashlib.sha256).hex()
    return f"{prefix}#{digest[:length]}"


def record_id_may_hold_numbers(value):
    """KeepSourceName's prefilter as three regexes (RE2 through pyarrow, as on main)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = r"\d(?:[ .()/-]{0,2}\d){6}"
    arr = pa.array([value], pa.string())
    in_tag = pc.match_substring_regex(arr, digits + ".*:")[0].as_py()
    two_colons = pc.match_substring_regex(arr, ":.*:")[0].as_py()
    anywhere = pc.match_substring_regex(arr, digits)[0].as_py()
    return bool(in_tag or (not two_colons and anywhere))
