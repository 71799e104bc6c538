"""Synthetic device-agent logs in G-NetTrack Pro's format, with an injected coverage incident.

A small radio network (cells on a ring of sites around a town centre, 5G and LTE) and devices
that run measurement sessions of 10-40 minutes at random times: per-second rows while the
session runs (with gaps: agents are intermittent), the serving cell the nearest one, RSRP
falling with the distance to the site. An *incident* is a coverage hole: during a window, the
samples one cell serves have RSRP around -118 dBm and little throughput; several devices are
made to be in that cell during the window so that the KQIs can see it. The truth (cell and
window) is written to ``agents_truth.json``; a world without incident has nothing to find.

Files are written as ``<out>/formats/gnettrack/<device>_<YYYY.MM.DD_HH.MM.SS>.csv`` with the
app's 26 columns, ``-`` for values not measured and device-local times.

Examples
--------
>>> truth = generate_agents("world", devices=8, seed=1)  # doctest: +SKIP
>>> truth["incident"]["cell"]  # doctest: +SKIP
'A806-C'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The columns G-NetTrack Pro's CSV export writes, in its order.
GNETTRACK_COLUMNS = (
    "Timestamp", "Longitude", "Latitude", "Speed", "Operatorname", "CellID", "NetworkMode",
    "RSRP", "RSRQ", "SNR", "CQI", "RSSI", "DL_bitrate", "UL_bitrate", "State", "PINGAVG",
    "PINGMIN", "PINGMAX", "PINGSTDEV", "PINGLOSS", "CELLHEX", "NODEHEX", "LACHEX", "RAWCELLID",
    "NRxRSRP", "NRxRSRQ",
)  # fmt: skip

_CENTRE = (51.8985, -8.4756)  # a town centre (the grid of sites is made up around it)
_DEG_LAT_M = 111_000.0


def _network(rng: np.random.Generator, sites: int) -> pd.DataFrame:
    """Sites on a ring, three cells (sectors) each; site 0 in the centre."""
    rows = []
    for s in range(sites):
        angle = 2 * np.pi * s / max(sites - 1, 1)
        radius = 0.0 if s == 0 else 2500.0
        lat = _CENTRE[0] + radius * np.sin(angle) / _DEG_LAT_M
        lon = _CENTRE[1] + radius * np.cos(angle) / (_DEG_LAT_M * np.cos(np.radians(_CENTRE[0])))
        node = 0xA800 + s
        tech = "5G" if s % 2 == 0 else "LTE"
        for sector in range(3):
            local = 11 + sector
            rows.append({"site": s, "node": node, "local": local, "eci": node * 256 + local,
                         "lat": lat, "lon": lon, "az": sector * 2 * np.pi / 3,
                         "tech": tech, "tac": 0x9CBA + s // 4})  # fmt: skip
    return pd.DataFrame(rows)


def _serving(net: pd.DataFrame, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the serving cell (nearest site, sector by bearing) and the distance in metres."""
    kx = _DEG_LAT_M * np.cos(np.radians(_CENTRE[0]))
    sites = net.drop_duplicates("site")
    dy = (lat[:, None] - sites.lat.to_numpy()[None, :]) * _DEG_LAT_M
    dx = (lon[:, None] - sites.lon.to_numpy()[None, :]) * kx
    dist = np.hypot(dx, dy)
    nearest = np.argmin(dist, axis=1)
    bearing = np.mod(np.arctan2(dy[np.arange(len(lat)), nearest],
                                dx[np.arange(len(lat)), nearest]), 2 * np.pi)  # fmt: skip
    sector = np.minimum((bearing // (2 * np.pi / 3)).astype(int), 2)
    cell = sites.index.to_numpy()[nearest] + sector  # rows of net are site-major, 3 per site
    return cell, dist[np.arange(len(lat)), nearest]


def _session(rng: np.random.Generator, net: pd.DataFrame, start: pd.Timestamp, seconds: int,
             at_cell: int | None) -> pd.DataFrame:  # fmt: skip
    """Per-second samples of one session (with gaps), in UTC."""
    if at_cell is None:
        origin = net.iloc[int(rng.integers(len(net)))]
        lat0 = origin.lat + rng.normal(0, 600) / _DEG_LAT_M
        lon0 = origin.lon + rng.normal(0, 600) / _DEG_LAT_M
    else:  # somewhere inside the given cell's sector, 300-900 m from its site
        c = net.iloc[at_cell]
        r = rng.uniform(300, 900)
        a = c.az + np.pi / 3 + rng.uniform(-0.4, 0.4)
        lat0 = c.lat + r * np.sin(a) / _DEG_LAT_M
        lon0 = c.lon + r * np.cos(a) / (_DEG_LAT_M * np.cos(np.radians(_CENTRE[0])))
    moving = at_cell is None and rng.random() < 0.4
    speed = rng.uniform(20, 60) if moving else 0.0
    t = np.arange(seconds)
    keep = rng.random(seconds) > 0.08  # agents miss seconds
    t = t[keep]
    # Moving devices drive round a loop of 800 m radius (they stay inside the network).
    phase = speed / 3.6 * t / 800.0 + rng.uniform(0, 2 * np.pi)
    loop = 800.0 if moving else 0.0
    kx = _DEG_LAT_M * np.cos(np.radians(_CENTRE[0]))
    lat = lat0 + loop * np.sin(phase) / _DEG_LAT_M + rng.normal(0, 3, len(t)) / _DEG_LAT_M
    lon = lon0 + loop * np.cos(phase) / kx + rng.normal(0, 3, len(t)) / kx
    cell, dist = _serving(net, lat, lon)
    if at_cell is not None:
        cell[:] = at_cell
    rsrp = np.clip(-84 - 12 * dist / 1500 + rng.normal(0, 5, len(t)), -125, -60)
    state = np.where(rng.random(len(t)) < 0.8, "D", "I")
    dl = np.where(state == "D", np.maximum(0, 40_000 + 900 * (rsrp + 95)
                                           + rng.normal(0, 5000, len(t))), 0)  # fmt: skip
    return pd.DataFrame({"time": start + pd.to_timedelta(t, unit="s"), "lat": lat, "lon": lon,
                         "speed": np.full(len(t), speed), "cell": cell, "rsrp": rsrp,
                         "state": state, "dl": dl})  # fmt: skip


def _write(df: pd.DataFrame, net: pd.DataFrame, path: Path, tz: str,
           rng: np.random.Generator) -> None:  # fmt: skip
    c = net.iloc[df.cell.to_numpy()].reset_index(drop=True)
    n = len(df)
    local = df.time.dt.tz_convert(tz).dt.strftime("%Y.%m.%d_%H.%M.%S").to_numpy()
    nr = c.tech.to_numpy() == "5G"
    ping = rng.random(n) < 0.03
    rsrp = df.rsrp.to_numpy()
    out = pd.DataFrame({
        "Timestamp": local,
        "Longitude": np.round(df.lon.to_numpy(), 6), "Latitude": np.round(df.lat.to_numpy(), 6),
        "Speed": np.round(df.speed.to_numpy()).astype(int), "Operatorname": "B",
        "CellID": c.local.to_numpy(), "NetworkMode": c.tech.to_numpy(),
        "RSRP": np.round(rsrp).astype(int), "RSRQ": np.round(-10 + (rsrp + 90) / 6).astype(int),
        "SNR": np.round(np.clip((rsrp + 110) / 2, -5, 25)).astype(float),
        "CQI": np.clip(np.round((rsrp + 120) / 4), 1, 15).astype(int),
        "RSSI": np.round(rsrp + 10).astype(int),
        "DL_bitrate": np.round(df.dl.to_numpy()).astype(int),
        "UL_bitrate": np.round(df.dl.to_numpy() / 20).astype(int),
        "State": df.state.to_numpy(),
        "PINGAVG": np.where(ping, np.round(rng.normal(40, 5, n)).astype(str), "-"),
        "PINGMIN": np.where(ping, "30.0", "-"), "PINGMAX": np.where(ping, "55.0", "-"),
        "PINGSTDEV": np.where(ping, "3.0", "-"), "PINGLOSS": np.where(ping, "0.0", "-"),
        "CELLHEX": [f"{v:X}" for v in c.local], "NODEHEX": [f"{v:X}" for v in c.node],
        "LACHEX": [f"{v:X}" for v in c.tac], "RAWCELLID": c.eci.to_numpy(),
        "NRxRSRP": np.where(nr, np.round(rsrp - 1).astype(str), "-"),
        "NRxRSRQ": np.where(nr, "-12.0", "-"),
    })  # fmt: skip
    out.to_csv(path, index=False, columns=list(GNETTRACK_COLUMNS))


def generate_agents(
    out_dir: str | os.PathLike[str],
    *,
    devices: int = 20,
    sessions: int = 3,
    days: int = 1,
    seed: int = 0,
    incident: bool = True,
    start: str = "2026-01-05T00:00:00Z",
    tz: str = "Europe/Dublin",
    sites: int = 7,
    incident_devices: int = 6,
) -> dict[str, Any]:
    """Write G-NetTrack logs of ``devices`` devices, optionally with one coverage incident.

    Parameters
    ----------
    out_dir : path
        World directory; logs go to ``formats/gnettrack/``, the truth to ``agents_truth.json``.
    devices, sessions : int
        Devices, and sessions per device (each 10-40 minutes at a random time of the period).
    days : int
        Length of the period.
    seed : int
        Random seed (same seed, same files).
    incident : bool
        Inject a coverage hole: one cell, a 3-hour window, ``incident_devices`` devices in it.
    start, tz : str
        Start of the period (UTC) and the devices' zone (G-NetTrack writes local time).
    sites : int
        Base stations (3 cells each).
    incident_devices : int
        Devices sent into the incident's cell during its window.

    Returns
    -------
    dict
        The truth: devices, rows, files, and ``incident`` (cell, node, start, end) or None.
    """
    if devices < 1 or sessions < 1 or days < 1:
        raise ValueError("devices, sessions and days must be at least 1")
    rng = np.random.default_rng(seed)
    origin = pd.Timestamp(start)
    net = _network(rng, sites)
    folder = Path(out_dir) / "formats" / "gnettrack"
    folder.mkdir(parents=True, exist_ok=True)
    period = days * 86_400
    truth: dict[str, Any] = {"devices": devices, "rows": 0, "files": [], "incident": None}
    plan: list[tuple[int, pd.Timestamp, int, int | None]] = []
    for d in range(devices):
        for _ in range(sessions):
            seconds = int(rng.integers(600, 2400))
            offset = int(rng.integers(0, period - seconds))
            plan.append((d, origin + pd.Timedelta(seconds=offset), seconds, None))
    window = None
    if incident:
        cell = int(rng.integers(len(net)))
        w0 = origin + pd.Timedelta(hours=int(rng.integers(1, max(2, days * 24 - 4))))
        window = (w0, w0 + pd.Timedelta(hours=3))
        for d in rng.choice(devices, size=min(incident_devices, devices), replace=False):
            s = w0 + pd.Timedelta(seconds=int(rng.integers(0, 3600)))
            plan.append((int(d), s, int(rng.integers(1800, 3600)), cell))
        row = net.iloc[cell]
        truth["incident"] = {
            "cell": f"{row.node:X}-{row.local:X}", "node": f"{row.node:X}",
            "start": window[0].isoformat(), "end": window[1].isoformat(),
        }  # fmt: skip
    for d, s, seconds, at in plan:
        df = _session(rng, net, s, seconds, at)
        if window is not None:
            hit = ((df.cell.to_numpy() == cell) & (df.time >= window[0]).to_numpy()
                   & (df.time < window[1]).to_numpy())  # fmt: skip
            df.loc[hit, "rsrp"] = -118 + rng.normal(0, 3, int(hit.sum()))
            df.loc[hit, "dl"] = np.where(df.loc[hit, "state"] == "D", 300.0, 0.0)
        stamp = s.tz_convert(tz).strftime("%Y.%m.%d_%H.%M.%S")
        path = folder / f"phone{d:03d}_{stamp}.csv"
        _write(df, net, path, tz, rng)
        truth["rows"] += len(df)
        truth["files"].append(path.name)
    (Path(out_dir) / "agents_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


__all__ = ["GNETTRACK_COLUMNS", "generate_agents"]
