"""Worlds for the real-time tests: 4,000 records in one partition, a model that raises alerts."""

from __future__ import annotations

from pathlib import Path


def alerting_model(model: Path, out: Path) -> Path:
    """``model`` with absolute ASR / NER thresholds added (two severities), written to ``out``."""
    text = model.read_text()
    assert "\nthresholds:\n" in text
    out.write_text(text.replace("\nthresholds:\n", "\nthresholds:\n"
                                "  - {indicator: asr, absolute: 0.9, min_attempts: 5}\n"
                                "  - {indicator: ner, absolute: 0.95, min_attempts: 5,"
                                " severity: critical}\n"))  # fmt: skip
    return out


def one_part_world(out: Path, seed: int) -> Path:
    """A 4,000-record synthetic world in ``out``; returns its records as one Parquet file."""
    import pyarrow.parquet as pq

    from cemkit import synth

    synth.generate(out, records=4_000, seed=seed, incidents=1, formats=False)
    source = out / "one" / "records.parquet"
    source.parent.mkdir()
    pq.write_table(pq.read_table(out / "records"), source)  # one row group: one partition
    return source
