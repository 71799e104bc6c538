"""Privacy benchmark: tokenize, FF3-1 and scan_text throughput against what a user would write.

    python -m benchmarks.bench_privacy [--size 10000000] [--distinct 1000000]
        [--baseline-rows 1000000] [--ff3-rows 20000] [--texts 1000000]
        [--text-distinct 10000] [--presidio-rows 5000]

- tokenize: cemkit (distinct values, one-shot HMAC, Arrow take) vs ``Series.map`` with
  ``hmac.new(...).hexdigest()`` per value;
- fpe: cemkit (distinct values, batched FF3-1: one AES-ECB call per Feistel round over all
  values) vs the ``ff3`` package (``FF3Cipher.encrypt``) per value;
- scan_text: cemkit (distinct texts, vectorized prefilter, presidio) vs presidio
  ``AnalyzerEngine.analyze`` per row with the same recognizers and the same replacement.

Baselines that would take many minutes run on the first rows of the same column (sizes given
above); their throughput is measured there, and their output is checked to equal cemkit's on
those rows. Figures are values (rows) per second of wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.common import machine, versions
from cemkit.privacy.keys import Key
from cemkit.privacy.operators.fpe import Fpe, fpe_key, fpe_tweak
from cemkit.privacy.operators.scan_text import ScanText
from cemkit.privacy.operators.tokenize import Tokenize
from cemkit.privacy.policy import FpeRule, ScanTextRule, TokenizeRule
from cemkit.privacy.scanner import merge, redact

KEY = Key.from_material(bytes(range(32)), key_id="bench")
STR = pd.StringDtype("pyarrow")


def numbers(size: int, distinct: int, seed: int = 1) -> pd.Series:
    """``size`` E.164 numbers (+44 and 10 digits) drawn from ``distinct`` different ones."""
    rng = np.random.default_rng(seed)
    pool = rng.choice(10**10, size=distinct, replace=False) + 10**10  # 11 digits, first is 1
    picks = pool[rng.integers(0, distinct, size=size)]
    text = pc.binary_join_element_wise("+44", pc.utf8_slice_codeunits(
        pc.cast(pa.array(picks), pa.string()), 1), "")  # fmt: skip
    return pd.Series(pd.arrays.ArrowStringArray(text))


def caller_texts(size: int, distinct: int, seed: int = 2) -> pd.Series:
    """A free-text column like caller-id names / user fields, with repeated values."""
    rng = np.random.default_rng(seed)
    first = ["Ann", "Bob", "Carla", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jon"]
    last = ["Lee", "Smith", "Okafor", "Novak", "Garcia", "Tanaka", "Muller", "Rossi"]
    forms = []
    for i in range(distinct):
        name = f"{first[i % len(first)]} {last[(i // 10) % len(last)]}"
        num = f"+4416329{i:05d}"
        kind = i % 6
        forms.append([
            f'"{name}" <{num}>',
            f"sip:{num}@pbx{i % 7}.example.net",
            f"{name.split()[0].lower()}.{i}@example.org",
            "Outbound Call",
            f"ext {100 + i % 900}",
            f"callback 01632 {i:06d} re ticket {i}",
        ][kind])  # fmt: skip
    picks = rng.zipf(1.3, size=size) % distinct
    return pd.Series(pd.array(np.array(forms, dtype=object)[picks], dtype=STR))


def timed(fn, *args):
    """Result, wall seconds and CPU seconds of this process (the machine may be shared)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w0, time.process_time() - c0


def result(what, baseline, ours_rows, ours_s, ours_cpu, base_rows, base_s, base_cpu, same,
           note=None) -> dict:  # fmt: skip
    return {"what": what, "baseline": baseline, "ours_rows": ours_rows, "ours_s": ours_s,
            "ours_cpu": ours_cpu, "base_rows": base_rows, "base_s": base_s,
            "base_cpu": base_cpu, "same": same, "note": note}  # fmt: skip


def bench_tokenize(tns: pd.Series, baseline_rows: int) -> dict:
    op = Tokenize(TokenizeRule(action="tokenize"), "a_number", KEY)
    ours, t_ours, c_ours = timed(op.apply, tns)
    k = KEY.derive("tokenize")
    sample = tns.iloc[:baseline_rows]

    def per_value(s: pd.Series) -> pd.Series:
        return s.map(lambda v: "#" + hmac.new(k, v.encode(), hashlib.sha256).hexdigest()[:16])

    base, t_base, c_base = timed(per_value, sample)
    same = bool((base.astype(STR).to_numpy() == ours.iloc[:baseline_rows].to_numpy()).all())
    return result(
        "tokenize (HMAC-SHA256)",
        "Series.map(hmac.new(...).hexdigest()) per value",
        len(tns),
        t_ours,
        c_ours,
        len(sample),
        t_base,
        c_base,
        same,
    )


def bench_fpe(tns: pd.Series, ff3_rows: int) -> dict:
    from ff3 import FF3Cipher

    rule = FpeRule(action="fpe", keep_digits=4)
    op = Fpe(rule, "a_number", KEY)
    ours, t_ours, c_ours = timed(op.apply, tns)
    cipher = FF3Cipher(fpe_key(KEY).hex(), fpe_tweak(KEY, rule).hex())
    sample = tns.iloc[:ff3_rows]

    def per_value(s: pd.Series) -> pd.Series:
        return s.map(lambda v: v[:5] + cipher.encrypt(v[5:]))

    base, t_base, c_base = timed(per_value, sample)
    same = bool((base.astype(STR).to_numpy() == ours.iloc[:ff3_rows].to_numpy()).all())
    return result(
        "fpe (FF3-1, 8 of 12 digits)",
        "ff3 package FF3Cipher.encrypt per value",
        len(tns),
        t_ours,
        c_ours,
        len(sample),
        t_base,
        c_base,
        same,
    )


