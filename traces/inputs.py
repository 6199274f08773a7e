"""Input traces — mobility, contacts, availability, channel samples — and HDF5 trace files.

A *trace file* holds the four input-trace tables of :mod:`traces.schema`
(``/mobility``, ``/contacts``, ``/availability``, ``/channel``) and a
``/meta`` group; a run file holds the same tables (the traces the run used),
so a run file is itself a valid trace file.

- :class:`MobilityTrace` — device positions on one common time grid; positions
  between samples are interpolated linearly per node and held constant before
  the first and after the last sample.
- :class:`AvailabilitySchedule` — the half-open intervals [on_s, off_s) during
  which each device is switched on; a device with no interval is never on.
- :class:`ChannelTrace` — every channel gain handed out, per scheme and
  medium, in the order the simulator drew them.
- contacts — a structured array of closed intervals [start_s, end_s] between
  nodes a < b (:func:`contact_rows` validates one).

Example::

    >>> trace = MobilityTrace(np.array([0.0, 10.0]), np.array([[[0.0, 0.0]], [[10.0, 0.0]]]))
    >>> trace.at(2.5).tolist(), trace.at(99.0).tolist()
    ([[2.5, 0.0]], [[10.0, 0.0]])
    >>> on = AvailabilitySchedule(np.array([(0, 0.0, 5.0)], TABLES["availability"]))
    >>> on.is_on(0, 4.9), on.is_on(0, 5.0), on.is_on(1, 1.0)
    (True, False, False)
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from traces.reader import RunFileError, one_line, open_hffm_file, read_meta, read_table
from traces.recorder import new_hdf5_file
from traces.schema import INPUT_TABLES, META_DIGEST, SCHEMA_VERSION, TABLES, create_table, meta_digest


class TraceError(ValueError):
    """An input trace is inconsistent (the message says what is wrong)."""


@dataclass(frozen=True, eq=False)
class MobilityTrace:
    """Positions of ``n_nodes`` devices sampled on a common time grid.

    Args:
        times_s: (T,) strictly increasing sample times in s, T ≥ 1.
        xy_m: (T, n_nodes, 2) positions in m; ``xy_m[k, i]`` is node i at ``times_s[k]``.

    Between samples a node moves in a straight line at constant speed (the
    model :func:`channels.contacts.contact_intervals` assumes):
    p(t) = p_k + (t − t_k)/(t_{k+1} − t_k)·(p_{k+1} − p_k) for t_k ≤ t ≤ t_{k+1}.
    """

    times_s: np.ndarray
    xy_m: np.ndarray

    def __post_init__(self) -> None:
        times = np.array(self.times_s, dtype=float)
        xy = np.array(self.xy_m, dtype=float)
        if times.ndim != 1 or len(times) == 0:
            raise TraceError(f"mobility times_s must be a non-empty 1-D array, got shape {times.shape}")
        if xy.ndim != 3 or xy.shape[0] != len(times) or xy.shape[2] != 2 or xy.shape[1] == 0:
            raise TraceError(f"mobility xy_m must have shape ({len(times)}, n_nodes, 2), got {xy.shape}")
        if not (np.isfinite(times).all() and np.isfinite(xy).all()):
            raise TraceError("mobility times and positions must be finite")
        if np.any(np.diff(times) <= 0):
            k = int(np.flatnonzero(np.diff(times) <= 0)[0])
            raise TraceError(f"mobility times must increase strictly (sample {k + 1}: {times[k + 1]} after {times[k]})")
        times.flags.writeable = xy.flags.writeable = False
        object.__setattr__(self, "times_s", times)
        object.__setattr__(self, "xy_m", xy)

    @property
    def n_nodes(self) -> int:
        return int(self.xy_m.shape[1])

    def at(self, t_s: float) -> np.ndarray:
        """(n_nodes, 2) positions at ``t_s`` (linear between samples, held outside the grid)."""
        times = self.times_s
        if t_s <= times[0]:
            return self.xy_m[0]
        if t_s >= times[-1]:
            return self.xy_m[-1]
        k = int(np.searchsorted(times, t_s, side="right")) - 1
        w = (t_s - times[k]) / (times[k + 1] - times[k])
        return self.xy_m[k] + w * (self.xy_m[k + 1] - self.xy_m[k])

    def rows(self) -> np.ndarray:
        """``/mobility`` rows, time-major: (t_s, node, x_m, y_m)."""
        n_times, n_nodes = self.xy_m.shape[:2]
        rows = np.zeros(n_times * n_nodes, TABLES["mobility"])
        rows["t_s"] = np.repeat(self.times_s, n_nodes)
        rows["node"] = np.tile(np.arange(n_nodes), n_times)
        rows["x_m"], rows["y_m"] = self.xy_m.reshape(-1, 2).T
        return rows

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> MobilityTrace:
        """A trace from ``/mobility`` rows: every time must list every node 0..n−1 exactly once."""
        if len(rows) == 0:
            raise TraceError("mobility table is empty")
        order = np.lexsort((rows["node"], rows["t_s"]))
        rows = rows[order]
        times, counts = np.unique(rows["t_s"], return_counts=True)
        n_nodes = int(rows["node"].max()) + 1
        if rows["node"].min() < 0 or np.any(counts != n_nodes) or len(rows) != len(times) * n_nodes:
            raise TraceError(
                f"mobility rows must give every node 0..{n_nodes - 1} exactly once at every sample time "
                f"(one common time grid); resample the trace onto a grid first"
            )
        expected = np.tile(np.arange(n_nodes), len(times))
        if not np.array_equal(rows["node"], expected):
            raise TraceError("mobility rows must give every node exactly once at every sample time")
        xy = np.stack([rows["x_m"], rows["y_m"]], axis=-1).reshape(len(times), n_nodes, 2)
        return cls(times, xy)


def resample(tracks: Sequence[tuple[np.ndarray, np.ndarray]], times_s: np.ndarray | None = None) -> MobilityTrace:
    """Put per-node tracks sampled at their own times onto one common grid.

    Args:
        tracks: per node, (t_s (K,), xy_m (K, 2)) with strictly increasing t_s.
        times_s: the grid; default: the union of every node's sample times.

    Each node's position on the grid is its own track interpolated linearly,
    held at its first position before its first sample and at its last after
    its last, so the result moves exactly as the tracks between their samples.
    """
    grid = np.unique(np.concatenate([t for t, _ in tracks])) if times_s is None else np.asarray(times_s, float)
    xy = np.empty((len(grid), len(tracks), 2))
    for node, (t, p) in enumerate(tracks):
        if np.any(np.diff(t) <= 0):
            raise TraceError(f"node {node}: sample times must increase strictly")
        xy[:, node, 0] = np.interp(grid, t, p[:, 0])
        xy[:, node, 1] = np.interp(grid, t, p[:, 1])
    return MobilityTrace(grid, xy)


class AvailabilitySchedule:
    """When each device is switched on: half-open intervals [on_s, off_s) per node (``off_s`` may be ∞).

    Args:
        rows: ``/availability`` rows (node, on_s, off_s); a node's intervals must not overlap.
    """

    def __init__(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows).astype(TABLES["availability"], copy=False)
        if len(rows) and (rows["node"].min() < 0 or np.isnan(rows["on_s"]).any() or np.isnan(rows["off_s"]).any()):
            raise TraceError("availability rows need node >= 0 and numeric on_s, off_s")
        bad = np.flatnonzero(~(rows["on_s"] < rows["off_s"]))
        if len(bad):
            r = rows[bad[0]]
            raise TraceError(f"availability row {bad[0]}: on_s ({r['on_s']}) must be before off_s ({r['off_s']})")
        rows = rows[np.lexsort((rows["on_s"], rows["node"]))]
        self._rows = rows
        self._on: dict[int, np.ndarray] = {}
        self._off: dict[int, np.ndarray] = {}
        for node in np.unique(rows["node"]):
            mine = rows[rows["node"] == node]
            if np.any(mine["on_s"][1:] < mine["off_s"][:-1]):
                raise TraceError(f"availability of node {node}: intervals overlap")
            self._on[int(node)], self._off[int(node)] = mine["on_s"], mine["off_s"]

    @property
    def max_node(self) -> int:
        """Highest node id with an interval (−1 if none)."""
        return int(self._rows["node"].max(initial=-1))

    def is_on(self, node: int, t_s: float) -> bool:
        """Whether ``node`` is switched on at ``t_s``."""
        on = self._on.get(node)
        if on is None:
            return False
        k = int(np.searchsorted(on, t_s, side="right")) - 1
        return bool(k >= 0 and t_s < self._off[node][k])

    def rows(self) -> np.ndarray:
        """``/availability`` rows sorted by (node, on_s)."""
        return self._rows.copy()


def contact_rows(rows: np.ndarray) -> np.ndarray:
    """Validated ``/contacts`` rows sorted by (start_s, a, b): closed intervals with a < b, start ≤ end."""
    rows = np.asarray(rows).astype(TABLES["contacts"], copy=False)
    bad = np.flatnonzero(~((rows["start_s"] <= rows["end_s"]) & (rows["a"] < rows["b"]) & (rows["a"] >= 0)))
    if len(bad):
        r = rows[bad[0]]
        raise TraceError(
            f"contact row {bad[0]} ({r['start_s']}, {r['end_s']}, {r['a']}, {r['b']}) needs start_s <= end_s "
            "and 0 <= a < b"
        )
    return rows[np.lexsort((rows["b"], rows["a"], rows["start_s"]))]


ChannelSample = tuple[float, str, np.ndarray, np.ndarray]
"""(t_s, medium, links, gains): what ``sim.world.World.channel_samples`` collects."""


class ChannelTrace:
    """Recorded channel gains, per scheme and medium, in drawing order.

    Args:
        rows: ``/channel`` rows (scheme, medium, t_s, link, gain), in the order they were drawn.
        schemes: the schemes the trace covers, including any that drew no gain
            (star FL never uses a radio); default: those with rows.
    """

    def __init__(self, rows: np.ndarray, schemes: Sequence[str] = ()) -> None:
        rows = np.asarray(rows).astype(TABLES["channel"], copy=False)
        if not (np.isfinite(rows["gain"]).all() and (rows["gain"] >= 0).all() and (rows["link"] >= 0).all()):
            raise TraceError("channel rows need finite, non-negative gains and link ids >= 0")
        self._rows = rows
        with_rows = [s.decode() for s in dict.fromkeys(rows["scheme"])]
        self.schemes: list[str] = list(dict.fromkeys([*schemes, *with_rows]))
        """Scheme names covered by the trace."""

    @classmethod
    def from_samples(cls, scheme: str, samples: Sequence[ChannelSample]) -> ChannelTrace:
        """The rows of one scheme's samples (t_s, medium, links, gains)."""
        rows = np.zeros(sum(len(links) for _, _, links, _ in samples), TABLES["channel"])
        if samples:
            counts = [len(links) for _, _, links, _ in samples]
            rows["scheme"] = scheme
            rows["medium"] = np.repeat([medium for _, medium, _, _ in samples], counts)
            rows["t_s"] = np.repeat([t for t, _, _, _ in samples], counts)
            rows["link"] = np.concatenate([links for _, _, links, _ in samples])
            rows["gain"] = np.concatenate([gains for _, _, _, gains in samples])
        return cls(rows, [scheme])

    @property
    def media(self) -> list[str]:
        """Media with samples (of any scheme), in first-seen order."""
        return [m.decode() for m in dict.fromkeys(self._rows["medium"])]

    def samples(self, scheme: str, medium: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t_s, links, gains) of ``scheme`` on ``medium``, in drawing order."""
        mine = self._rows[(self._rows["scheme"] == scheme.encode()) & (self._rows["medium"] == medium.encode())]
        return mine["t_s"], mine["link"].astype(int), mine["gain"]

    def rows(self) -> np.ndarray:
        return self._rows.copy()

    def __len__(self) -> int:
        return len(self._rows)


@dataclass(frozen=True, eq=False)
class InputTraces:
    """The content of a trace file; ``None`` / empty where the file has no such trace."""

    mobility: MobilityTrace | None = None
    contacts: np.ndarray = field(default_factory=lambda: np.zeros(0, TABLES["contacts"]))
    availability: AvailabilitySchedule | None = None
    channel: ChannelTrace | None = None

    def tables(self) -> dict[str, np.ndarray]:
        """Rows of each input-trace table (empty arrays where absent)."""
        empty = {name: np.zeros(0, TABLES[name]) for name in INPUT_TABLES}
        return {
            "mobility": self.mobility.rows() if self.mobility is not None else empty["mobility"],
            "contacts": self.contacts,
            "availability": self.availability.rows() if self.availability is not None else empty["availability"],
            "channel": self.channel.rows() if self.channel is not None else empty["channel"],
        }


def write_trace(
    path: str | os.PathLike[str], traces: InputTraces, meta: dict[str, Any] | None = None, force: bool = False
) -> Path:
    """Write ``traces`` to a new trace file (temporary file beside it, renamed into place when complete).

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.
        FileNotFoundError: the directory does not exist.
    """
    with new_hdf5_file(path, force, libver="latest") as f:
        group = f.create_group("meta")
        group.attrs["schema_version"] = SCHEMA_VERSION
        group.attrs["kind"] = "trace"
        group.attrs["created_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if traces.channel is not None:
            group.attrs["schemes"] = json.dumps(traces.channel.schemes)
        for key, value in (meta or {}).items():
            group.attrs[key] = value
        group.attrs[META_DIGEST] = meta_digest(dict(group.attrs))
        for name, rows in traces.tables().items():
            create_table(f, name, rows)
    return Path(path)


def read_trace(path: str | os.PathLike[str]) -> InputTraces:
    """The input traces of a trace file or a run file (absent or empty tables give ``None`` / empty).

    Raises:
        RunFileError: the file is missing, not an hffm file, of a newer schema,
            damaged, or holds an inconsistent trace (the message names the table).
    """
    path, f = open_hffm_file(path, "trace file")
    try:
        with f:
            meta = read_meta(f, path)
            tables = {name: read_table(f, name, path) for name in INPUT_TABLES if name in f}
    except RunFileError:
        raise
    except Exception as exc:  # h5py reports damaged files with many exception types
        raise RunFileError(f"{path}: unreadable trace file, damaged or truncated ({one_line(exc)})") from None
    if not tables:
        raise RunFileError(f"{path}: no input traces (tables {', '.join(INPUT_TABLES)})")
    try:
        mobility = tables.get("mobility")
        availability = tables.get("availability")
        channel = tables.get("channel")
        return InputTraces(
            mobility=MobilityTrace.from_rows(mobility) if mobility is not None and len(mobility) else None,
            contacts=contact_rows(tables.get("contacts", np.zeros(0, TABLES["contacts"]))),
            availability=AvailabilitySchedule(availability) if availability is not None and len(availability) else None,
            channel=ChannelTrace(channel, meta.get("schemes", [])) if channel is not None and len(channel) else None,
        )
    except TraceError as exc:
        raise RunFileError(f"{path}: {exc}") from None
