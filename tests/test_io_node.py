"""``node`` comes from the channel / trunk of Asterisk and FreeSWITCH records (``node=`` wins)."""

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cemkit import io as cio
from cemkit import synth
from cemkit.io.asterisk import _channel_peer_regex, channel_peer


def _load(path, fmt, **opts):
    return cio.load(str(path), format=fmt, **opts).compute(scheduler="sync")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("nworld")
    synth.generate(out, records=1_500, seed=9, incidents=0, days=1, workers=1)
    return out


def test_asterisk_node_is_the_calling_channels_peer(world):
    recs = _load(world / "formats" / "asterisk" / "Master.csv", "asterisk",
                 tz="Europe/London", default_region="GB")  # fmt: skip
    canonical = pd.read_parquet(world / "records")
    # the switch each CDR was written by (the synthetic PBX names its channels after it)
    wrote = canonical[(canonical["record_kind"] == "cdr") & (canonical["service"] == "voice")]
    assert recs["node"].notna().all()
    got = recs["node"].value_counts().sort_index()
    want = wrote["node"].value_counts().sort_index()
    assert got.to_dict() == want.to_dict()


def test_asterisk_phone_and_address_peers_are_no_node(samples_dir):
    # the lab PBX's channels name phones (SIP/100-...) and device addresses (SIP/172.19...:5020)
    recs = _load(samples_dir / "asterisk" / "lab-pbx-Master.csv", "asterisk")
    assert recs["node"].isna().all()
    named = _load(samples_dir / "asterisk" / "lab-pbx-Master.csv", "asterisk", node="lab-pbx")
    assert (named["node"] == "lab-pbx").all()


def test_node_option_overrides_the_channel(world):
    recs = _load(world / "formats" / "asterisk" / "Master.csv", "asterisk", node="pbx-1")
    assert (recs["node"] == "pbx-1").all()


def test_freeswitch_node_from_gateway_else_sofia_profile(tmp_path):
    template = ["caller_id_number", "destination_number", "start_stamp", "end_stamp",
                "billsec", "hangup_cause", "uuid", "sip_gateway_name", "channel_name"]  # fmt: skip
    rows = [
        (
            '"1000","442079460000","2026-03-02 10:00:00","2026-03-02 10:01:00","60",'
            '"NORMAL_CLEARING","u1","lon-gw1","sofia/external/1000@10.0.0.1"'
        ),
        (
            '"1001","442079460001","2026-03-02 10:02:00","2026-03-02 10:03:00","60",'
            '"NORMAL_CLEARING","u2","","sofia/internal/1001@10.0.0.2"'
        ),
    ]
    path = tmp_path / "Master.csv"
    path.write_text("\n".join(rows) + "\n")
    recs = _load(path, "freeswitch", template=template)
    assert recs["node"].tolist() == ["lon-gw1", "internal"]
    assert _load(path, "freeswitch", template=template, node="fs1")["node"].tolist() == ["fs1"] * 2


def test_freeswitch_example_template_has_no_node_unless_given(samples_dir):
    recs = _load(samples_dir / "freeswitch" / "Master.csv", "freeswitch")
    assert recs["node"].isna().all()
    assert (_load(samples_dir / "freeswitch" / "Master.csv", "freeswitch",
                  node="fs-prod")["node"] == "fs-prod").all()  # fmt: skip


_CHANNEL_CHARS = "SIP/-;12abcdefABCDEF0123456789xyz@:._"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=_CHANNEL_CHARS, max_size=14),
                          st.from_regex(r"\A(SIP|PJSIP|Local)/[a-z0-9@:.-]{0,8}-[0-9a-fA-F]{1,8}"
                                        r"(;[12])?\Z")),
                max_size=30))  # fmt: skip
def test_channel_peer_equals_the_regex_on_every_row(names):
    # the fast path (suffix cut at the last "-", regex on distinct names) must equal the
    # regular expressions applied to each row
    arr = pa.array(names, pa.string())
    assert channel_peer(arr).to_pylist() == _channel_peer_regex(arr).to_pylist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=_CHANNEL_CHARS, max_size=14)), max_size=20),
       st.integers(0, 4), st.integers(0, 4))  # fmt: skip
def test_channel_peer_of_a_slice_or_chunks_equals_the_regex(names, lo, cut):
    # the names' bytes are read through their offsets: a slice (offset into the buffers, a
    # validity bitmap not starting at bit 0) and chunked input must read the same names
    arr = pa.array(["SIP/x-1", None, *names], pa.string())
    arr = arr.slice(min(lo, len(arr)), max(0, len(arr) - lo - cut))
    assert channel_peer(arr).to_pylist() == _channel_peer_regex(arr).to_pylist()
    half = len(arr) // 2
    chunked = pa.chunked_array([arr.slice(0, half), arr.slice(half)], pa.string())
    assert channel_peer(chunked).to_pylist() == _channel_peer_regex(arr).to_pylist()
