"""A customer's experience joins calls and device measurements through the device table."""

from __future__ import annotations

import pandas as pd
import pytest

from cemkit import synth
from cemkit.errors import InputError
from cemkit.io import plan
from cemkit.io.run import load_to_dir
from cemkit.kqi.experience import customer_experience, protect_device_table
from cemkit.privacy.commands import run_protect
from cemkit.privacy.keys import Key
from cemkit.synth_agents import generate_agents

KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")


def test_calls_and_measurements_of_one_customer_combine(tmp_path):
    world = tmp_path / "w"
    synth.generate(world, records=1500, days=1, seed=5, incidents=0, formats=False, workers=1)
    truth = generate_agents(world, devices=3, sessions=1, seed=5, incident=False)
    raw_calls = pd.read_parquet(world / "records")
    numbers = raw_calls.a_number.value_counts().index[:3].tolist()
    table = pd.DataFrame({"device": ["phone000", "phone001", "phone002"], "msisdn": numbers})
    run_protect(world, "default", tmp_path / "calls", key=KEY, scheduler="threads")
    load_to_dir(plan(str(world / "formats" / "gnettrack"), "gnettrack"), tmp_path / "m")
    run_protect(tmp_path / "m", "default", tmp_path / "mp", key=KEY, scheduler="threads")
    devices = protect_device_table(table, "default", key=KEY)
    assert not devices.customer.isin(numbers).any() and not devices.device.isin(table.device).any()
    exp = customer_experience(pd.read_parquet(tmp_path / "calls" / "records"),
                              pd.read_parquet(tmp_path / "mp" / "records"), devices)  # fmt: skip
    exp = exp.set_index("customer")
    rows_per_device = {}
    for f in truth["files"]:
        n = (world / "formats" / "gnettrack" / f).read_bytes().count(b"\n") - 1
        rows_per_device[f.split("_")[0]] = rows_per_device.get(f.split("_")[0], 0) + n
    for device, number, token in zip(table.device, numbers, devices.customer, strict=True):
        row = exp.loc[token]
        assert row.calls == (raw_calls.a_number == number).sum()
        assert (
            row.answered
            == ((raw_calls.a_number == number) & (raw_calls.outcome == "answered")).sum()
        )
        assert row.samples == rows_per_device[device] and row.devices == 1
        assert row.dl_kbps_mean > 0
    # Customers without a device still appear with their calls.
    assert (exp.samples == 0).sum() == exp.index.size - 3


def test_device_table_needs_its_columns():
    with pytest.raises(InputError, match="msisdn"):
        protect_device_table(pd.DataFrame({"device": ["x"]}), "default", key=KEY)
