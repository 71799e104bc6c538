"""``cemkit demo``: the whole pipeline on a generated default data set, ending in a report.

Each stage of cemkit adds itself here as it lands, so the demo always shows what the product
does end to end on a fresh machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import altair as alt
import dask.dataframe as dd
import pandas as pd

from cemkit import schema
from cemkit.cluster import add_scheduler_option, connect
from cemkit.io.atomic import atomic_write_text
from cemkit.progress import step
from cemkit.report.html import write_page

DEFAULT_RECORDS = 1_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on generated data and write a report",
        description="Generate a synthetic world, run every cemkit stage, write an HTML report.",
    )
    p.add_argument("--out", default="demo-output", help="output directory (default demo-output)")
    p.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="records to generate")
    p.add_argument("--seed", type=int, default=7)
    add_scheduler_option(p)
    p.set_defaults(
        func=lambda a: (run_demo(a.out, records=a.records, seed=a.seed, scheduler=a.scheduler), 0)[
            1
        ]
    )


def summarize(records: dd.DataFrame) -> dict[str, pd.DataFrame]:
    """Aggregates a manager can read: outcome mix, per-node answer ratio, hourly trend."""
    voice = records[(records["service"] == "voice") & (records["record_kind"] == "cdr")]
    voice = voice.assign(
        answered=(voice["outcome"] == "answered").astype("int64"),
        hour=voice["start"].dt.floor("h"),
    )
    by_outcome = records.groupby(["record_kind", "outcome"]).size().rename("records")
    by_node = voice.groupby("node").agg(attempts=("answered", "size"), answered=("answered", "sum"))
    hourly = voice.groupby("hour").agg(attempts=("answered", "size"), answered=("answered", "sum"))
    import dask

    out_o, out_n, out_h = dask.compute(by_outcome, by_node, hourly)
    by_node = out_n.reset_index().sort_values("node")
    by_node["asr_pct"] = (100 * by_node["answered"] / by_node["attempts"]).round(1)
    hourly = out_h.reset_index().sort_values("hour")
    hourly["asr_pct"] = 100 * hourly["answered"] / hourly["attempts"]
    return {
        "by_outcome": out_o.reset_index().sort_values(["record_kind", "outcome"]),
        "by_node": by_node,
        "hourly": hourly,
    }


def _charts(summary: dict[str, pd.DataFrame]) -> dict[str, Any]:
    hourly = summary["hourly"]
    trend = (
        alt.Chart(hourly)
        .mark_line()
        .encode(
            x=alt.X("hour:T", title="hour (UTC)"),
            y=alt.Y("asr_pct:Q", title="ASR %"),
            tooltip=["hour:T", "attempts:Q", "asr_pct:Q"],
        )
        .properties(width=900, height=220, title="Answer-seizure ratio per hour (voice CDRs)")
    )
    volume = (
        alt.Chart(hourly)
        .mark_area(opacity=0.6)
        .encode(x=alt.X("hour:T", title="hour (UTC)"), y=alt.Y("attempts:Q", title="attempts"))
        .properties(width=900, height=160, title="Call attempts per hour")
    )
    outcomes_chart = (
        alt.Chart(summary["by_outcome"])
        .mark_bar()
        .encode(x=alt.X("records:Q"), y=alt.Y("outcome:N", sort="-x"), color="record_kind:N")
        .properties(width=600, height=200, title="Records by outcome")
    )
    return {"trend": trend, "volume": volume, "outcomes": outcomes_chart}


def run_demo(
    out_dir: str | Path, *, records: int = DEFAULT_RECORDS, seed: int = 7, scheduler: Any = None
) -> Path:
    """Run the demo pipeline; returns the path of the report's ``index.html``.

    ``scheduler``: see :mod:`cemkit.cluster` (default ``$CEMKIT_SCHEDULER``, else an embedded
    LocalCluster).
    """
    with connect(scheduler):
        return _run_demo(Path(out_dir), records=records, seed=seed)


def _run_demo(out: Path, *, records: int, seed: int) -> Path:
    world = out / "world"
    from cemkit import synth

    with step(f"generating a synthetic world of {records:,} records"):
        truth = synth.generate(world, records=records, seed=seed, incidents=2)
    with step("loading and validating canonical records"):
        recs = dd.read_parquet(str(world / "records"), dtype_backend="pyarrow")
        recs = recs.map_partitions(schema.conform, meta=schema.empty_frame())
        problems = (
            recs.map_partitions(
                lambda df: pd.Series([len(schema.validate(df, raise_=False))]), meta=(None, "int64")
            )
            .sum()
            .compute()
        )
    with step("summarizing"):
        summary = summarize(recs)
    charts = _charts(summary)
    incidents = pd.DataFrame(truth["incidents"])
    report = write_page(
        out / "report" / "index.html",
        "cemkit demo report",
        [
            (
                "Data set",
                [
                    (
                        f"{truth['records']:,} synthetic records over {truth['days']} days "
                        f"(seed {seed}); schema problems found: {int(problems)}."
                    ),
                    pd.DataFrame([truth["counts"]])
                    .T.reset_index()
                    .rename(columns={"index": "what", 0: "count"}),
                ],
            ),
            ("Experience over time", [charts["volume"], charts["trend"]]),
            ("Outcomes", [charts["outcomes"]]),
            ("Answer-seizure ratio per switch", [summary["by_node"]]),
            ("Injected incidents (ground truth)", [incidents]),
        ],
    )
    atomic_write_text(
        out / "report" / "summary.json",
        json.dumps({"records": truth["records"], "schema_problems": int(problems)}) + "\n",
    )
    print(f"cemkit demo: report written to {report}")
    return report
