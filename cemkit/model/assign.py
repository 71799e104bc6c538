"""Execute a service model on data: put every customer and record in its most specific group.

Matching is vectorized end to end. The customer number's leading digits (at most the kept prefix
of a protected number) are read from the Arrow string buffers by a Numba kernel, which also finds
the longest matching prefix by binary search in one sorted table per prefix length. Nodes and
customer attributes are factorized. Each record then has a small *signature* (longest prefix,
node, attribute combination); the model is resolved once per distinct signature, never once per
customer, and the answer is broadcast back.

Specificity: among the groups whose rules all hold (and whose ancestors' rules hold), the one
deepest in the hierarchy wins; ties go to the longer matched prefix, then to the group with more
kinds of rules, then to the group declared first. A group without rules is a container: it is
never assigned directly, it rolls up its children.

Examples
--------
>>> import pandas as pd
>>> from cemkit.model.spec import ServiceModel
>>> m = ServiceModel.from_yaml_text('''
... name: demo
... groups:
...   - {name: uk, match: {prefixes: ["+44"]}}
...   - {name: london, parent: uk, match: {prefixes: ["+4420"]}}
...   - {name: lon-sw1, parent: london, match: {switches: ["lon-sw1"]}}
... ''')
>>> a = Assigner(m)
>>> recs = pd.DataFrame({"a_number": ["+442071234567", "+4420tok_9f2c", "+441612345678", "+3312"],
...                      "node": ["lon-sw1", "lon-sw2", "lon-sw1", "par-sw1"]})
>>> list(a.assign(recs)["group"].astype(object))
['lon-sw1', 'london', 'uk', nan]
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cemkit import arrowstr
from cemkit.errors import InputError, ModelError
from cemkit.model import _kernels
from cemkit.model.spec import ServiceModel, prefix_digits

GROUP_COLUMN = "group"
CUSTOMER_OBJECT_COLUMN = "customer_object"

_W = _kernels.MAX_DIGITS + 1
_POW10 = np.array([10**k for k in range(_W)], dtype=np.int64)


class _PrefixTable:
    """Every prefix of a model, sorted per (leading '+', length), for the kernel."""

    def __init__(self, prefixes: Sequence[str]) -> None:
        uniq = sorted(set(prefixes), key=lambda p: (p.startswith("+"), len(prefix_digits(p)),
                                                    int(prefix_digits(p))))  # fmt: skip
        self.prefixes: list[str] = uniq
        self.table = np.array([int(prefix_digits(p)) for p in uniq], dtype=np.int64)
        starts = np.zeros(2 * _W + 1, dtype=np.int64)
        for p in uniq:
            starts[(_W if p.startswith("+") else 0) + len(prefix_digits(p)) + 1] += 1
        self.starts = np.cumsum(starts)
        self.position = {p: i for i, p in enumerate(uniq)}

    def longest(self, values: Any, max_digits: int) -> np.ndarray:
        offsets, data, valid = arrowstr.buffers(values)
        value, ndigits, plus = _kernels.leading_digits(offsets, data, valid, max_digits)
        return _kernels.longest_prefix(value, ndigits, plus, self.table, self.starts, _POW10)

    def chain(self, position: int) -> list[str]:
        """The matched prefix and every shorter prefix of it in the table."""
        if position < 0:
            return []
        p = self.prefixes[position]
        plus = "+" if p.startswith("+") else ""
        digits = prefix_digits(p)
        heads = (plus + digits[:k] for k in range(len(digits), 0, -1))
        return [h for h in heads if h in self.position]


class Assigner:
    """A service model compiled for data: assigns groups and modeled customers.

    Parameters
    ----------
    model : ServiceModel
        The validated model.
    customer_table : pandas.DataFrame, optional
        Customers and their attributes (key column ``model.customer_table.key``). Read from
        ``model.customer_table.path`` when not given and the model names one.

    Attributes
    ----------
    group_names : list of str
        Category order of the ``group`` column.
    customer_names : list of str
        Category order of the ``customer_object`` column.
    """

    def __init__(self, model: ServiceModel, customer_table: pd.DataFrame | None = None) -> None:
        self.model = model
        self.group_names = [g.name for g in model.groups]
        self.customer_names = [c.name for c in model.customers]
        self._depth = np.array([model.depth(g) for g in self.group_names], dtype=np.int64)
        every_prefix = [p for g in model.groups for p in g.match.expanded_prefixes()]
        self._prefixes = _PrefixTable(every_prefix)
        self._group_prefixes = [set(g.match.expanded_prefixes()) for g in model.groups]
        # digits beyond the longest prefix (or the kept prefix of protected numbers) never matter
        longest = max((len(prefix_digits(p)) for p in every_prefix), default=0)
        self._max_digits = min(model.numbers.kept_prefix_digits or _kernels.MAX_DIGITS, longest)
        self._chain_index = [
            [self.group_names.index(a) for a in model.ancestors(g)] for g in self.group_names
        ]
        self._node_cache: dict[str, frozenset[int]] = {}
        self._pseudonyms = [(p, i) for i, c in enumerate(model.customers) for p in c.pseudonyms]
        self._pseudonym_values = pa.array([p for p, _ in self._pseudonyms], type=pa.string())
        self._attr_columns = sorted(
            {k for g in model.groups for k in g.match.all_attributes()}
            | {k for c in model.customers for k in c.attributes}
        )
        self._table_keys: pa.Array | None = None
        self._table_key_series = pd.Series([], dtype=pd.StringDtype("pyarrow"))
        self._table_combo = np.zeros(0, dtype=np.int64)
        self._combos: list[tuple[Any, ...]] = []
        if self._attr_columns:
            if customer_table is None:
                customer_table = read_customer_table(model)
            self._fit_table(customer_table)
        self._resolved: dict[tuple[int, str | None, int], tuple[int, int]] = {}

    # --- customer table ---------------------------------------------------------------------
    def _fit_table(self, table: pd.DataFrame) -> None:
        spec = self.model.customer_table
        key = spec.key if spec is not None else "customer"
        missing = [c for c in [key, *self._attr_columns] if c not in table.columns]
        if missing:
            raise ModelError(
                f"customer table lacks column(s) {missing} that the model's rules use",
                hint=f"it has {list(table.columns)}",
            )
        keys = table[key].astype(pd.StringDtype("pyarrow"))
        self._table_key_series = keys.reset_index(drop=True)
        self._table_keys = pa.array(keys, from_pandas=True)
        combo_frame = table[self._attr_columns].astype(pd.StringDtype("pyarrow"))
        codes, uniques = pd.MultiIndex.from_frame(combo_frame).factorize()
        self._table_combo = np.asarray(codes, dtype=np.int64)
        self._combos = [tuple(u) for u in uniques]

    def _combo_of(self, numbers: Any, keys_are_table: bool) -> np.ndarray:
        """Attribute-combination code of each number (-1 when not in the customer table)."""
        n = len(numbers)
        if not self._attr_columns:
            return np.full(n, -1, dtype=np.int64)
        if keys_are_table:
            return self._table_combo
        assert self._table_keys is not None
        row = pc.index_in(_as_strings(numbers), value_set=self._table_keys).to_numpy(
            zero_copy_only=False
        )
        row = np.where(pd.isna(row), -1, row).astype(np.int64)
        out = np.full(n, -1, dtype=np.int64)
        hit = row >= 0
        out[hit] = self._table_combo[row[hit]]
        return out

    # --- rule evaluation per signature (small, pure Python) ----------------------------------
    def _node_groups(self, node: str | None) -> frozenset[int]:
        if node is None:
            return frozenset()
        cached = self._node_cache.get(node)
        if cached is None:
            cached = frozenset(
                i for i, g in enumerate(self.model.groups)
                if any(fnmatch.fnmatchcase(node, pat) for pat in g.match.all_nodes())
            )  # fmt: skip
            self._node_cache[node] = cached
        return cached

    def _resolve(self, prefix_pos: int, node: str | None, combo: int) -> tuple[int, int]:
        """(group index, modeled-customer index by attributes), -1 for none."""
        key = (prefix_pos, node, combo)
        hit = self._resolved.get(key)
        if hit is not None:
            return hit
        chain = self._prefixes.chain(prefix_pos)
        chain_set = set(chain)
        nodes = self._node_groups(node)
        attrs: dict[str, Any] = {}
        if combo >= 0:
            attrs = dict(zip(self._attr_columns, self._combos[combo], strict=True))

        def own(i: int) -> tuple[bool, int]:
            g = self.model.groups[i]
            m = g.match
            if m.is_empty():
                return True, 0
            plen = 0
            if m.prefixes:
                common = self._group_prefixes[i] & chain_set
                if not common:
                    return False, 0
                plen = max(len(prefix_digits(p)) for p in common)
            if m.all_nodes() and i not in nodes:
                return False, 0
            for col, allowed in m.all_attributes().items():
                if attrs.get(col) not in allowed:
                    return False, 0
            return True, plen

        best, best_key = -1, None
        for i, g in enumerate(self.model.groups):
            if g.match.is_empty():
                continue
            ok, plen = own(i)
            if not ok or not all(own(a)[0] for a in self._chain_index[i]):
                continue
            m = g.match
            kinds = bool(m.prefixes) + bool(m.all_nodes()) + bool(m.all_attributes())
            rank = (int(self._depth[i]), plen, kinds, -i)
            if best_key is None or rank > best_key:
                best, best_key = i, rank
        cust = -1
        for j, c in enumerate(self.model.customers):
            if c.attributes and all(attrs.get(k) in v for k, v in c.attributes.items()):
                cust = j
                break
        self._resolved[key] = (best, cust)
        return best, cust

    # --- vectorized assignment --------------------------------------------------------------
    def _codes(
        self,
        numbers: Any,
        nodes: Any | None,
        keys_are_table: bool = False,
        encoded: tuple[np.ndarray, pa.Array] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Group and modeled-customer code of each row (-1: none).

        ``encoded``: the numbers already dictionary-encoded (codes, -1 for null, and the
        distinct values): prefixes, attributes and pseudonyms are then read on the distinct
        values only, and broadcast back by the codes.
        """
        if encoded is not None and not keys_are_table:
            codes, distinct = encoded
            n = len(codes)
            on_distinct = self._number_codes(distinct, False)
            hit = codes >= 0
            prefix_pos, combo, pseudonym = (np.where(hit, v[np.maximum(codes, 0)], -1)
                                            if len(v) else np.full(n, -1, dtype=np.int64)
                                            for v in on_distinct)  # fmt: skip
        elif numbers is None:  # no rule reads numbers (see needs_numbers)
            n = len(nodes) if nodes is not None else 0
            prefix_pos = combo = pseudonym = np.full(n, -1, dtype=np.int64)
        else:
            n = len(numbers)
            prefix_pos, combo, pseudonym = self._number_codes(numbers, keys_are_table)
        if nodes is None:
            node_codes = np.full(n, -1, dtype=np.int64)
            node_values: list[str | None] = []
        else:
            values = nodes.array if isinstance(nodes, pd.Series) else nodes
            if isinstance(values, pd.Categorical):  # carried narrow (cemkit.labels): its codes
                node_arr = pa.DictionaryArray.from_arrays(
                    pa.array(values.codes, mask=values.codes < 0),
                    pa.array(values.categories.astype(str), pa.string()),
                )
            elif isinstance(values, pd.arrays.ArrowStringArray):  # no cast of Arrow strings
                node_arr = pa.array(values)
            else:
                node_strings = pd.Series(nodes).astype(pd.StringDtype("pyarrow"))
                node_arr = pa.array(node_strings, from_pandas=True)
            if isinstance(node_arr, pa.ChunkedArray):
                node_arr = node_arr.combine_chunks()
            if not pa.types.is_dictionary(node_arr.type):
                node_arr = node_arr.dictionary_encode()
            enc = node_arr
            node_codes = np.asarray(
                enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64
            )
            node_values = [str(v) for v in enc.dictionary.to_pylist()]
        n_nodes = len(node_values) + 1
        n_combo = len(self._combos) + 1
        signature = ((prefix_pos + 1) * n_nodes + (node_codes + 1)) * n_combo + (combo + 1)
        sig_codes, sig_uniques = _factorize(signature, (len(self._prefixes.prefixes) + 1)
                                            * n_nodes * n_combo)  # fmt: skip
        group_of = np.empty(len(sig_uniques), dtype=np.int32)
        cust_of = np.empty(len(sig_uniques), dtype=np.int32)
        for k, s in enumerate(sig_uniques.tolist()):
            c = s % n_combo - 1
            rest = s // n_combo
            nd = rest % n_nodes - 1
            pp = rest // n_nodes - 1
            group_of[k], cust_of[k] = self._resolve(pp, node_values[nd] if nd >= 0 else None, c)
        groups = group_of[sig_codes]
        customers = cust_of[sig_codes]
        if self._pseudonyms:
            hit = pseudonym >= 0
            if hit.any():
                owners = np.array([j for _, j in self._pseudonyms], dtype=np.int32)
                customers = customers.copy()
                customers[hit] = owners[pseudonym[hit]]
        return groups, customers

    def _number_codes(
        self, numbers: Any, keys_are_table: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per number: longest prefix's position, attribute combination, pseudonym (-1: none)."""
        n = len(numbers)
        prefix_pos = self._prefixes.longest(numbers, self._max_digits)
        combo = self._combo_of(numbers, keys_are_table)
        pseudonym = np.full(n, -1, dtype=np.int64)
        if self._pseudonyms:
            found = pc.index_in(_as_strings(numbers), value_set=self._pseudonym_values)
            idx = found.to_numpy(zero_copy_only=False)
            pseudonym = np.where(pd.isna(idx), -1, idx).astype(np.int64)
        return prefix_pos, combo, pseudonym

    @property
    def needs_numbers(self) -> bool:
        """Whether any rule reads the customer number (prefixes, attributes, pseudonyms)."""
        return bool(self._prefixes.prefixes or self._attr_columns or self._pseudonyms)

    def group_codes(self, numbers: Any, nodes: Any | None = None) -> np.ndarray:
        """Index into :attr:`group_names` of each number's group (-1 for none), vectorized.

        Parameters
        ----------
        numbers : sequence of str
            Customer numbers, raw E.164 or protected with a kept prefix.
        nodes : sequence of str, optional
            The node of each number's record (for node rules).
        """
        return self._codes(numbers, nodes)[0]

    def assign_customers(self, customers: pd.DataFrame | None = None) -> pd.DataFrame:
        """Group of every customer of the customer table (no node rules apply to customers).

        Parameters
        ----------
        customers : pandas.DataFrame, optional
            Defaults to the table the assigner was built with; its key column holds the numbers.

        Returns
        -------
        pandas.DataFrame
            The key column, ``group`` and ``customer_object`` (categoricals).
        """
        spec = self.model.customer_table
        key = spec.key if spec is not None else "customer"
        if customers is None:
            if self._table_keys is None:
                raise ModelError("no customer table to assign: pass one or name one in the model")
            numbers: Any = self._table_key_series
            same = True
        else:
            if key not in customers.columns:
                raise ModelError(f"customer table lacks its key column {key!r}")
            numbers = customers[key]
            same = False
            if self._attr_columns:
                self._fit_table(customers)
                same = True
        g, c = self._codes(numbers, None, keys_are_table=same)
        out = pd.DataFrame({key: pd.Series(numbers).reset_index(drop=True)})
        out[GROUP_COLUMN] = pd.Categorical.from_codes(g, categories=self.group_names)
        out[CUSTOMER_OBJECT_COLUMN] = pd.Categorical.from_codes(c, categories=self.customer_names)
        return out

    def assign(self, records: pd.DataFrame) -> pd.DataFrame:
        """Records with ``group`` and ``customer_object`` columns added (categoricals).

        The customer number is ``model.numbers.column`` (``a_number`` by default); node rules
        read ``node``.
        """
        col = self.model.numbers.column
        if col in records.columns:
            numbers = records[col]
        elif not self.needs_numbers:
            numbers = None
            if "node" not in records.columns:
                raise ModelError("records have neither customer numbers nor a 'node' column")
        else:
            raise ModelError(f"records have no {col!r} column to model customers by")
        nodes = records["node"] if "node" in records.columns else None
        g, c = self._codes(numbers, nodes)
        out = records.copy(deep=False)  # new columns only; the records are not modified
        out[GROUP_COLUMN] = pd.Categorical.from_codes(g, categories=self.group_names)
        out[CUSTOMER_OBJECT_COLUMN] = pd.Categorical.from_codes(c, categories=self.customer_names)
        return out

    def assign_dask(self, records: Any) -> Any:
        """The same for a Dask DataFrame: one :meth:`assign` per partition (lazy)."""
        meta = self.assign(records._meta)
        return records.map_partitions(self.assign, meta=meta)


def _as_strings(numbers: Any) -> pa.Array:
    """Numbers as an Arrow string array (as they are when they are one already)."""
    if isinstance(numbers, pa.Array):
        return numbers
    return pa.array(pd.Series(numbers).astype(pd.StringDtype("pyarrow")), from_pandas=True)


def _factorize(values: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distinct values of non-negative integers below ``space`` (order: ascending).

    A dense table when ``space`` is small next to the rows (the signatures of a model: a few
    prefixes x nodes x attribute combinations), else a sort. The codes are whatever numbering
    the caller maps back through; only the pairing of codes and values matters.
    """
    if space <= 2 * len(values) + 4096:
        present = np.zeros(space, dtype=bool)
        present[values] = True
        uniques = np.flatnonzero(present)
        slot = np.zeros(space, dtype=np.int64)
        slot[uniques] = np.arange(len(uniques))
        return slot[values], uniques
    uniques, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64, copy=False), uniques


def read_customer_table(model: ServiceModel) -> pd.DataFrame:
    """Read the customer table a model names (Parquet or CSV), as strings."""
    spec = model.customer_table
    if spec is None:
        raise ModelError(f"model {model.name!r} names no customer table")
    path = Path(spec.path)
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise InputError(
            f"{path}: cannot read the customer table ({type(err).__name__})",
            hint="give a Parquet or CSV file with the key column and the attribute columns",
        ) from None
