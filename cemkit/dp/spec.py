"""The ``release:`` section of a privacy policy: how aggregates may be published with DP.

A spec object only (pydantic, loaded with the rest of the policy); :mod:`cemkit.dp.api`
executes it. Example (see ``policies/default.yaml``)::

    release:
      unit: a_number            # the privacy unit: one subscriber (its pseudonym)
      bounds:
        max_records: 4          # records one subscriber adds to one node group in one bucket
        max_cells: 24           # (node group, bucket) cells one subscriber adds to, per level
        clamp: {conversation_ms: 3600000}   # largest value one record adds to a sum counter
      mechanism: laplace        # laplace (pure ε-DP) or gaussian (ρ-zCDP)
      budget: {epsilon: 2.0, per: month}   # total per data set and calendar month of the data
      indicators: [attempts, asr, ner, drop_ratio]

The guarantee: for any one subscriber, the released tables of one period are almost equally
likely whether or not that subscriber's records are in the data (ε-DP, or ρ-zCDP), as long as
every release of that data set and period is recorded in the ledger.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: KQI counters that count records (each record adds 0 or 1).
COUNT_COUNTERS: tuple[str, ...] = (
    "attempts", "answered", "user_determined", "short_calls", "drops", "pdd_count", "invites",
    "invites_2xx", "invites_3xx", "invites_effective", "invites_ineffective",
    "sessions_completed", "mos_count", "repeat_attempts",
)  # fmt: skip
#: KQI counters that sum a value per record: releasable only with a ``clamp`` bound.
SUM_COUNTERS: tuple[str, ...] = ("conversation_ms", "pdd_us", "mos_micro")

#: Releasable indicators and the counters they are derived from (after noise).
INDICATOR_COUNTERS: dict[str, tuple[str, ...]] = {
    "attempts": ("attempts",),
    "asr": ("answered", "attempts"),
    "ner": ("user_determined", "attempts"),
    "ser": ("invites_2xx", "invites", "invites_3xx"),
    "seer": ("invites_effective", "invites", "invites_3xx"),
    "isa": ("invites_ineffective", "invites"),
    "scr": ("sessions_completed", "invites"),
    "drop_ratio": ("drops", "answered"),
    "short_call_ratio": ("short_calls", "answered"),
    "repeat_attempt_rate": ("repeat_attempts", "attempts"),
    "acd_s": ("conversation_ms", "answered"),
    "pdd_mean_ms": ("pdd_us", "pdd_count"),
    "mos": ("mos_micro", "mos_count"),
}

PERIODS = ("day", "week", "month", "year")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bounds(_Spec):
    """Contribution bounds, applied to the pseudonymized subscriber codes before any noise."""

    max_records: int = Field(ge=1, le=10_000, description=(
        "Most records one subscriber contributes to one node group in one time bucket "
        "(more are left out of the release at random)."))  # fmt: skip
    max_cells: int = Field(ge=1, le=100_000, description=(
        "Most (node group, time bucket) cells one subscriber contributes to at one level of "
        "the node-group hierarchy in one release."))  # fmt: skip
    clamp: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "Largest amount one record adds to a summed counter (e.g. conversation_ms: 3600000)."
        ),
    )

    @field_validator("clamp")
    @classmethod
    def _known_sums(cls, clamp: dict[str, int]) -> dict[str, int]:
        for name, value in clamp.items():
            if name not in SUM_COUNTERS:
                raise ValueError(f"clamp.{name}: not a summed counter; known: "
                                 f"{', '.join(SUM_COUNTERS)}")  # fmt: skip
            if value < 1:
                raise ValueError(f"clamp.{name}: must be a positive integer")
        return clamp


class Budget(_Spec):
    """The privacy budget of one data set per period of the data (not of the wall clock)."""

    epsilon: float | None = Field(None, gt=0, le=1e6, description="Pure-DP ε (laplace).")
    rho: float | None = Field(None, gt=0, le=1e6, description="zCDP ρ (gaussian).")
    per: Literal["day", "week", "month", "year"] = Field("month", description=(
        "Calendar period of the records the budget covers: every release touching records of "
        "that period spends from it."))  # fmt: skip
    delta: float = Field(
        1e-7,
        gt=0,
        lt=1e-3,
        description=("δ used to state a zCDP budget as (ε, δ) in explanations (gaussian only)."),
    )

    @model_validator(mode="after")
    def _one_measure(self) -> Budget:
        if (self.epsilon is None) == (self.rho is None):
            raise ValueError("give exactly one of `epsilon:` (laplace) or `rho:` (gaussian)")
        return self

    @property
    def measure(self) -> str:
        """``epsilon`` or ``rho``."""
        return "epsilon" if self.epsilon is not None else "rho"

    @property
    def total(self) -> float:
        """The budget in its own measure."""
        return float(self.epsilon if self.epsilon is not None else self.rho)  # type: ignore[arg-type]


class ReleaseSpec(_Spec):
    """How aggregates of this policy's data may be released with differential privacy."""

    unit: str = Field(
        "a_number",
        description=("Column whose (pseudonymized) value is one privacy unit: a subscriber."),
    )
    bounds: Bounds
    mechanism: Literal["laplace", "gaussian"] = Field(
        "laplace",
        description=(
            "laplace: discrete Laplace noise, pure ε-DP; gaussian: discrete Gaussian, ρ-zCDP."
        ),
    )
    budget: Budget
    indicators: list[str] = Field(min_length=1, description="Indicators that may be released.")

    @field_validator("indicators")
    @classmethod
    def _known_indicators(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in INDICATOR_COUNTERS:
                raise ValueError(f"indicators: {name!r} cannot be released; releasable: "
                                 f"{', '.join(INDICATOR_COUNTERS)}")  # fmt: skip
        return names

    @model_validator(mode="after")
    def _consistent(self) -> ReleaseSpec:
        wanted = self.budget.measure
        needed = "epsilon" if self.mechanism == "laplace" else "rho"
        if wanted != needed:
            raise ValueError(f"mechanism {self.mechanism} spends {needed}; the budget gives "
                             f"{wanted}")  # fmt: skip
        missing = sorted({c for c in self.counters() if c in SUM_COUNTERS}
                         - set(self.bounds.clamp))  # fmt: skip
        if missing:
            raise ValueError(f"indicators need summed counter(s) {', '.join(missing)}: add "
                             f"bounds.clamp for each (largest value one record adds)")  # fmt: skip
        return self

    def counters(self) -> list[str]:
        """The KQI counters the allowed indicators are derived from, in a stable order."""
        out: dict[str, None] = {}
        for name in self.indicators:
            out.update(dict.fromkeys(INDICATOR_COUNTERS[name]))
        return list(out)

    def explain(self) -> list[str]:
        """The guarantee in plain words, for ``policy explain`` (one paragraph per item)."""
        b, bud = self.bounds, self.budget
        if self.mechanism == "laplace":
            guarantee = (f"ε = {bud.total:g} per {bud.per} of data (pure differential privacy, "
                         "discrete Laplace noise)")  # fmt: skip
        else:
            eps = rho_to_epsilon(bud.total, bud.delta)
            guarantee = (
                f"ρ = {bud.total:g} per {bud.per} of data (zero-concentrated DP, "
                f"discrete Gaussian noise; about ε = {eps:.2f} at δ = {bud.delta:g})"
            )
        return [
            (
                f"Published aggregates can be released with differential privacy: {guarantee}. "
                f"Whatever else a reader knows, the released tables of one {bud.per} change "
                "very little whether or not any one subscriber's records are in the data."
            ),
            f"The protected unit is one subscriber (`{self.unit}`, pseudonymized). Before any "
            f"noise, each subscriber adds at most {b.max_records} record(s) to one node group "
            f"in one time bucket, and to at most {b.max_cells} (node group, bucket) cells per "
            "level of the node-group hierarchy; the rest of a heavy user's records are left "
            "out of the release."
            + (
                " Summed values are capped per record: "
                + ", ".join(f"{k} at {v:,}" for k, v in b.clamp.items())
                + "."
                if b.clamp
                else ""
            ),
            (
                "Every release is written to an append-only ledger before any noise is drawn; a "
                f"release that would take the {bud.per}'s spending past the budget is refused. "
                "Groups of one hierarchy level are disjoint, so a release spends its share once "
                "per level, not once per group; the list of groups and buckets comes from the "
                "service model and the period asked for, never from the data."
            ),
            "Releasable indicators (ratios are computed from the noisy counts): "
            + ", ".join(self.indicators)
            + ".",
        ]


def rho_to_epsilon(rho: float, delta: float) -> float:
    """ε of (ε, δ)-DP implied by ρ-zCDP (Bun & Steinke 2016, Proposition 1.3)."""
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))
