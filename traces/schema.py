"""The HDF5 run format: table names, compound dtypes and enums (schema version 2).

Every table is a one-dimensional, chunked, resizable dataset of a compound type
made only of plain HDF5 types (integers, floats, fixed-length ASCII strings and
HDF5 enums), so HDFView and h5dump open it without Python. Every chunk carries
a Fletcher-32 checksum, so corrupted bytes are detected on reading.

Layout::

    /meta           attributes: schema_version, scenario (JSON), seed, versions (JSON),
                    created_utc, schemes (JSON list), status ("running" | "complete")
    /nodes          one row per node: id, kind, x_m, y_m, edge, flops_per_s, n_samples
    /events         one row per node charged by a simulated action: a transfer gives one
                    "tx" row for the transmitter (bytes sent, transmit energy) and one "rx"
                    row per receiver (bytes received, receive energy); compute and
                    aggregation give one "local" row
    /rounds         one row per scheme × round: time, latency, bytes and energy by category
    /metrics        one row per scheme × round × task: held-out loss and accuracy
    /ledger         one row per scheme × node × event kind: totals of bytes, energy, busy time
    /links          one row per radio link: medium, link id, ends, distance at t = 0
    /mobility       input trace: device positions on a common time grid (t_s, node, x_m, y_m)
    /contacts       input trace: D2D contact intervals (start_s, end_s, a, b)
    /availability   input trace: when each device is switched on (node, on_s, off_s)
    /channel        input trace: every channel gain handed out (scheme, medium, t_s, link, gain)

The four input-trace tables are also the whole content of a *trace file*
(:mod:`traces.inputs`), so a run file is itself a valid trace file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 2

EVENT_KINDS: tuple[str, ...] = (
    "compute",
    "uplink",
    "downlink",
    "backhaul_up",
    "backhaul_down",
    "wan_up",
    "wan_down",
    "aggregate",
    "d2d",
    "dropout",
    "edge_crash",
    "cloud_outage",
    "guard",
)
"""Kinds of simulated actions, in enum order (the order is part of the format).

