"""Leak test for 3GPP records: no IMSI, IMEI or MSISDN, in any written form (digits, E.164,
national, TBCD octets and their hex), survives `cemkit protect` with the default policy in any
output file, including the quarantine of a corrupted record and vendor extension fields."""

from __future__ import annotations

from pathlib import Path

from privacy_leaks import leaks, number_forms

from cemkit.io import plan
from cemkit.io.run import load_to_dir
from cemkit.privacy.commands import run_protect
from cemkit.privacy.keys import Key
from cemkit.synth_3gpp import address, generate_3gpp, tbcd, write_file

KEY = Key.from_material(bytes(range(32)), key_id="cemkit-default-2026")


def _secrets(identities: list[str]) -> set[str]:
    found: set[str] = set()
    for value in identities:
        digits = value.lstrip("+")
        found |= number_forms(value, "GB") | {digits}
        for octets in (tbcd(digits), address("+" + digits)):
            found |= {octets.hex(), octets.hex().upper(), octets.decode("latin-1")}
    return found


def test_default_policy_leaks_no_mobile_identity(tmp_path: Path) -> None:
    truth = generate_3gpp(tmp_path / "in", calls=30, sms=20, sessions=20, customers=20, seed=3,
                          vendor=True)  # fmt: skip
    raws = list(truth["records"].query("file == 'msc.ber'")["raw"])
    bad = bytearray(raws[2])
    bad[bad.index(bytes([0x81])) + 1] = 0x7F  # servedIMSI [1] length broken: quarantined
    raws[2] = bytes(bad)
    corrupt = write_file(tmp_path / "in" / "msc-corrupt.ber", raws, headers=False)
    inputs = [str(truth["files"][f]) for f in ("msc.ber", "pgw.ber", "pgw-vendor.ber")]
    inputs.append(str(corrupt))
    run = tmp_path / "load"
    load = load_to_dir(plan(inputs, "3gpp-cdr", default_region="GB"), run)
    assert load["totals"]["rows_quarantined"] >= 1
    secrets = _secrets(truth["identities"])
    assert leaks(run, secrets), "the leak search finds nothing even before protect"
    out = tmp_path / "protected"
    run_protect(run, "default", out, key=KEY, scheduler="threads")
    assert leaks(out, secrets) == []
