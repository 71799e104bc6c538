"""Pseudonymization by reviewed YAML policies.

- :mod:`cemkit.privacy.policy` — the policy models (spec objects, no execution);
- :mod:`cemkit.privacy.operators` — one operator per action (keep, drop, tokenize, fpe,
  generalize, scan_text);
- :mod:`cemkit.privacy.keys` — key ids and sources; key material never shown;
- :mod:`cemkit.privacy.fpe` — batched FF3-1 (radix 10);
- :mod:`cemkit.privacy.scanner` — presidio text scanning without language models;
- :mod:`cemkit.privacy.detect` — the one detector of numbers in text (guard, scan-notebook,
  scanner);
- :mod:`cemkit.privacy.enforce` — the one enforcement point: :func:`enforce_policy` (the policy
  check, on every path), :func:`run_key` (one-off keys for generated data only), protection
  markers and source names;
- :func:`protect` / :func:`reveal` — apply a policy to pandas or Dask frames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cemkit import _lazy

if TYPE_CHECKING:
    from cemkit.privacy.enforce import enforce_policy, run_key
    from cemkit.privacy.engine import load_key, protect, reveal
    from cemkit.privacy.keys import Key
    from cemkit.privacy.policy import Policy, load_policy, parse_policy

_lazy.exports(
    __name__,
    {
        "enforce_policy": "cemkit.privacy.enforce",
        "run_key": "cemkit.privacy.enforce",
        "load_key": "cemkit.privacy.engine",
        "protect": "cemkit.privacy.engine",
        "reveal": "cemkit.privacy.engine",
        "Key": "cemkit.privacy.keys",
        "Policy": "cemkit.privacy.policy",
        "load_policy": "cemkit.privacy.policy",
        "parse_policy": "cemkit.privacy.policy",
    },
)


__all__ = ["Key", "Policy", "enforce_policy", "load_key", "load_policy", "parse_policy", "protect",
           "reveal", "run_key"]  # fmt: skip
