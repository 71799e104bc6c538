"""``load_to_dir``: a planned set of inputs into a run directory (the ``cemkit load`` stage list).

The runner (:func:`cemkit.runs.execute`) does the work; this keeps the older entry point.
"""

from __future__ import annotations

import os
from typing import Any

from cemkit.io.api import Plan


def load_to_dir(plan: Plan, out: str | os.PathLike[str], *, overwrite: bool = False,
                command: str | None = None, scheduler: Any = None) -> dict[str, Any]:  # fmt: skip
    """Load a planned set of inputs into a run directory; return the manifest's ``load`` section.

    ``scheduler`` defaults to the one already in use (else Dask threads), e.g. inside
    :func:`cemkit.cluster.connect`.
    """
    import dask

    from cemkit.runs import Source, execute

    source = Source.from_plan(plan)
    current = dask.config.get("scheduler", None)
    chosen = scheduler or current or "threads"
    done = execute([], out, sources=[source], overwrite=overwrite, command=command,
                   scheduler=chosen)  # fmt: skip
    section: dict[str, Any] = done.manifest["load"]
    return section
