"""``cemkit demo``: the whole pipeline on a generated default data set, ending in a report.

Each stage of cemkit adds itself here as it lands, so the demo always shows what the product
does end to end on a fresh machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cemkit.cluster import add_scheduler_option
from cemkit.progress import step

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


def run_demo(
    out_dir: str | Path, *, records: int = DEFAULT_RECORDS, seed: int = 7, scheduler: Any = None
) -> Path:
    """Generate a world, run the whole pipeline and write the usage-mining report.

    Returns the path of the report's HTML page (``OUT/report/02_usage_mining.html``); the
    executed notebook, the run directory (``OUT/work/run``) and the world sit beside it.
    ``scheduler``: see :mod:`cemkit.cluster` (default ``$CEMKIT_SCHEDULER``, else ``threads``).
    """
    from distributed import Client

    from cemkit import synth
    from cemkit.cluster import check
    from cemkit.report.runner import report

    chosen = check(scheduler, default="threads")  # refused before any work when unknown
    if isinstance(chosen, Client):  # the notebook connects to the same scheduler
        chosen = chosen.scheduler_info()["address"]
    out = Path(out_dir).resolve()  # the notebook runs in another directory
    world = out / "world"
    with step(f"generating a synthetic world of {records:,} records"):
        synth.generate(world, records=records, seed=seed, incidents=2)
    # Without CEMKIT_KEY the notebook protects the generated world with a one-off key,
    # recorded as such (cemkit.privacy.enforce.run_key); real runs must set CEMKIT_KEY.
    params = {
        "input": str(world / "records"),
        "format": "parquet",
        "model": str(world / "model.yaml"),
        "workdir": str(out / "work"),
        "scheduler": chosen,
    }
    with step("running load → protect → correlate → KQIs and the usage-mining report"):
        paths = report("02_usage_mining", params, out / "report", progress=False, overwrite=True)
    print(f"cemkit demo: report written to {paths['html']}")
    return paths["html"]
