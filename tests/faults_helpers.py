"""Shared pieces of the fault tests: a synthetic Asterisk world, run comparison, leak search."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

KEY = "5be0c2a17d94f3e68a1b0c9d2e4f6a8b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e2f"


def run_kwargs(world: Path) -> dict:
    truth = json.loads((world / "truth.json").read_text())
    return {"format": "asterisk", "policy": "default", "model": world / "model.yaml",
            "tz": truth["timezone"], "default_region": truth["default_region"],
            "blocksize": 1 << 20}  # fmt: skip


def cli_args(world: Path, out: Path, scheduler: str) -> list[str]:
    kw = run_kwargs(world)
    return ["run", str(world / "formats" / "asterisk" / "Master.csv"), "--format", "asterisk",
            "--model", str(kw["model"]), "--out", str(out), "--tz", kw["tz"],
            "--region", kw["default_region"], "--scheduler", scheduler,
            "-o", f"blocksize={kw['blocksize']}"]  # fmt: skip


def checksums(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def outputs(run: Path) -> dict:
    """What a run produced, in an order-independent form."""
    recs = pd.read_parquet(run / "records")
    recs = recs.sort_values("record_id").reset_index(drop=True)
    kqi = pd.read_parquet(run / "kqi" / "kqi.parquet")
    kqi = kqi.sort_values(list(kqi.columns[:4])).reset_index(drop=True)
    worst = pd.read_parquet(run / "kqi" / "worst_customers.parquet")
    alerts = pd.read_parquet(run / "alerts.parquet")
    alerts = alerts.sort_values(list(alerts.columns)).reset_index(drop=True)
    quarantine = pd.read_parquet(run / "quarantine")
    quarantine = quarantine.sort_values(["file", "line"]).reset_index(drop=True)
    manifest = json.loads((run / "manifest.json").read_text())
    return {"records": recs, "kqi": kqi, "worst": worst, "alerts": alerts,
            "quarantine": quarantine, "manifest": manifest}  # fmt: skip


def assert_same_outputs(got: Path, want: Path) -> None:
    a, b = outputs(got), outputs(want)
    assert len(a["records"]) > 0
    for name in ("records", "kqi", "worst", "alerts", "quarantine"):
        pd.testing.assert_frame_equal(a[name], b[name], check_like=True, obj=name)
    ma, mb = a["manifest"], b["manifest"]
    # what may differ between two runs of the same inputs: where and when they ran, the command
    volatile = {"inputs", "command", "time_utc", "host", "outputs"}
    for section in ("load", "protect", "kqi"):
        sa = {k: v for k, v in ma[section].items() if k not in volatile}
        sb = {k: v for k, v in mb[section].items() if k not in volatile}
        assert sa == sb, (section, sorted(k for k in set(sa) | set(sb) if sa.get(k) != sb.get(k)))
    assert ma["inputs"] == mb["inputs"]


def number_variants(world: Path) -> set[str]:
    """Every raw telephone number of the world as E.164, digits only, and national (0...)."""
    raw = pd.read_parquet(world / "records", columns=["a_number", "b_number"])
    out: set[str] = set()
    for n in set(raw["a_number"].dropna()) | set(raw["b_number"].dropna()):
        digits = n.lstrip("+")
        out |= {n, digits, "00" + digits}
        import phonenumbers

        try:
            parsed = phonenumbers.parse(n)
            out.add(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL))
            out.add(str(parsed.national_number))
            out.add("0" + str(parsed.national_number))
        except phonenumbers.NumberParseException:
            pass
    return {v for v in out if len(v.replace(" ", "")) >= 7}


def find_leaks(texts: dict[str, str], numbers: set[str], key_hex: str) -> list[tuple[str, str]]:
    """(log name, what) for every raw number (any variant) or piece of the key found in a log."""
    import re

    wanted = {n.replace(" ", "").lstrip("+") for n in numbers}
    wanted |= {w.lstrip("0") for w in wanted}
    found = []
    for name, text in texts.items():
        tokens: set[str] = set()
        for variant in (text, re.sub(r"(?<=\d)[ \-()]+(?=\d)", "", text)):
            for t in re.findall(r"\d{7,}", variant):
                tokens |= {t, t.lstrip("0")}
        found += [(name, "number ..." + w[-4:]) for w in sorted(tokens & wanted)]
        low = text.lower()
        # the key, or any 16-hex-digit piece of it, in hex or as the repr of its bytes
        pieces = {key_hex[i : i + 16] for i in range(0, len(key_hex) - 15, 8)}
        material = bytes.fromhex(key_hex)
        pieces |= {repr(material[i : i + 8])[2:-1].lower() for i in range(0, len(material) - 7, 4)}
        found += [(name, "key material") for p in pieces if p in low][:1]
    return found
