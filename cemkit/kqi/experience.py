"""A customer's experience from calls and device measurements together.

Devices belong to customers through a *device table* (``device``, ``msisdn``; an IMSI can stand
in for the device id). The table is protected with the same policy and key as the records
(:func:`protect_device_table`): the device id with the policy's ``device`` rule, the MSISDN
normalized like a loaded number and then protected with the policy's ``a_number`` rule, so the
customer code equals the code that customer's calls carry in ``a_number``. No raw number or
device id is needed after that step.

Examples
--------
>>> table = pd.DataFrame({"device": ["phone001"], "msisdn": ["+353861234567"]})
>>> protected = protect_device_table(table, "default")  # doctest: +SKIP
>>> customer_experience(calls, measurements, protected)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from cemkit.errors import InputError
from cemkit.numbers import normalize_arrow
from cemkit.privacy.engine import protect
from cemkit.privacy.keys import Key
from cemkit.privacy.policy import Policy, load_policy

_STRING = pd.StringDtype("pyarrow")


def protect_device_table(table: pd.DataFrame, policy: Policy | str | Path, *,
                         key: Key | None = None,
                         default_region: str | None = None) -> pd.DataFrame:  # fmt: skip
    """The device table as codes, linkable to the records protected with the same policy.

    ``device`` is protected by the policy's ``device`` rule, ``customer`` (the MSISDN) by its
    ``a_number`` rule: the same code as the customer's calls carry.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``device`` and ``msisdn`` (E.164, or national with ``default_region``).
    policy : Policy, str or path
        The policy the records and measurements were protected with.
    key : Key, optional
        Its key (default: read from the policy's key source).
    default_region : str, optional
        ISO region of national-format numbers, as given to the loader.
    """
    missing = sorted({"device", "msisdn"} - set(table.columns))
    if missing:
        raise InputError(f"device table lacks the column(s) {missing}",
                         hint="give one row per device: device, msisdn")  # fmt: skip
    policy = load_policy(policy)
    numbers, _ = normalize_arrow(pa.array(table["msisdn"].astype(str).tolist(), pa.string()),
                                 default_region)  # fmt: skip
    frame = pd.DataFrame({"device": table["device"].astype(_STRING),
                          "a_number": pd.Series(numbers.to_pylist(), dtype=_STRING,
                                                index=table.index)})  # fmt: skip
    out = protect(frame, policy, key=key)
    for col in ("device", "a_number"):
        if col not in out.columns:
            raise InputError(f"policy {policy.name!r} drops {col!r}: devices cannot be linked "
                             "to customers under it")  # fmt: skip
    return pd.DataFrame({"device": out["device"], "customer": out["a_number"]})


def customer_experience(calls: pd.DataFrame, measurements: pd.DataFrame,
                        devices: pd.DataFrame, *,
                        rsrp_bad_dbm: float = -110.0) -> pd.DataFrame:  # fmt: skip
    """Per customer: calls made and answered, and what the customer's devices measured.

    Parameters
    ----------
    calls : pandas.DataFrame
        Protected usage records (``a_number``, ``outcome``).
    measurements : pandas.DataFrame
        Protected measurement records (``device``, ``state``, ``dl_kbps``, ``rsrp_dbm``).
    devices : pandas.DataFrame
        :func:`protect_device_table` output.
    rsrp_bad_dbm : float
        RSRP below which a sample is out of good coverage.

    Returns
    -------
    pandas.DataFrame
        One row per customer seen in either source: ``calls``, ``answered``,
        ``answer_ratio``, ``samples``, ``devices``, ``dl_kbps_mean`` (active samples),
        ``coverage_bad`` (share of RSRP samples under the threshold).
    """
    c = calls.groupby("a_number", observed=True).agg(
        calls=("outcome", "size"), answered=("outcome", lambda s: int((s == "answered").sum()))
    )
    c.index.name = "customer"
    m = measurements.merge(devices, on="device", how="inner")
    active = m["state"] == "active"
    m = m.assign(_dl=m["dl_kbps"].where(active),
                 _bad=(m["rsrp_dbm"] < rsrp_bad_dbm).where(m["rsrp_dbm"].notna()))  # fmt: skip
    d = m.groupby("customer", observed=True).agg(
        samples=("device", "size"), devices=("device", "nunique"), dl_kbps_mean=("_dl", "mean"),
        coverage_bad=("_bad", "mean"))  # fmt: skip
    out = c.join(d, how="outer")
    out["calls"] = out["calls"].fillna(0).astype("int64")
    out["answered"] = out["answered"].fillna(0).astype("int64")
    out["samples"] = out["samples"].fillna(0).astype("int64")
    out["devices"] = out["devices"].fillna(0).astype("int64")
    out["answer_ratio"] = (out["answered"] / out["calls"]).where(out["calls"] > 0)
    cols = ["calls", "answered", "answer_ratio", "samples", "devices", "dl_kbps_mean",
            "coverage_bad"]  # fmt: skip
    return out[cols].reset_index()


__all__ = ["customer_experience", "protect_device_table"]
