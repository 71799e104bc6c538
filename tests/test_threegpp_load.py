"""3gpp-cdr loader against the generator's truth: every record type, both decoders, framing
variants, a corrupted record, vendor extension tags with and without the operator's module."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cemkit.io.base import registry
from cemkit.synth_3gpp import generate_3gpp, write_file

COMPARED = ["service", "src_3gpp_record_type", "a_number", "b_number", "msisdn", "imsi", "imei",
            "start", "answer", "end", "billsec_s", "outcome", "cause_q850", "closing_cause",
            "partial_seq", "call_id", "node", "leg", "rat", "location_area", "cell",
            "volume_up_bytes", "volume_down_bytes"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("3gpp")
    return generate_3gpp(out, calls=40, sms=20, sessions=30, customers=30, seed=7, vendor=True)


def _load(path: Path, **opts: object) -> tuple[pd.DataFrame, pd.DataFrame]:
    loader = registry.get("3gpp-cdr")(default_region="GB", **opts)
    (part,) = loader.parts([str(path)])
    return loader.read_part(part)


def _expected(world: dict, file: str) -> pd.DataFrame:
    t = world["records"]
    return t[t["file"] == file].reset_index(drop=True)


def _compare(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(got) == len(want)
    for col in COMPARED:
        g = got[col].astype(object).where(got[col].notna(), None).tolist()
        w = want[col].astype(object).where(want[col].notna(), None).tolist()
        if col in ("cause_q850", "closing_cause", "partial_seq", "volume_up_bytes",
                   "volume_down_bytes"):  # fmt: skip
            g = [None if v is None else int(v) for v in g]
            w = [None if v is None else int(v) for v in w]
        assert g == w, col


@pytest.mark.parametrize("engine", ["fast", "library"])
@pytest.mark.parametrize("file", ["msc.ber", "pgw.ber"])
def test_every_record_equals_truth(world: dict, engine: str, file: str) -> None:
    records, quarantine = _load(world["files"][file], engine=engine)
    assert quarantine.empty
    _compare(records, _expected(world, file))


@pytest.mark.parametrize("headers", [False, True])
def test_framing_variants(world: dict, tmp_path: Path, headers: bool) -> None:
    want = _expected(world, "msc.ber")
    raws = list(want["raw"])
    if not headers:  # bare records with filler octets in between, as some MSCs pad blocks
        path = tmp_path / "bare.ber"
        path.write_bytes(b"".join(r + b"\x00" * (i % 3) for i, r in enumerate(raws)) + b"\xff" * 7)
    else:
        path = write_file(tmp_path / "hdr.ber", raws, headers=True)
    records, quarantine = _load(path)
    assert quarantine.empty
    _compare(records, want)


def test_corrupted_record_is_quarantined_alone(world: dict, tmp_path: Path) -> None:
    want = _expected(world, "pgw.ber")
    raws = list(want["raw"])
    victim = 5
    bad = bytearray(raws[victim])
    # break a component's length inside the record: the record's own TLV still delimits it
    pos = bad.index(bytes([0x83]))  # servedIMSI [3]
    bad[pos + 1] = 0x7F
    raws[victim] = bytes(bad)
    for headers in (False, True):
        path = write_file(tmp_path / f"bad{headers}.ber", raws, headers=headers)
        for engine in ("fast", "library"):
            records, quarantine = _load(path, engine=engine)
            assert len(records) == len(raws) - 1
            assert len(quarantine) == 1
            row = quarantine.iloc[0]
            assert row["file"] == str(path)
            offset = int(row["line"])
            assert f"byte offset {offset}" in row["reason"]
            assert row["raw"].startswith(f"{len(raws[victim]) + (4 + 1) * headers} octets")
            _compare(records, want.drop(index=victim).reset_index(drop=True))


def test_broken_outer_length_with_cdr_headers(world: dict, tmp_path: Path) -> None:
    want = _expected(world, "msc.ber")
    raws = list(want["raw"])
    bad = bytearray(raws[3])
    bad[1] = 0x05  # outer length too short: only the CDR header delimits it
    raws[3] = bytes(bad)
    path = write_file(tmp_path / "outer.ber", raws, headers=True)
    records, quarantine = _load(path)
    assert len(records) == len(raws) - 1 and len(quarantine) == 1
    assert "not valid BER" in quarantine["reason"].iloc[0]


def test_truncated_file_quarantines_the_rest_once(world: dict, tmp_path: Path) -> None:
    raws = list(_expected(world, "msc.ber")["raw"])
    blob = b"".join(raws)
    path = tmp_path / "trunc.ber"
    path.write_bytes(blob[: len(blob) - 10])
    records, quarantine = _load(path)
    assert len(records) == len(raws) - 1
    assert len(quarantine) == 1 and "framing lost" in quarantine["reason"].iloc[0]


def test_vendor_tags_skipped_by_standard_decoders(world: dict) -> None:
    path = world["files"]["pgw-vendor.ber"]
    want = _expected(world, "pgw.ber")
    for engine in ("fast", "library"):
        records, quarantine = _load(path, engine=engine)
        assert quarantine.empty
        assert set(records["src_3gpp_unknown_tags"]) == {"200,201"}
        _compare(records, want)


def test_vendor_schema_decodes_vendor_components(world: dict) -> None:
    records, quarantine = _load(world["files"]["pgw-vendor.ber"],
                                schema=str(world["files"]["vendor.asn"]))  # fmt: skip
    assert quarantine.empty
    _compare(records, _expected(world, "pgw.ber"))
    assert records["src_3gpp_unknown_tags"].isna().all()
    assert records["src_3gpp_vendor_fields"].str.contains('"vendorFlags": 3').all()
    assert not records["src_3gpp_vendor_fields"].str.contains("chargingCharacteristics").any()


def test_legacy_ggsn_records(world: dict, tmp_path: Path) -> None:
    """eG-CDRs / G-CDRs (egsnPDPRecord [28], ggsnPDPRecord [21] of TS 32.298 V6) share the PGW
    record's component tags; the PGW records re-tagged must decode to the same values."""
    want = _expected(world, "pgw.ber")
    for outer, kind in ((0xBC, "egsnPDPRecord"), (0xB5, "ggsnPDPRecord")):
        raws = [bytes([outer]) + r[2:] for r in want["raw"]]  # BF 4F (pGWRecord) -> [28] / [21]
        path = write_file(tmp_path / f"{kind}.ber", raws, headers=True)
        records, quarantine = _load(path)
        assert quarantine.empty
        assert set(records["src_3gpp_record_type"]) == {kind}
        got = records.assign(src_3gpp_record_type="pGWRecord")
        if kind == "egsnPDPRecord":
            _compare(got, want)
            assert set(records["src_3gpp_unknown_tags"]) == {"35"}  # servingNodeType: Rel-8+
        else:  # no listOfServiceData in a G-CDR: no volumes
            assert records["volume_up_bytes"].isna().all()
            _compare(got, want.assign(volume_up_bytes=None, volume_down_bytes=None))
        _, q_lib = _load(path, engine="library")
        assert len(q_lib) == len(raws) and q_lib["reason"].str.contains("before Rel-8").all()


def test_forced_file_header_missing_names_the_file(world: dict, tmp_path: Path) -> None:
    from cemkit.errors import InputError

    path = write_file(tmp_path / "bare.ber", list(_expected(world, "msc.ber")["raw"]),
                      headers=False)  # fmt: skip
    with pytest.raises(InputError, match="bare.ber: the file does not start with a TS 32.297"):
        _load(path, headers="file")
    records, quarantine = _load(path, headers="none")
    assert len(records) == len(_expected(world, "msc.ber")) and quarantine.empty
