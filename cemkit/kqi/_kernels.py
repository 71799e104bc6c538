"""Numba kernels of the KQI rollup: integer counters summed per cell in one pass.

NumPy arrays in, NumPy arrays out; no pandas here (the stumpy pattern). A *cell* is an integer
index the caller computed (object code x time bucket, or a customer code); every counter of
:data:`cemkit.kqi.formulas.COUNTERS` is summed per cell in one pass over the records, whatever
the number of counters.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from cemkit import config
from cemkit.correlate._hash import same_bytes
from cemkit.kqi.formulas import COUNTERS

#: Marks a missing time (NaT) in int64 nanoseconds.
NULL_TIME = np.iinfo(np.int64).min


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def sum_by_cell(cell, values, replace_row, replacement, n_cells):  # pragma: no cover - compiled
    """Sum every row of ``values`` per cell, and count the records of each cell.

    Parameters
    ----------
    cell : int64[n]
        Cell of each record, in ``[0, n_cells)``; negative: the record is left out.
    values : int64[c, n]
        One row per counter (any memory layout).
    replace_row : int
        A row of ``values`` read from ``replacement`` instead (-1: none); lets the caller
        override one counter without copying the whole block.
    replacement : int64[n]
        The values of row ``replace_row``.
    n_cells : int
        Number of cells.

    Returns
    -------
    (int64[c, n_cells], int64[n_cells])
        Sums per counter and cell; records per cell.
    """
    n_counters = values.shape[0]
    n = cell.shape[0]
    out = np.zeros((n_counters, n_cells), dtype=np.int64)
    count = np.zeros(n_cells, dtype=np.int64)
    for i in range(n):
        k = cell[i]
        if k >= 0:
            count[k] += 1
    for j in range(n_counters):
        row = out[j]
        if j == replace_row:
            for i in range(n):
                k = cell[i]
                if k >= 0:
                    row[k] += replacement[i]
        else:
            src = values[j]
            for i in range(n):
                k = cell[i]
                if k >= 0:
                    row[k] += src[i]
    return out, count


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def first_start(code, time, use, n_codes):  # pragma: no cover - compiled
    """Earliest ``time`` per code over the records with ``use`` (NULL_TIME when none).

    Parameters
    ----------
    code : int64[n]
        Code of each record (negative: no code).
    time : int64[n]
        Times; NULL_TIME for missing ones (never the minimum).
    use : bool[n]
        Records that take part.
    n_codes : int
        Number of codes.
    """
    out = np.full(n_codes, NULL_TIME, dtype=np.int64)
    for i in range(code.shape[0]):
        c = code[i]
        t = time[i]
        if c < 0 or not use[i] or t == NULL_TIME:
            continue
        if out[c] == NULL_TIME or t < out[c]:
            out[c] = t
    return out


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def grouped_quantiles(row, value, count, start, reps, target, n_targets, qs):  # pragma: no cover
    """Exact quantiles (numpy's "linear" method) of values sent to one or more targets each.

    Entry ``i`` (value ``value[i]`` occurring ``count[i]`` times, from source row ``row[i]``)
    belongs to every target ``target[start[r] : start[r] + reps[r]]`` of its row ``r``: a leaf
    row of a rollup and each of its ancestors, say. One pass over the entries in value order,
    no sort per target.

    Parameters
    ----------
    row : int64[n]
        Source row of each entry.
    value : float64[n]
        Values, non-decreasing (the caller sorts them once).
    count : int64[n]
        How often each value occurs (>= 1).
    start, reps : int64[rows]
        Where each source row's targets start in ``target``, and how many it has.
    target : int64[m]
        Target of each (source row, k).
    n_targets : int
        Number of targets.
    qs : float64[nq]
        Quantiles in [0, 1].

    Returns
    -------
    float64[nq, n_targets]
        ``numpy.quantile(numpy.repeat(values of the target, counts), q)``; NaN without values.
    """
    nq = qs.shape[0]
    n = row.shape[0]
    total = np.zeros(n_targets, dtype=np.int64)
    for i in range(n):
        r = row[i]
        for k in range(reps[r]):
            total[target[start[r] + k]] += count[i]
    lo = np.full((nq, n_targets), -1, dtype=np.int64)
    hi = np.full((nq, n_targets), -1, dtype=np.int64)
    frac = np.zeros((nq, n_targets))
    for q in range(nq):
        for t in range(n_targets):
            if total[t] > 0:
                h = (total[t] - 1) * qs[q]
                low = np.int64(np.floor(h))
                lo[q, t] = low
                hi[q, t] = min(low + 1, total[t] - 1)
                frac[q, t] = h - low
    v_lo = np.full((nq, n_targets), np.nan)
    v_hi = np.full((nq, n_targets), np.nan)
    seen = np.zeros(n_targets, dtype=np.int64)
    for i in range(n):
        r = row[i]
        v = value[i]
        c = count[i]
        for k in range(reps[r]):
            t = target[start[r] + k]
            s0 = seen[t]
            s1 = s0 + c
            for q in range(nq):
                if s0 <= lo[q, t] < s1:
                    v_lo[q, t] = v
                if s0 <= hi[q, t] < s1:
                    v_hi[q, t] = v
            seen[t] = s1
    out = np.full((nq, n_targets), np.nan)
    for q in range(nq):
        for t in range(n_targets):
            if total[t] > 0:
                f = frac[q, t]
                diff = v_hi[q, t] - v_lo[q, t]
                # numpy's _lerp: from the nearer end for f >= 0.5
                if f >= 0.5:
                    out[q, t] = v_hi[q, t] - diff * (1 - f)
                else:
                    out[q, t] = v_lo[q, t] + diff * f
    return out


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def match_labels(offsets, data, valid, cand_offsets, cand_data):  # pragma: no cover - compiled
    """Which of a few candidate strings each string of an Arrow string array equals.

    Parameters
    ----------
    offsets, data, valid : arrays
        The Arrow string array (offsets int32 or int64, UTF-8 bytes, validity per row).
    cand_offsets, cand_data : int64[k + 1], uint8[...]
        The candidates, packed the same way (distinct).

    Returns
    -------
    int8[n]
        Index of the candidate each row equals; -1: none of them, or null.
    """
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.int8)
    for i in range(n):
        out[i] = _match_label(offsets, data, valid, i, cand_offsets, cand_data)
    return out


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def match_labels_at(
    offsets, data, valid, rows, cand_offsets, cand_data
):  # pragma: no cover - compiled
    """:func:`match_labels` of the rows ``rows`` only (int64 positions): one int8 per row.

    For a few rows of a column: no take of their strings first.
    """
    out = np.empty(rows.shape[0], dtype=np.int8)
    for i in range(rows.shape[0]):
        out[i] = _match_label(offsets, data, valid, rows[i], cand_offsets, cand_data)
    return out


@njit(inline="always")
def _match_label(offsets, data, valid, i, cand_offsets, cand_data):  # pragma: no cover - compiled
    """Index of the candidate row ``i`` equals; -1: none of them, or null."""
    if not valid[i]:
        return -1
    s = offsets[i]
    ln = offsets[i + 1] - s
    for c in range(cand_offsets.shape[0] - 1):
        cs = cand_offsets[c]
        if cand_offsets[c + 1] - cs == ln and same_bytes(data, s, cand_data, cs, ln):
            return c
    return -1


# --- per-record counters (cemkit.kqi.formulas.contribution_block) ------------------------------
#: Rows the counter kernels write, in order: cemkit.kqi.formulas.COUNTERS (checked there).
COUNTER_ORDER = (
    "attempts", "xdr_only_attempts", "answered", "user_determined", "short_calls", "drops",
    "conversation_ms", "pdd_count", "pdd_us", "invites", "invites_2xx", "invites_3xx",
    "invites_effective", "invites_ineffective", "sessions_completed", "mos_count", "mos_micro",
    "repeat_attempts", "data_sessions", "data_abnormal", "data_up_bytes", "data_down_bytes",
    "data_duration_ms", "data_sessions_geran", "data_sessions_utran", "data_sessions_eutran",
    "data_sessions_nr", "data_sessions_other", "sms_attempts", "sms_failures", "registrations",
    "registrations_ok", "rrd_count", "rrd_us", "registrations_challenged",
    "registrations_unknown",
)  # fmt: skip
N_COUNTERS = len(COUNTER_ORDER)
if COUNTER_ORDER != COUNTERS:  # pragma: no cover - a programming error
    raise ImportError("cemkit.kqi._kernels.COUNTER_ORDER must equal formulas.COUNTERS")

# bits of the label columns (cemkit.kqi.formulas.counter_inputs sets them)
SERVICE_VOICE, SERVICE_DATA, SERVICE_SMS = 1, 2, 4
KIND_CDR, KIND_XDR, KIND_REGISTRATION = 1, 2, 4
OUTCOME_ANSWERED, OUTCOME_USER_DETERMINED, OUTCOME_REG_RESOLVED = 1, 2, 4
OUTCOME_REG_SUCCESS, OUTCOME_REG_CHALLENGED, OUTCOME_REG_UNKNOWN = 8, 16, 32
MATCH_XDR_ONLY, MATCH_MATCHED = 1, 2
LEG_TERM = 1
#: rat bits: 1 << k for the k-th of DATA_RATS (the last, "other", has none)


@njit(inline="always")
def _as_int(x):  # pragma: no cover - compiled
    # numpy's rint then a cast to int64, as np.where(..., np.rint(x), 0) assigned to int64
    return np.int64(np.rint(x))


@njit(inline="always")
def _finite(x):  # pragma: no cover - compiled
    # numpy.nan_to_num: NaN -> 0, +-inf -> the largest finite float
    if np.isnan(x):
        return 0.0
    if np.isinf(x):
        return 1.7976931348623157e308 if x > 0 else -1.7976931348623157e308
    return x


@njit(inline="always")
def _put(idx, val, n, j, v):  # pragma: no cover - compiled
    # the pair is always written; kept (n moved on) only when the value is not 0
    idx[n] = j
    val[n] = v
    return n + (v != 0)


@njit(inline="always")
def _in(x, values):  # pragma: no cover - compiled
    r = False
    for v in values:  # every value compared: no early exit, no branch
        r |= x == v
    return r


@njit(inline="always")  # a call per record would pass (and refcount) every array each time
def _counters(i, service, kind, outcome, match, rat, leg, partial, billsec, cause, pdd, status,
              mos, closing, duration, vol_up, vol_down, first, use_first, n_rats, normal, seer,
              isa, abnormal_closing, short_s, idx, val):  # pragma: no cover - compiled  # fmt: skip
    """The counters record ``i`` sets, as (counter index, value) pairs; returns how many.

    Written into ``idx`` / ``val`` (int64[N_COUNTERS] each); each index at most once, the
    counters left out are 0. A record sets a few of the 36 (a voice call ~8): the callers add
    those, not a row of zeros. Branch-free: every condition is evaluated with ``&`` / ``|`` and
    each pair written, the count moved on only when the value is not 0 (the records' kinds
    mix at random, and a mispredicted branch per condition cost ~2x the whole pass).
    """
    n = 0
    sv = service[i]
    kd = kind[i]
    oc = outcome[i]
    mt = match[i]
    voice = (sv & SERVICE_VOICE) != 0
    is_cdr = (kd & KIND_CDR) != 0
    cdr = voice & is_cdr
    xdr = voice & ((kd & KIND_XDR) != 0)
    xdr_only = xdr & ((mt & MATCH_XDR_ONLY) != 0)
    p = partial[i]
    first_part = np.isnan(p) | (p <= 1)
    call = cdr | xdr_only
    attempt = call & first_part
    answered_rec = call & ((oc & OUTCOME_ANSWERED) != 0)
    answered = attempt & answered_rec
    b = _finite(billsec[i])
    c = cause[i]
    abnormal = (not np.isnan(c)) & (not _in(c, normal))
    n = _put(idx, val, n, 0, np.int64(attempt))
    n = _put(idx, val, n, 1, np.int64(attempt & xdr_only))
    n = _put(idx, val, n, 2, np.int64(answered))
    n = _put(idx, val, n, 3, np.int64(attempt & ((oc & OUTCOME_USER_DETERMINED) != 0)))
    n = _put(idx, val, n, 4, np.int64(answered & (b < short_s)))
    n = _put(idx, val, n, 5, np.int64(answered_rec & abnormal))
    n = _put(idx, val, n, 6, np.int64(_as_int(b * 1000.0) if answered_rec else 0))
    d = pdd[i]
    has_pdd = (attempt | xdr) & (not np.isnan(d))
    n = _put(idx, val, n, 7, np.int64(has_pdd))
    n = _put(idx, val, n, 8, np.int64(_as_int(_finite(d) * 1000.0) if has_pdd else 0))
    s = status[i]
    resp = (xdr | (cdr & first_part & ((mt & MATCH_MATCHED) != 0))) & (s >= 200)
    ok = resp & (s < 300)
    n = _put(idx, val, n, 9, np.int64(resp))
    n = _put(idx, val, n, 10, np.int64(ok))
    n = _put(idx, val, n, 11, np.int64(resp & (s >= 300) & (s < 400)))
    n = _put(idx, val, n, 12, np.int64(resp & _in(s, seer)))
    n = _put(idx, val, n, 13, np.int64(resp & _in(s, isa)))
    n = _put(idx, val, n, 14, np.int64(ok & (not abnormal)))
    mo = mos[i]
    has_mos = voice & (not np.isnan(mo))
    n = _put(idx, val, n, 15, np.int64(has_mos))
    n = _put(idx, val, n, 16, np.int64(_as_int(_finite(mo) * 1e6) if has_mos else 0))
    n = _put(idx, val, n, 17, np.int64(attempt & use_first & (not first[i])))
    du = duration[i]
    data = ((sv & SERVICE_DATA) != 0) & is_cdr
    data_first = data & first_part
    n = _put(idx, val, n, 18, np.int64(data_first))
    n = _put(idx, val, n, 19, np.int64(data & _in(closing[i], abnormal_closing)))
    n = _put(idx, val, n, 20, np.int64(vol_up[i] if data else 0))
    n = _put(idx, val, n, 21, np.int64(vol_down[i] if data else 0))
    n = _put(idx, val, n, 22, np.int64(_as_int(_finite(du) * 1000.0) if data else 0))
    r = rat[i]
    known = False
    for k in range(n_rats):
        bit = ((r >> k) & 1) != 0
        n = _put(idx, val, n, 23 + k, np.int64(data_first & bit))
        known |= bit
    n = _put(idx, val, n, 23 + n_rats, np.int64(data_first & (not known)))
    sms = ((sv & SERVICE_SMS) != 0) & is_cdr & ((leg[i] & LEG_TERM) == 0)
    n = _put(idx, val, n, 28, np.int64(sms))
    n = _put(idx, val, n, 29, np.int64(sms & ((oc & OUTCOME_ANSWERED) == 0)))
    reg = (kd & KIND_REGISTRATION) != 0
    success = reg & ((oc & OUTCOME_REG_SUCCESS) != 0)
    has_rrd = success & (not np.isnan(du))
    n = _put(idx, val, n, 30, np.int64(reg & ((oc & OUTCOME_REG_RESOLVED) != 0)))
    n = _put(idx, val, n, 31, np.int64(success))
    n = _put(idx, val, n, 32, np.int64(has_rrd))
    n = _put(idx, val, n, 33, np.int64(_as_int(_finite(du) * 1e6) if has_rrd else 0))
    n = _put(idx, val, n, 34, np.int64(reg & ((oc & OUTCOME_REG_CHALLENGED) != 0)))
    n = _put(idx, val, n, 35, np.int64(reg & ((oc & OUTCOME_REG_UNKNOWN) != 0)))
    return n


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def contribution_rows(service, kind, outcome, match, rat, leg, partial, billsec, cause, pdd,
                      status, mos, closing, duration, vol_up, vol_down, first, use_first, n_rats,
                      normal, seer, isa, abnormal_closing,
                      short_s):  # pragma: no cover - compiled  # fmt: skip
    """Every counter of every record: int64[n, N_COUNTERS] (see ``formulas.counter_inputs``)."""
    n = service.shape[0]
    block = np.zeros((n, N_COUNTERS), dtype=np.int64)
    idx = np.zeros(N_COUNTERS, dtype=np.int64)
    val = np.zeros(N_COUNTERS, dtype=np.int64)
    for i in range(n):
        n_set = _counters(i, service, kind, outcome, match, rat, leg, partial, billsec, cause,
                          pdd, status, mos, closing, duration, vol_up, vol_down, first,
                          use_first, n_rats, normal, seer, isa, abnormal_closing, short_s, idx,
                          val)  # fmt: skip
        for q in range(n_set):
            block[i, idx[q]] = val[q]
    return block


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def record_flags(service, kind, match, partial, pdd):  # pragma: no cover - compiled
    """Per record: bit 0 its ``attempts`` counter, bit 1 its ``pdd_count`` (before any summing)."""
    n = service.shape[0]
    out = np.zeros(n, dtype=np.uint8)
    for i in range(n):  # the conditions of _counters' attempts and pdd_count, branch-free
        voice = (service[i] & SERVICE_VOICE) != 0
        cdr = voice & ((kind[i] & KIND_CDR) != 0)
        xdr = voice & ((kind[i] & KIND_XDR) != 0)
        xdr_only = xdr & ((match[i] & MATCH_XDR_ONLY) != 0)
        p = partial[i]
        attempt = (cdr | xdr_only) & (np.isnan(p) | (p <= 1))
        has_pdd = (attempt | xdr) & (not np.isnan(pdd[i]))
        out[i] = np.uint8(attempt) | (np.uint8(has_pdd) << 1)
    return out


@njit(inline="always")
def _string_hash(data, s, ln):  # pragma: no cover - compiled
    h = np.uint64(14695981039346656037)  # FNV-1a
    for j in range(ln):
        h = (h ^ np.uint64(data[s + j])) * np.uint64(1099511628211)
    return h


@njit(inline="always")
def _find_slot(offsets, data, table, i, insert):  # pragma: no cover - compiled
    """The slot of row ``i``'s key in ``table`` (inserted when ``insert``; -1: absent).

    ``table[slot]`` holds (a row with the slot's key or -1, the key's hash, a value): one cache
    line per probe; bytes are compared only when the hashes are equal.
    """
    cap = table.shape[0]
    s = offsets[i]
    ln = offsets[i + 1] - s
    h = np.int64(_string_hash(data, s, ln) >> np.uint64(1))
    slot = h & (cap - 1)
    while True:
        r = table[slot, 0]
        if r < 0:
            if insert:
                table[slot, 0] = i
                table[slot, 1] = h
                return slot
            return -1
        if table[slot, 1] == h:
            rs = offsets[r]
            if offsets[r + 1] - rs == ln and same_bytes(data, rs, data, s, ln):
                return slot
        slot = (slot + 1) & (cap - 1)


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def first_start_by_string(offsets, data, valid, time, use, all_rows):  # pragma: no cover
    """Per record: the earliest ``time`` of the ``use`` records with the same string key.

    :func:`first_start` keyed by the strings of an Arrow string array themselves (an intent
    id), through one open-addressing hash table of the ``use`` rows' keys: no dictionary of
    every row's key is built.

    Parameters
    ----------
    offsets, data, valid : arrays
        The keys as an Arrow string array (offsets int32 or int64, bytes, validity per row).
    time : int64[n]
        Times; NULL_TIME for missing ones (never the minimum).
    use : bool[n]
        Records that take part.
    all_rows : bool
        Also look up the rows without ``use`` (else they get NULL_TIME).

    Returns
    -------
    int64[n]
        The earliest time of the row's key; NULL_TIME for a null key or one no ``use`` row
        with a time has.
    """
    n = offsets.shape[0] - 1
    m = 0
    for i in range(n):
        if use[i] and valid[i]:
            m += 1
    cap = 16
    while cap < 2 * m:
        cap *= 2
    table = np.empty((cap, 3), dtype=np.int64)  # (row, hash, earliest time) per slot
    table[:, 0] = -1
    table[:, 2] = NULL_TIME
    out = np.full(n, NULL_TIME, dtype=np.int64)
    slot_of = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if use[i] and valid[i]:
            slot = _find_slot(offsets, data, table, i, True)
            slot_of[i] = slot
            t = time[i]
            if t != NULL_TIME and (table[slot, 2] == NULL_TIME or t < table[slot, 2]):
                table[slot, 2] = t
    for i in range(n):
        if not valid[i] or not (use[i] or all_rows):
            continue
        slot = slot_of[i] if use[i] else _find_slot(offsets, data, table, i, False)
        if slot >= 0:
            out[i] = table[slot, 2]
    return out


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def sum_counters(cells, n_cells, picks, n_picks, service, kind, outcome, match, rat, leg, partial,
                 billsec, cause, pdd, status, mos, closing, duration, vol_up, vol_down, first,
                 use_first, n_rats, normal, seer, isa, abnormal_closing,
                 short_s):  # pragma: no cover - compiled  # fmt: skip
    """Each record's counters once, added to its cell of every celling (the picked ones only).

    One pass over the records: each record's counters are computed once, then added to its
    cell of every celling, only the counters ``picks[j, :n_picks[j]]`` of celling ``j`` (the
    per-customer sums of the experience score need 9 of the 36): a table of tens of thousands
    of customers then fits in cache 4x better.

    Parameters
    ----------
    cells : int64[k, n]
        Cell of each record in each of ``k`` cellings (negative: left out of that one).
    n_cells : int64[k]
        Cells of each celling.
    picks : int64[k, N_COUNTERS]
        Per celling, the indices (into ``COUNTERS``) of the counters it sums, in its order.
    n_picks : int64[k]
        How many of ``picks[j]`` celling ``j`` sums.

    Returns
    -------
    (int64[sum(n_cells * n_picks)], int64[sum(n_cells)])
        Sums, celling after celling, each a row-major (cell, picked counter) table flattened;
        records per cell (the cellings one after another).
    """
    k = cells.shape[0]
    n = cells.shape[1]
    base = np.zeros(k, dtype=np.int64)
    cbase = np.zeros(k, dtype=np.int64)
    for j in range(1, k):
        base[j] = base[j - 1] + n_cells[j - 1] * n_picks[j - 1]
        cbase[j] = cbase[j - 1] + n_cells[j - 1]
    total = base[k - 1] + n_cells[k - 1] * n_picks[k - 1] if k else 0
    n_total = cbase[k - 1] + n_cells[k - 1] if k else 0
    out = np.zeros(total, dtype=np.int64)
    count = np.zeros(n_total, dtype=np.int64)
    # where each counter goes in each celling's row (-1: not summed there)
    slot = np.full((k, N_COUNTERS), -1, dtype=np.int64)
    for j in range(k):
        for m in range(n_picks[j]):
            slot[j, picks[j, m]] = m
    idx = np.zeros(N_COUNTERS, dtype=np.int64)
    val = np.zeros(N_COUNTERS, dtype=np.int64)
    for i in range(n):
        used = False
        for j in range(k):
            if cells[j, i] >= 0:
                used = True
        if not used:
            continue
        n_set = _counters(i, service, kind, outcome, match, rat, leg, partial, billsec, cause,
                          pdd, status, mos, closing, duration, vol_up, vol_down, first,
                          use_first, n_rats, normal, seer, isa, abnormal_closing, short_s, idx,
                          val)  # fmt: skip
        for j in range(k):
            c = cells[j, i]
            if c >= 0:
                count[cbase[j] + c] += 1
                row = base[j] + c * n_picks[j]
                for q in range(n_set):  # only the counters the record sets
                    at = slot[j, idx[q]]
                    if at >= 0:
                        out[row + at] += val[q]
    return out, count


@njit(cache=config.NUMBA_CACHE, nogil=config.NUMBA_NOGIL, fastmath=config.NUMBA_FASTMATH)
def numbered_strings(offsets, data, valid):  # pragma: no cover - compiled
    """The strings as integers, when all are one head followed by a decimal number.

    Record ids (and so intent ids) are often a fixed source label and a counter
    (``synth:17``). When every non-null string is the same head (the first one's) followed by
    1 to 18 digits without a leading zero (``0`` alone allowed), the number identifies the
    string: equal strings, equal numbers, and no two strings share one.

    Parameters
    ----------
    offsets, data, valid : arrays
        An Arrow string array (offsets int32 or int64, bytes, validity per row).

    Returns
    -------
    (int64[n], bool)
        The number of each string (-1 for null) and whether every string had that form (the
        numbers mean nothing when it is False).
    """
    n = offsets.shape[0] - 1
    keys = np.full(n, -1, dtype=np.int64)
    head_start = np.int64(-1)
    head_len = np.int64(-1)
    for i in range(n):
        if not valid[i]:
            continue
        s = np.int64(offsets[i])
        e = np.int64(offsets[i + 1])
        p = e
        while p > s and data[p - 1] >= 48 and data[p - 1] <= 57:
            p -= 1
        nd = e - p
        if nd == 0 or nd > 18 or (nd > 1 and data[p] == 48):
            return keys, False
        if head_start < 0:
            head_start, head_len = s, p - s
        elif p - s != head_len or not same_bytes(data, s, data, head_start, head_len):
            return keys, False
        v = np.int64(0)
        for q in range(p, e):
            v = v * 10 + (data[q] - 48)
        keys[i] = v
    return keys, True
