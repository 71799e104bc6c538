"""HMAC-SHA256 of many short distinct values: cemkit's two compressions against ``hmac.digest``.

    python -m benchmarks.bench_hmac [--values 200000] [--repeat 5]

The values are what protect hashes per file: half Asterisk call ids (``1772409600.123``, all
distinct), half E.164 numbers (``+4420`` and 8 digits). Contenders, in one process, each over
the same values (CPU seconds, best of ``--repeat``):

- ``hmac.digest``: what a user writes (one call per value, the key's pads re-derived each time);
- ``cemkit numba``: :func:`cemkit.privacy._hmac.hmac_words`' jitted loop with its own
  SHA-256 compression (the fallback);
- ``cemkit openssl``: the same loop calling OpenSSL's ``SHA256_Transform`` (SHA-NI where the
  CPU has it), the backend chosen where libcrypto exports it.

All three must give the same digests (checked).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import time

import numpy as np
import pyarrow as pa

from benchmarks.common import machine, timed, versions
from cemkit import arrowstr
from cemkit.privacy import _hmac


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--values", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    half = args.values // 2
    values = [f"1772409600.{i}" for i in range(half)] + [
        f"+4420{i:08d}" for i in range(args.values - half)
    ]
    arr = pa.array(values, pa.string())
    key = bytes(range(32))
    offsets, data, _ = arrowstr.buffers(arr)
    encoded = [v.encode() for v in values]
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    print(f"# machine: {machine()}; load {' '.join(load)} (shared machine)")
    print(f"# {versions(('cemkit', 'numpy', 'pyarrow', 'numba'))}; backend {_hmac.backend()}")
    _hmac._run(_hmac._digests, offsets[:3], data, key)  # compiled or loaded from the cache
    cpu = time.process_time
    t_py, want = timed(lambda: [hmac.digest(key, m, hashlib.sha256) for m in encoded],
                       max(1, args.repeat // 2), cpu)  # fmt: skip
    rows = [("hmac.digest per value", t_py)]
    t_nb, nb = timed(lambda: _hmac._run(_hmac._digests, offsets, data, key), args.repeat, cpu)
    rows.append(("cemkit numba", t_nb))
    got = [nb]
    if _hmac._ADDRESS is not None:
        _hmac._run(_hmac._digests_openssl, offsets[:3], data, key)
        t_os, os_words = timed(lambda: _hmac._run(_hmac._digests_openssl, offsets, data, key),
                               args.repeat, cpu)  # fmt: skip
        rows.append(("cemkit openssl", t_os))
        got.append(os_words)
    for words in got:
        if [w.astype(">u4").tobytes() for w in np.asarray(words)] != want:
            raise SystemExit("digests differ from hmac.digest")
    print(f"\n{args.values:,} distinct values, CPU seconds, best of {args.repeat}\n")
    print("| contender | CPU s | ns per value | vs hmac.digest | vs cemkit numba |")
    print("|---|---:|---:|---:|---:|")
    for name, t in rows:
        print(f"| {name} | {t:.3f} | {t / args.values * 1e9:.0f} | {t_py / t:.1f}x "
              f"| {t_nb / t:.1f}x |")  # fmt: skip
    print("\ndigests equal: OK")


if __name__ == "__main__":
    main()