Fault kinds (:mod:`sim.faults`; no energy, so no energy category): ``dropout`` (a device
leaves mid-round, ``local``), ``edge_crash`` and ``cloud_outage`` (a node waits for a crashed
or unreachable server: its ``local`` row lasts the wait), ``guard`` (a server screens out an
update: ``local`` row of the server, ``peer`` the sender, outcome ``rejected``).
"""

ENERGY_CATEGORIES: dict[str, str] = {
    "compute": "compute",
    "uplink": "uplink",
    "wan_up": "uplink",
    "downlink": "downlink",
    "wan_down": "downlink",
    "backhaul_up": "backhaul",
    "backhaul_down": "backhaul",
    "aggregate": "compute",
    "d2d": "d2d",
}
"""Event kind → energy category of the per-round breakdown (uplink, downlink, backhaul, compute, d2d)."""

CATEGORIES: tuple[str, ...] = ("uplink", "downlink", "backhaul", "compute", "d2d")

ROLES: tuple[str, ...] = ("tx", "rx", "local")
"""Whose side of an action a row charges: the transmitter, one receiver, or a local action."""

OUTCOMES: tuple[str, ...] = ("ok", "failed", "missed", "rejected")
"""How an action ended: done, failed (link outage, dropout, crash), cut by a round deadline, or screened out."""
NODE_KINDS: tuple[str, ...] = ("device", "edge", "cloud")

NAME_BYTES = 32
"""Fixed length of the ASCII name fields (scheme, module, task)."""

MEDIUM_BYTES = 16
"""Fixed length of the ASCII radio medium names (``uplink``, ``downlink``, ...)."""


def _enum(names: tuple[str, ...]) -> np.dtype:
    return h5py.enum_dtype({name: i for i, name in enumerate(names)}, basetype="u1")


EVENT_KIND_DTYPE = _enum(EVENT_KINDS)
ROLE_DTYPE = _enum(ROLES)
OUTCOME_DTYPE = _enum(OUTCOMES)
NODE_KIND_DTYPE = _enum(NODE_KINDS)
_NAME = f"S{NAME_BYTES}"
_MEDIUM = f"S{MEDIUM_BYTES}"

TABLES: dict[str, np.dtype] = {
    "nodes": np.dtype(
        [
            ("id", "<i4"),
            ("kind", NODE_KIND_DTYPE),
            ("x_m", "<f8"),
            ("y_m", "<f8"),
            ("edge", "<i4"),
            ("flops_per_s", "<f8"),
            ("n_samples", "<i4"),
        ]
    ),
    "events": np.dtype(
        [
            ("scheme", _NAME),
            ("round", "<i4"),
            ("t_start_s", "<f8"),
            ("duration_s", "<f8"),
            ("kind", EVENT_KIND_DTYPE),
            ("role", ROLE_DTYPE),
            ("node", "<i4"),
            ("peer", "<i4"),
            ("module", _NAME),
            ("bytes", "<i8"),
            ("energy_j", "<f8"),
            ("outcome", OUTCOME_DTYPE),
        ]
    ),
    "rounds": np.dtype(
        [
            ("scheme", _NAME),
            ("round", "<i4"),
            ("t_end_s", "<f8"),
            ("latency_s", "<f8"),
            ("cloud_aggregation", "u1"),
            ("bytes_up", "<i8"),
            ("bytes_down", "<i8"),
        ]
        + [(f"energy_{c}_j", "<f8") for c in CATEGORIES]
        + [("energy_total_j", "<f8")]
    ),
    "metrics": np.dtype(
        [
            ("scheme", _NAME),
            ("round", "<i4"),
            ("time_s", "<f8"),
            ("task", _NAME),
            ("loss", "<f8"),
            ("accuracy", "<f8"),
        ]
    ),
    "ledger": np.dtype(
        [
            ("scheme", _NAME),
            ("node", "<i4"),
            ("kind", EVENT_KIND_DTYPE),
            ("bytes_tx", "<i8"),
            ("bytes_rx", "<i8"),
            ("energy_j", "<f8"),
            ("busy_s", "<f8"),
        ]
    ),
    "links": np.dtype(
        [
            ("medium", _MEDIUM),
            ("link", "<i4"),
            ("a", "<i4"),
            ("b", "<i4"),
            ("distance_m", "<f8"),
        ]
    ),
    "mobility": np.dtype([("t_s", "<f8"), ("node", "<i4"), ("x_m", "<f8"), ("y_m", "<f8")]),
    "contacts": np.dtype([("start_s", "<f8"), ("end_s", "<f8"), ("a", "<i4"), ("b", "<i4")]),
    "availability": np.dtype([("node", "<i4"), ("on_s", "<f8"), ("off_s", "<f8")]),
    "channel": np.dtype(
        [
            ("scheme", _NAME),
            ("medium", _MEDIUM),
            ("t_s", "<f8"),
            ("link", "<i4"),
            ("gain", "<f8"),
        ]
    ),
}
"""Table name → row dtype."""

RUN_TABLES: tuple[str, ...] = ("nodes", "events", "rounds", "metrics", "ledger")
"""Tables every run file has (schema version 1 had only these)."""

INPUT_TABLES: tuple[str, ...] = ("mobility", "contacts", "availability", "channel")
"""The input-trace tables: what a trace file holds and ``hffm run --trace`` replays."""

COMPRESSED_TABLES = frozenset({"events", "mobility", "channel", "contacts", "availability"})
"""Tables large enough that shuffle + gzip(1) pays off."""

CHUNK_ROWS: dict[str, int] = {
    "nodes": 64,
    "links": 64,
    "rounds": 128,
    "metrics": 256,
    "ledger": 256,
    "events": 1024,
    "channel": 1024,
}
"""Rows per chunk. Uncompressed chunks take their full size on disk, so small tables get small ones; the
compressed tables appended every round get 1024 rows, because each flush rewrites the last partial chunk
elsewhere in the file (measured on the paper preset: 3.3 MB of events with 1024-row chunks, 4.9 MB with 4096)."""
DEFAULT_CHUNK_ROWS = 4096


META_DIGEST = "meta_sha256"
"""``/meta`` attribute holding :func:`meta_digest` of the others, so damaged metadata is detected."""


def meta_digest(attrs: Mapping[str, Any]) -> str:
    """SHA-256 over the ``/meta`` attributes as stored, except ``status`` (set last) and the digest itself."""
    digest = hashlib.sha256()
    for key in sorted(attrs):
        if key in ("status", META_DIGEST):
            continue
        value = attrs[key]
        value = value.decode(errors="replace") if isinstance(value, bytes) else value
        value = value.item() if isinstance(value, np.generic) else value
        digest.update(f"{key}={value!r}\n".encode(errors="replace"))
    return digest.hexdigest()


def create_table(parent: h5py.Group, name: str, rows: np.ndarray | None = None) -> h5py.Dataset:
    """Create table ``name`` in ``parent`` (chunked, resizable, checksummed; compressed where it pays)."""
    compress = name in COMPRESSED_TABLES
    data = np.zeros(0, TABLES[name]) if rows is None else np.asarray(rows).astype(TABLES[name], copy=False)
    return parent.create_dataset(
        name,
        data=data,
        maxshape=(None,),
        chunks=(CHUNK_ROWS.get(name, DEFAULT_CHUNK_ROWS),),
        compression="gzip" if compress else None,
        compression_opts=1 if compress else None,
        shuffle=compress,
        fletcher32=True,
    )
