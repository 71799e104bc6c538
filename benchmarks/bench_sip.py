"""Benchmark: SIP capture → xDRs with cemkit's sip-pcap loader vs a tshark field extraction.

The capture is generated at run time (never committed) with cemkit.io.sip.capgen: a mix of call
attempts over UDP and TCP (TCP messages split over segments and retransmitted), answered calls
with RTP both ways (some packets lost), busy/cancelled/rejected/challenged attempts, and
registrations, spread over a period so dialogs overlap. Then:

* cemkit, one process (``shards=1``), and with Dask over processes (``--shards`` parts);
* the baseline a user would pick: ``tshark -r F -Y sip -T fields -e sip.Call-ID -e sip.Method
  -e sip.Status-Code -e sip.CSeq`` (field extraction only: no dialog state, no RTP stats).

Results are cross-checked: the number of calls (Call-IDs with an initial INVITE) and the final
status per Call-ID derived from tshark's output must equal cemkit's xDRs.

Run: ``python -m benchmarks.bench_sip --size 1500`` (calls; ~140 packets per call).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

import dask
import dask.dataframe as dd
import dpkt
import pandas as pd
from distributed import Client, LocalCluster

from cemkit.io.sip.capgen import Call, CaptureWriter, write_call, write_registration
from cemkit.io.sip_pcap import SipPcapLoader

T0 = 1_700_000_000.0


def build_capture(path: str, calls: int, rtp_packets: int, seed: int = 7) -> dict[str, int]:
    """Write ``calls`` call attempts (+ one registration per 10 calls); return expected statuses.

    Calls start 0.25 s apart and last a few seconds, so many dialogs are open at once; their
    packets are merged in time order before writing.
    """
    import io
    import random

    rng = random.Random(seed)
    frames: list[tuple[float, bytes]] = []
    expected: dict[str, int] = {}
    for i in range(calls):
        buf = io.BytesIO()
        w = CaptureWriter(buf)
        kind = rng.random()
        status, cancel, challenge = 200, False, None
        if kind < 0.10:
            status = 486
        elif kind < 0.15:
            status, cancel = 487, True
        elif kind < 0.20:
            status = 404
        elif kind < 0.25:
            status, challenge = 503, 407
        elif kind < 0.35:
            challenge = 407
        transport = "tcp" if i % 3 == 0 else "udp"
        host = f"10.{(i >> 8) & 255}.{i & 255}.1"
        call = Call(
            f"bench-{i:07d}@cemkit", T0 + i * 0.25, status=status, transport=transport,
            caller=(host, 5060 if transport == "udp" else 30000 + i % 20000),
            callee=("10.255.0.1", 5060), cancel=cancel, challenge=challenge,
            rtp_packets=rtp_packets if status == 200 else 0,
            rtp_ports=(20000 + 2 * (i % 10000), 40000 + 2 * (i % 10000)),
            rtp_drop_fwd=frozenset(rng.sample(range(rtp_packets), 2)) if rtp_packets > 4 else
            frozenset(),
            tcp_cuts=(rng.randint(5, 300), rng.randint(301, 600)),
            a_user=f"+4416329{i % 100000:05d}", b_user=f"+4416339{(i * 7) % 100000:05d}",
        )  # fmt: skip
        write_call(w, call)
        expected[call.call_id] = status
        if i % 10 == 0:
            write_registration(w, f"reg-{i:07d}@cemkit", T0 + i * 0.25 + 0.1,
                               client=(host, 5062), user=call.a_user)  # fmt: skip
        buf.seek(0)
        frames.extend((float(ts), bytes(data)) for ts, data in dpkt.pcap.Reader(buf))
    frames.sort(key=lambda f: f[0])
    with open(path, "wb") as fh:
        writer = dpkt.pcap.Writer(fh)
        for ts, data in frames:
            writer.writepkt(data, ts=ts)
    return expected


def run_cemkit(path: str, shards: int, client: Client | None = None) -> tuple[pd.DataFrame, float]:
    """Read the capture into records: in this process, or as ``shards`` parts on a cluster."""
    loader = SipPcapLoader(shards=shards)
    start = time.perf_counter()
    parts = loader.parts([path])
    if client is None:
        records = loader.read_part(parts[0])[0]
    else:
        graph = dd.from_map(lambda p: loader.read_part(p)[0], parts, meta=loader.meta())
        records = client.compute(graph).result()
    return records, time.perf_counter() - start


def run_tshark(path: str) -> tuple[dict[str, int | None], float]:
    cmd = ["tshark", "-r", path, "-Y", "sip", "-T", "fields", "-E", "separator=|",
           "-e", "sip.Call-ID", "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.CSeq",
           "-e", "sip.to.tag"]  # fmt: skip
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - start
    rows = [line.split("|") for line in out.splitlines()]
    calls: dict[str, int | None] = {}
    for cid, method, _status, _cseq, to_tag in rows:
        if method == "INVITE" and not to_tag:
            calls.setdefault(cid, None)
    for cid, _method, status, cseq, _ in rows:
        if cid in calls and status and cseq.endswith("INVITE") and int(status) >= 200:
            calls[cid] = int(status)
    return calls, elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1500, help="call attempts in the capture")
    ap.add_argument("--rtp", type=int, default=60, help="RTP packets per direction per call")
    ap.add_argument("--shards", type=int, default=2, help="Dask parts (processes)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs; the best is reported")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="bench-sip-")
    path = os.path.join(tmp, "bench.pcap")
    t = time.perf_counter()
    expected = build_capture(path, args.size, args.rtp)
    build_s = time.perf_counter() - t
    with open(path, "rb") as fh:
        packets = sum(1 for _ in dpkt.pcap.Reader(fh))
    size_mb = os.path.getsize(path) / 1e6
    print(f"capture: {packets} packets, {size_mb:.1f} MB, {args.size} calls "
          f"(built in {build_s:.1f} s)")  # fmt: skip

    results = []
    best = float("inf")
    for _ in range(args.repeat):
        one, elapsed = run_cemkit(path, 1)
        best = min(best, elapsed)
    xdr = one[one["record_kind"] == "xdr"]
    got = {c: int(s) for c, s in zip(xdr["call_id"], xdr["sip_status"], strict=True)}
    assert got == expected, "cemkit's final statuses differ from the generated truth"
    results.append(("cemkit sip-pcap, 1 process", best, len(xdr)))
    if args.shards > 1:
        # A LocalCluster of worker processes, started (and warmed up) before timing, as a
        # user's cluster would be.
        t = time.perf_counter()
        cluster = LocalCluster(n_workers=args.shards, threads_per_worker=1, processes=True,
                               dashboard_address=None)  # fmt: skip
        with cluster, Client(cluster) as client:
            run_cemkit(path, args.shards, client)
            print(f"LocalCluster start + warm-up run: {time.perf_counter() - t:.1f} s")
            best = float("inf")
            for _ in range(args.repeat):
                many, elapsed = run_cemkit(path, args.shards, client)
                best = min(best, elapsed)
        key = ["record_id"]
        pd.testing.assert_frame_equal(
            one.sort_values(key).reset_index(drop=True),
            many.sort_values(key).reset_index(drop=True),
        )
        results.append((f"cemkit sip-pcap, Dask {args.shards} procs", best, len(xdr)))

    tshark = shutil.which("tshark")
    if tshark:
        best = float("inf")
        for _ in range(args.repeat):
            calls, elapsed = run_tshark(path)
            best = min(best, elapsed)
        assert calls == got, "tshark-derived final statuses differ from cemkit's"
        results.append(("tshark -T fields (SIP fields only)", best, len(calls)))
    else:
        print("tshark not found: baseline skipped")

    print(f"\nstatuses: {dict(Counter(got.values()))}")
    print(f"{'tool':40} {'seconds':>8} {'packets/s':>12} {'xDRs/s':>10}")
    for name, secs, n in results:
        print(f"{name:40} {secs:8.2f} {packets / secs:12,.0f} {n / secs:10,.0f}")
    if tshark:
        base = results[-1][1]
        for name, secs, _ in results[:-1]:
            print(f"ratio {name} vs tshark: {base / secs:.2f}x (>1 means cemkit is faster)")
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    except (OSError, StopIteration):
        pass
    print(f"\nmachine: nproc={os.cpu_count()}, {cpu}; python {sys.version.split()[0]}, "
          f"dpkt {dpkt.__version__}, pandas {pd.__version__}, dask {dask.__version__}")  # fmt: skip
    if tshark:
        version = subprocess.run(["tshark", "--version"], capture_output=True, text=True,
                                 check=False).stdout  # fmt: skip
        print(version.splitlines()[0] if version else "tshark version unknown")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
