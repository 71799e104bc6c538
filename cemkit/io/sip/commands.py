"""``cemkit sip-capture``: write a synthetic SIP capture (pcap/pcapng) to try the sip-pcap loader.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="cemkit")
>>> sub = parser.add_subparsers()
>>> _ = register(sub)
>>> args = parser.parse_args(["sip-capture", "--calls", "5", "--out", "x.pcap"])
>>> args.calls, args.pcapng
(5, False)
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from typing import Any

from cemkit.errors import OutputError


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sip-capture`` sub-command to a ``cemkit`` argparse sub-parsers object."""
    p = subparsers.add_parser(
        "sip-capture",
        help="write a synthetic SIP capture (calls, registrations, RTP) for sip-pcap",
        description=(
            "Write a seeded capture of overlapping SIP call attempts over UDP and TCP with RTP, "
            "failures, authentication challenges and registrations, then load it with "
            "`cemkit load sip-pcap FILE --out DIR`. Numbers are fictitious (+44 1632 960xxx)."
        ),
    )
    p.add_argument("--calls", type=int, default=1000, help="call attempts (default 1000)")
    p.add_argument("--rtp-packets", type=int, default=60,
                   help="RTP packets each way per answered call (default 60)")  # fmt: skip
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--pcapng", action="store_true", help="write pcapng instead of pcap")
    p.add_argument("--out", required=True, metavar="FILE", help="capture file to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing FILE")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Write the capture (atomically); errors go to :func:`cemkit.cli.main`."""
    from cemkit.io.sip.capgen import write_workload
    from cemkit.runs import atomic_file

    if os.path.exists(args.out) and not args.overwrite:
        raise OutputError(f"{args.out} exists", hint="pass --overwrite to replace it")
    if args.calls < 1 or args.rtp_packets < 0:
        raise OutputError("--calls must be at least 1 and --rtp-packets not negative")
    try:
        with atomic_file(args.out) as tmp, open(tmp, "wb") as fh:
            statuses = write_workload(fh, args.calls, rtp_packets=args.rtp_packets,
                                      seed=args.seed, pcapng=args.pcapng)  # fmt: skip
    except OSError as exc:
        raise OutputError(f"cannot write {args.out}: {exc.strerror}") from None
    counts = ", ".join(f"{n} x {s}" for s, n in sorted(Counter(statuses.values()).items()))
    print(f"{args.out}: {len(statuses)} call attempts ({counts}), "
          f"{(len(statuses) + 9) // 10} registrations")  # fmt: skip
    return 0