def bench_fpe_distinct(tns: pd.Series, ff3_rows: int) -> dict:
    """The cipher alone: batched FF3-1 vs ff3 on the same distinct digit strings."""
    from ff3 import FF3Cipher

    from cemkit.privacy import fpe

    uniques = pa.array(pd.unique(tns.to_numpy()).astype(object)).cast(pa.string())
    digits = pc.utf8_slice_codeunits(uniques, 5)
    key, tweak = fpe_key(KEY), fpe_tweak(KEY, FpeRule(action="fpe"))
    ours, t_ours, c_ours = timed(fpe.crypt_arrow, digits, key, tweak)
    cipher = FF3Cipher(key.hex(), tweak.hex())
    sample = digits.slice(0, ff3_rows).to_pylist()
    base, t_base, c_base = timed(lambda xs: [cipher.encrypt(x) for x in xs], sample)
    same = base == ours.slice(0, ff3_rows).to_pylist()
    return result(
        "FF3-1 cipher only, distinct values",
        "ff3 package FF3Cipher.encrypt per value",
        len(digits),
        t_ours,
        c_ours,
        len(sample),
        t_base,
        c_base,
        same,
    )


def bench_scan(texts: pd.Series, presidio_rows: int) -> dict:
    op = ScanText(ScanTextRule(action="scan_text"), "src_clid", KEY)
    analyzer = op.scanner.analyzer  # build presidio once, outside both timings
    ours, t_ours, c_ours = timed(op.apply, texts)
    entities = op.scanner.entities
    sample = texts.iloc[:presidio_rows]

    def per_row(s: pd.Series) -> pd.Series:
        def one(text: str) -> str:
            found = merge(analyzer.analyze(text, language="en", entities=entities))
            return redact(text, found, op._replacement) if found else text

        return s.map(one)

    base, t_base, c_base = timed(per_row, sample)
    same = bool((base.astype(STR).to_numpy() == ours.iloc[:presidio_rows].to_numpy()).all())
    changed = int((ours.iloc[:presidio_rows] != sample).sum())
    note = (
        f"{texts.nunique()} distinct texts in {len(texts):,} rows; {changed} of "
        f"{len(sample)} baseline rows had findings"
    )
    baseline = "AnalyzerEngine.analyze per row, same recognizers"
    return result(
        "scan_text (presidio, no model)",
        baseline,
        len(texts),
        t_ours,
        c_ours,
        len(sample),
        t_base,
        c_base,
        same,
        note,
    )


def report(results: list[dict], args: argparse.Namespace) -> str:
    command = (
        f"python -m benchmarks.bench_privacy --size {args.size} --distinct {args.distinct} "
        f"--baseline-rows {args.baseline_rows} --ff3-rows {args.ff3_rows} --texts {args.texts} "
        f"--text-distinct {args.text_distinct} --presidio-rows {args.presidio_rows}"
    )
    packages = ("cemkit", "pandas", "pyarrow", "numpy", "cryptography", "ff3",
                "presidio-analyzer", "phonenumbers")  # fmt: skip
    lines = [
        f"command: {command}",
        f"machine: {machine()}",
        f"versions: {versions(packages)}",
        "",
        (
            "| what | cemkit rows | cemkit wall s | cemkit rows/s | baseline | baseline rows | "
            "baseline rows/s | speed-up (wall) | speed-up (CPU) | same output |"
        ),
        "|---|---:|---:|---:|---|---:|---:|---:|---:|:-:|",
    ]
    for r in results:
        ours, base = r["ours_rows"] / r["ours_s"], r["base_rows"] / r["base_s"]
        cpu_ours = r["ours_rows"] / max(r["ours_cpu"], 1e-9)
        cpu = cpu_ours / (r["base_rows"] / max(r["base_cpu"], 1e-9))
        lines.append(
            f"| {r['what']} | {r['ours_rows']:,} | {r['ours_s']:.2f} | {ours:,.0f} | "
            f"{r['baseline']} | {r['base_rows']:,} | {base:,.0f} | {ours / base:,.0f}x | "
            f"{cpu:,.0f}x | {'yes' if r['same'] else 'NO'} |"
        )
    notes = [f"- {r['what']}: {r['note']}" for r in results if r.get("note")]
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=10_000_000, help="rows of the number column")
    p.add_argument("--distinct", type=int, default=1_000_000, help="distinct numbers")
    p.add_argument("--baseline-rows", type=int, default=1_000_000, help="rows for per-value hmac")
    p.add_argument("--ff3-rows", type=int, default=20_000, help="rows for the ff3 baseline")
    p.add_argument("--texts", type=int, default=1_000_000, help="rows of the free-text column")
    p.add_argument("--text-distinct", type=int, default=10_000, help="distinct texts")
    p.add_argument("--presidio-rows", type=int, default=5_000, help="rows for per-row presidio")
    args = p.parse_args(argv)
    tns = numbers(args.size, args.distinct)
    results = [bench_tokenize(tns, args.baseline_rows), bench_fpe(tns, args.ff3_rows),
               bench_fpe_distinct(tns, args.ff3_rows)]  # fmt: skip
    del tns
    results.append(bench_scan(caller_texts(args.texts, args.text_distinct), args.presidio_rows))
    print(report(results, args))
    return 0 if all(r["same"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
