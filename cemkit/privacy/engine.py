"""Apply a policy to records: :func:`protect` (and :func:`reveal` for authorized users).

Both work on pandas and Dask frames. The plan — one validated operator per column — is built
once from the frame's columns and dtypes (for Dask: its ``meta``), before any value is read;
the Dask path runs the very same pandas function on every partition with ``map_partitions``.
Operators depend only on the value and the key, so the same number gets the same pseudonym on
every partition and worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from cemkit.columnar import Columns
from cemkit.errors import PolicyError
from cemkit.privacy.enforce import (
    ONE_OFF_SOURCE,
    enforce_policy,
    refuse_protected,
    reveal_columns,
)
from cemkit.privacy.keys import Key
from cemkit.privacy.operators import Operator, create
from cemkit.privacy.operators.base import to_arrow
from cemkit.privacy.operators.drop import Drop
from cemkit.privacy.operators.fpe import Fpe
from cemkit.privacy.operators.keep import Keep, KeepSourceName
from cemkit.privacy.operators.tokenize import Tokenize, tokenize_arrays, tokenize_columns
from cemkit.privacy.policy import Policy, load_policy

#: Columns holding source names (file tags, paths): kept in clear, their numbers tokenized.
SOURCE_NAME_RECORDS = "record_id"
SOURCE_NAME_QUARANTINE = "file"

Plan = list[tuple[str, Operator]]


def load_key(policy: Policy) -> Key | None:
    """The key a policy names, read from its source; None when the policy needs none."""
    if policy.key is None:
        return None
    ref = policy.key
    return Key.load(ref.id, env=ref.env, file=ref.file)


def _is_dask(df: Any) -> bool:
    return type(df).__module__.startswith("dask")


def plan(
    columns: pd.Series | dict[str, Any],
    policy: Policy,
    key: Key | None,
    *,
    quarantine: bool = False,
) -> Plan:
    """Validated operators for the columns (name → dtype) of a frame."""
    if (policy.key is not None and key is not None and key.id != policy.key.id
            and key.source != ONE_OFF_SOURCE):  # fmt: skip
        raise PolicyError(
            f"policy {policy.name!r} names key {policy.key.id!r} but key {key.id!r} was given",
            hint="pass the key the policy names, or change `key: id:` in the policy",
        )
    steps: Plan = []
    for name, dtype in dict(columns).items():
        rule = policy.rule_for(str(name), quarantine=quarantine)
        if rule.action == "keep" and str(name) == (SOURCE_NAME_QUARANTINE if quarantine
                                                    else SOURCE_NAME_RECORDS):  # fmt: skip
            # Source names are data: a file named after an account number must not put the
            # number into every record id / quarantine row kept in clear.
            op: Operator = KeepSourceName(rule, str(name), key)
        else:
            op = create(rule, str(name), key)
        op.validate(dtype)
        steps.append((str(name), op))
    return steps


def _apply(df: pd.DataFrame, steps: Plan, method: str = "apply", threads: int = 1) -> pd.DataFrame:
    out: dict[str, pd.Series] = {}
    by_name = dict(steps)
    present = [str(n) for n in df.columns if str(n) in by_name]
    # A column the plan has not seen (a partition differing from meta) is never passed.
    tokens: dict[str, pd.Series] = {}
    if method == "apply":
        # Every tokenized column at once: one dictionary, one HMAC per distinct value.
        tokenized = {n: by_name[n] for n in present if type(by_name[n]) is Tokenize}
        if tokenized:
            key = next(iter(tokenized.values())).key
            assert key is not None  # checked by validate()
            tokens = tokenize_columns({n: df[n] for n in tokenized},
                                      {n: op.rule for n, op in tokenized.items()},  # type: ignore[misc]
                                      key, threads)  # fmt: skip
    for name in present:
        op = by_name[name]
        if name in tokens:
            result: pd.Series | None = tokens[name]
        elif method == "apply":
            result = op.apply_frame(df)
        else:
            result = getattr(op, method)(df[name]) if hasattr(op, method) else df[name]
        if result is not None:
            out[name] = result
    # copy=False: the kept columns are the input's arrays (copy-on-write keeps them apart)
    result_frame = pd.DataFrame(out, index=df.index, copy=False)
    if method == "apply":
        # What was done per column, for the notebook guard (cemkit.guard.PROTECTED_ATTR).
        result_frame.attrs["cemkit_protected"] = {n: op.rule.action for n, op in steps if n in out}
    return result_frame


def _arrow_strings(values: Any) -> pa.Array:
    """A column's array as one Arrow ``string`` or ``large_string`` array (not cast).

    The tokenizer reads either, and its tokens are ``large_string``, what pandas holds.
    """
    if isinstance(values, pd.arrays.ArrowStringArray):
        arr = pa.array(values)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return arr
        return arr.cast(pa.string())
    return to_arrow(pd.Series(values, copy=False))


def _resolve(policy: Policy | str | Path, key: Key | None) -> tuple[Policy, Key | None]:
    policy = enforce_policy(policy)  # exactly `cemkit policy check`: an ERROR refuses it
    if key is None and any(r.needs_key for _, r in policy.rules()):
        key = load_key(policy)
    return policy, key


class Protector:
    """Warm :func:`protect` of pandas partitions: the policy checked and the key resolved once.

    The plan (one validated operator per column) is built once per column signature (names and
    dtypes) and reused for every partition of that signature: what :func:`protect` does on each
    call, without the per-call policy check, key lookup and operator validation. The real-time
    path (:class:`cemkit.pipeline.BatchProcessor`) and the protect stage of every run hold one.

    Parameters
    ----------
    policy : Policy, str or path
        As for :func:`protect` (checked as ``cemkit policy check`` does, here, once).
    key : Key, optional
        As for :func:`protect` (default: read from the policy's key source, here, once).
    quarantine : bool
        Apply the policy's ``quarantine:`` rules.
    threads : int
        Threads the HMACs of one partition may use (the real-time path gives its batch
        :data:`cemkit.config.CORRELATE_THREADS`; Dask partitions run on one each).

    Examples
    --------
    >>> import pandas as pd
    >>> from cemkit.privacy.keys import Key
    >>> from cemkit.privacy.policy import Policy
    >>> policy = Policy.model_validate({"name": "demo", "version": 1,
    ...     "key": {"id": "demo-key", "env": "CEMKIT_KEY"},
    ...     "columns": {"a_number": {"action": "tokenize", "keep_digits": 2}}})
    >>> protector = Protector(policy, key=Key.from_material(bytes(32), key_id="demo-key"))
    >>> df = pd.DataFrame({"a_number": ["+441632960961"]}, dtype="string[pyarrow]")
    >>> protector(df)["a_number"].tolist()
    ['+44#11a3517af72532ef']
    """

    def __init__(self, policy: Policy | str | Path, key: Key | None = None, *,
                 quarantine: bool = False, threads: int = 1) -> None:  # fmt: skip
        self.policy, self.key = _resolve(policy, key)
        self.quarantine = quarantine
        self.threads = threads
        self._plans: dict[tuple[tuple[Any, ...], tuple[Any, ...]], Plan] = {}

    def plan(self, dtypes: pd.Series) -> Plan:
        """The validated plan for these columns (name → dtype), built on first use."""
        # dtypes hash and compare; the names converted at once (not iterated one by one)
        signature = (tuple(dtypes.index.tolist()), tuple(dtypes.array))
        steps = self._plans.get(signature)
        if steps is None:
            steps = plan(dtypes, self.policy, self.key, quarantine=self.quarantine)
            if len(self._plans) > 64:  # partitions of ever new shapes: keep it bounded
                self._plans.clear()
            self._plans[signature] = steps
        return steps

    def __call__(self, df: pd.DataFrame) -> pd.DataFrame:
        """The protected partition (as :func:`protect` gives it)."""
        refuse_protected(df)
        return _apply(df, self.plan(df.dtypes), threads=self.threads)

    def columns(self, df: pd.DataFrame, *, steps: Plan | None = None) -> Columns:
        """The protected partition as column arrays (:class:`~cemkit.columnar.Columns`).

        What :meth:`__call__` gives, without building the frame (the real-time path carries
        the arrays to the correlators): the same columns, dtypes and values. ``keep`` columns
        are the input's arrays (the correlators' results are new arrays, never these).
        ``steps``: :meth:`plan` of ``df.dtypes``, when the caller holds it (a warm
        :class:`~cemkit.pipeline.BatchProcessor` whose batches keep their dtypes).
        """
        refuse_protected(df)
        if not df.columns.is_unique:
            return Columns.of(self(df))
        if steps is None:
            steps = self.plan(df.dtypes)
        cols = Columns.of(df)  # its Series are cheaper than the frame's (see cemkit.columnar)
        arrays = cols.arrays
        tokenized = {n: op for n, op in steps if type(op) is Tokenize}
        tokens: dict[str, Any] = {}
        codes: dict[str, Any] = {}  # equal codes: equal values (the correlators key by them)
        if tokenized:
            key = next(iter(tokenized.values())).key
            assert key is not None  # checked by validate()
            tokens = tokenize_arrays({n: _arrow_strings(arrays[n]) for n in tokenized},
                                     {n: op.rule for n, op in tokenized.items()},
                                     key, self.threads, codes, large=True)  # fmt: skip
        out: dict[str, Any] = {}
        for name, op in steps:
            kind = type(op)
            if name in tokens:
                out[name] = pd.arrays.ArrowStringArray(tokens[name])  # large_string
            elif kind is Keep:
                out[name] = arrays[name]
            elif kind is not Drop:
                result = op.apply_frame(cols)  # reads cols[name] (a frame-like Columns)
                if result is not None:
                    out[name] = result.array
        return Columns(out, df.index, codes)

    def __repr__(self) -> str:
        return f"Protector(policy={self.policy.name!r}, quarantine={self.quarantine})"


def protect(
    df: Any, policy: Policy | str | Path, *, key: Key | None = None, quarantine: bool = False
) -> Any:
    """Pseudonymize a pandas or Dask frame by a policy.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        Records in the canonical schema (or a loader quarantine with ``quarantine=True``).
    policy : Policy, str or path
        A policy, a YAML file, or the name of a shipped policy (``"default"``).
    key : Key, optional
        The key material; by default read from the source the policy names (``CEMKIT_KEY``).
    quarantine : bool
        Apply the policy's ``quarantine:`` rules (for the loader quarantine frame).

    Returns
    -------
    Same type as ``df``
        Columns the policy drops (including every column it does not name, by default) are
        gone; the others are transformed. Lazy for Dask frames.

    Examples
    --------
    >>> import pandas as pd
    >>> from cemkit.privacy.keys import Key
    >>> from cemkit.privacy.policy import Policy
    >>> policy = Policy.model_validate({"name": "demo", "version": 1,
    ...     "key": {"id": "demo-key", "env": "CEMKIT_KEY"},
    ...     "columns": {"a_number": {"action": "tokenize", "keep_digits": 2}}})
    >>> key = Key.from_material(bytes(32), key_id="demo-key")
    >>> df = pd.DataFrame({"a_number": ["+441632960961"], "node": ["lon-sw1"]},
    ...                   dtype="string[pyarrow]")
    >>> protect(df, policy, key=key)["a_number"].tolist()
    ['+44#11a3517af72532ef']
    """
    refuse_protected(df)
    policy, key = _resolve(policy, key)
    if _is_dask(df):
        steps = plan(df._meta.dtypes, policy, key, quarantine=quarantine)
        meta = _apply(df._meta, steps)
        return df.map_partitions(_apply, steps, meta=meta)
    steps = plan(df.dtypes, policy, key, quarantine=quarantine)
    return _apply(df, steps)


def reveal(
    df: Any,
    policy: Policy | str | Path,
    *,
    columns: list[str] | None = None,
    key: Key | None = None,
) -> Any:
    """Re-identify FPE pseudonyms: decrypt the columns a policy protects with ``fpe``.

    Only for authorized users holding the key. ``cemkit reveal`` records each use in the output
    manifest; a caller of this function is responsible for recording its own use.

    Parameters
    ----------
    df : pandas.DataFrame or dask.dataframe.DataFrame
        Protected records.
    policy : Policy, str or path
        The policy the records were protected with.
    columns : list of str, optional
        Columns to reveal (default: every ``fpe`` column of the policy present in ``df``).
    key : Key, optional
        The key (default: read from the policy's key source).

    Returns
    -------
    Same type as ``df``
        The frame with the chosen columns decrypted; all other columns unchanged.
    """
    policy = load_policy(policy)
    meta = df._meta if _is_dask(df) else df
    fpe_columns = reveal_columns(policy, [str(c) for c in meta.columns])
    key = key if key is not None else load_key(policy)
    wanted = fpe_columns if columns is None else columns
    for name in wanted:
        if name not in fpe_columns:
            raise PolicyError(
                f"column {name!r} is not protected with fpe in policy {policy.name!r}",
                hint=f"only fpe columns can be revealed: {', '.join(fpe_columns) or 'none'}",
            )
    steps: Plan = []
    for name, dtype in meta.dtypes.items():
        rule = policy.columns[str(name)] if str(name) in wanted else None
        op = create(rule, str(name), key) if rule is not None else None
        if op is not None:
            op.validate(dtype)
            steps.append((str(name), op))
        else:
            steps.append((str(name), _Passthrough()))  # type: ignore[arg-type]
    if _is_dask(df):
        return df.map_partitions(_apply, steps, "reveal", meta=_apply(df._meta, steps, "reveal"))
    return _apply(df, steps, "reveal")


class _Passthrough:
    """Plan step that leaves a column as it is (used by :func:`reveal`)."""

    def reveal(self, series: pd.Series) -> pd.Series:
        return series


__all__ = ["Fpe", "Protector", "load_key", "plan", "protect", "reveal"]
