"""Import mobility and contact traces from other tools into :class:`~traces.inputs.InputTraces`.

=============  ===========================================  ==============================
format         input                                        gives
=============  ===========================================  ==============================
``one``        ONE simulator connection events,             contacts
               ``<time> CONN <a> <b> up|down`` per line
``bonnmotion`` BonnMotion ``.movements``: line i is node i,  mobility
               ``t x y t x y ...`` (2D waypoints)
``sumo``       SUMO FCD XML (``--fcd-output``):             mobility
               ``<timestep time=..><vehicle id=.. x=.. y=../>``
``csv``        header ``t_s,node,x_m,y_m``, one sample       mobility
               per line
=============  ===========================================  ==============================

Positions are resampled onto the union of all sample times
(:func:`~traces.inputs.resample`): each node moves linearly between its own
samples and is held at its first (last) position before (after) them, so the
trace moves exactly as the source between samples. Node ids: ONE host
addresses and CSV ``node`` values are used as given (CSV nodes must be
0..n−1); BonnMotion nodes are numbered by line; SUMO vehicle ids become
0, 1, 2, … in the order they first appear. A malformed file raises
:class:`TraceFormatError` naming the file and line.

Example::

    >>> import tempfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp()) / "walk.movements"
    >>> _ = src.write_text("0 0 0 10 10 0\\n0 5 5 20 5 25\\n")
    >>> trace = import_bonnmotion(src).mobility
    >>> trace.times_s.tolist(), trace.at(10.0).tolist()
    ([0.0, 10.0, 20.0], [[10.0, 0.0], [5.0, 15.0]])
"""

from __future__ import annotations

import csv
import math
import os
import re
import xml.parsers.expat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from traces.inputs import InputTraces, TraceError, contact_rows, resample
from traces.schema import TABLES


class TraceFormatError(ValueError):
    """An input file to import is malformed (the message names the file and the line)."""


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TraceFormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFormatError(f"{path}: cannot read ({exc})") from None


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NODE = re.compile(r"\d{1,10}", re.ASCII)
MAX_NODE_ID = 2**31 - 1
"""Node ids are stored as int32."""


def _number(text: str, where: str, what: str) -> float:
    """A finite decimal number (ASCII: ``12``, ``-3.5``, ``1e3``; no ``nan``, ``inf`` or ``1_000``)."""
    text = text.strip()
    value = float(text) if _NUMBER.fullmatch(text) else math.nan
    if not math.isfinite(value):
        raise TraceFormatError(f"{where}: {what} {text!r} is not a finite decimal number")
    return value


def _node_id(text: str, where: str) -> int:
    """A node id: a decimal integer 0..2^31 − 1."""
    text = text.strip()
    if not _NODE.fullmatch(text) or int(text) > MAX_NODE_ID:
        raise TraceFormatError(f"{where}: node {text!r} is not an integer in 0..{MAX_NODE_ID}")
    return int(text)


def _mobility(tracks: list[tuple[np.ndarray, np.ndarray]], path: Path) -> InputTraces:
    if not tracks:
        raise TraceFormatError(f"{path}: no positions")
    try:
        return InputTraces(mobility=resample(tracks))
    except TraceError as exc:
        raise TraceFormatError(f"{path}: {exc}") from None


def import_one(path: str | os.PathLike[str]) -> InputTraces:
    """Contacts from ONE connection events (``<time> CONN <a> <b> up|down``; ``#`` comments, blank lines skipped).

    A contact is up from its ``up`` to its ``down`` event; one still up at the
    end of the file ends at the file's last event time.
    """
    path = Path(path)
    open_since: dict[tuple[int, int], float] = {}
    rows: list[tuple[float, float, int, int]] = []
    last_t = -math.inf
    for number, line in enumerate(_read_lines(path), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}:{number}"
        if len(fields) != 5 or fields[1] != "CONN" or fields[4] not in ("up", "down"):
            raise TraceFormatError(f"{where}: expected '<time> CONN <a> <b> up|down', got {line.strip()!r}")
        t = _number(fields[0], where, "time")
        if t < last_t:
            raise TraceFormatError(f"{where}: time {t} is before the previous event ({last_t})")
        last_t = t
        a, b = _node_id(fields[2], where), _node_id(fields[3], where)
        if a == b:
            raise TraceFormatError(f"{where}: a node cannot be in contact with itself ({a})")
        pair = (min(a, b), max(a, b))
        if fields[4] == "up":
            if pair in open_since:
                raise TraceFormatError(f"{where}: contact {pair[0]}-{pair[1]} is already up")
            open_since[pair] = t
        else:
            if pair not in open_since:
                raise TraceFormatError(f"{where}: contact {pair[0]}-{pair[1]} goes down but is not up")
            rows.append((open_since.pop(pair), t, *pair))
    rows += [(start, last_t, *pair) for pair, start in open_since.items()]
    if not rows:
        raise TraceFormatError(f"{path}: no CONN events")
    return InputTraces(contacts=contact_rows(np.array(rows, TABLES["contacts"])))


def import_bonnmotion(path: str | os.PathLike[str]) -> InputTraces:
    """Positions from a BonnMotion ``.movements`` file (line i: node i's waypoints ``t x y t x y ...``)."""
    path = Path(path)
    lines = _read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    tracks = []
    for number, line in enumerate(lines, start=1):
        where = f"{path}:{number}"
        fields = line.split()
        if not fields or len(fields) % 3:
            raise TraceFormatError(
                f"{where}: expected 't x y' triples (one line per node, 2D), got {len(fields)} numbers"
            )
        values = np.array([_number(f, where, "value") for f in fields]).reshape(-1, 3)
        if np.any(np.diff(values[:, 0]) <= 0):
            raise TraceFormatError(f"{where}: waypoint times must increase strictly")
        tracks.append((values[:, 0], values[:, 1:]))
    return _mobility(tracks, path)


def import_csv(path: str | os.PathLike[str]) -> InputTraces:
    """Positions from a CSV file with header ``t_s,node,x_m,y_m`` (nodes 0..n−1, any row order)."""
    path = Path(path)
    lines = _read_lines(path)
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader, [])]
    if header != ["t_s", "node", "x_m", "y_m"]:
        raise TraceFormatError(f"{path}:1: expected the header 't_s,node,x_m,y_m', got {','.join(header)!r}")
    samples: dict[int, dict[float, tuple[float, float]]] = {}
    try:
        for fields in reader:
            where = f"{path}:{reader.line_num}"
            if not "".join(fields).strip():
                continue
            if len(fields) != 4:
                raise TraceFormatError(f"{where}: expected 4 columns t_s,node,x_m,y_m, got {len(fields)}")
            t = _number(fields[0], where, "t_s")
            node = _node_id(fields[1], where)
            x, y = _number(fields[2], where, "x_m"), _number(fields[3], where, "y_m")
            if t in samples.setdefault(node, {}):
                raise TraceFormatError(f"{where}: node {node} has two positions at t = {t}")
            samples[node][t] = (x, y)
    except csv.Error as exc:
        raise TraceFormatError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None
    for expected, node in enumerate(sorted(samples)):
        if node != expected:
            raise TraceFormatError(f"{path}: nodes must be 0..n-1; node {expected} has no rows")
    tracks = []
    for node in range(len(samples)):
        times = sorted(samples[node])
        tracks.append((np.array(times), np.array([samples[node][t] for t in times])))
    return _mobility(tracks, path)


def import_sumo_fcd(path: str | os.PathLike[str]) -> InputTraces:
    """Positions from SUMO floating-car data (``sumo --fcd-output``), vehicles numbered in first-seen order.

    Reads ``<timestep time="..">`` and its ``<vehicle id=".." x=".." y=".."/>``
    children (Cartesian network coordinates, m); other elements (e.g.
    ``<person>``) are ignored. A vehicle is held at its first position before
    it appears and at its last after it leaves. Parsed with the stdlib expat
    parser; documents declaring entities are refused (nothing external is
    ever fetched).
    """
    path = Path(path)
    parser = xml.parsers.expat.ParserCreate()
    ids: dict[str, int] = {}
    samples: list[list[tuple[float, float, float]]] = []
    state: dict[str, Any] = {"time": None}

    def where() -> str:
        return f"{path}:{parser.CurrentLineNumber}"

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == "timestep":
            if "time" not in attrs:
                raise TraceFormatError(f"{where()}: <timestep> without a time attribute")
            state["time"] = _number(attrs["time"], where(), "time")
        elif name == "vehicle":
            if state["time"] is None:
                raise TraceFormatError(f"{where()}: <vehicle> outside a <timestep>")
            missing = [key for key in ("id", "x", "y") if key not in attrs]
            if missing:
                raise TraceFormatError(f"{where()}: <vehicle> without {', '.join(missing)}")
            node = ids.setdefault(attrs["id"], len(ids))
            if node == len(samples):
                samples.append([])
            track = samples[node]
            t = state["time"]
            if track and t <= track[-1][0]:
                raise TraceFormatError(f"{where()}: vehicle {attrs['id']!r} appears twice at or before t = {t}")
            track.append((t, _number(attrs["x"], where(), "x"), _number(attrs["y"], where(), "y")))

    def end(name: str) -> None:
        if name == "timestep":
            state["time"] = None

    def refuse_entities(*_args: object) -> None:
        raise TraceFormatError(f"{where()}: entity declarations are not allowed in an FCD file")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.EntityDeclHandler = refuse_entities
    try:
        with open(path, "rb") as f:
            parser.ParseFile(f)
    except FileNotFoundError:
        raise TraceFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise TraceFormatError(f"{path}: cannot read ({exc})") from None
    except xml.parsers.expat.ExpatError as exc:
        raise TraceFormatError(f"{path}:{exc.lineno}: malformed XML ({xml.parsers.expat.ErrorString(exc.code)})") from None
    tracks = [(np.array([s[0] for s in track]), np.array([s[1:] for s in track])) for track in samples]
    return _mobility(tracks, path)


IMPORTERS: dict[str, Callable[[str | os.PathLike[str]], InputTraces]] = {
    "one": import_one,
    "bonnmotion": import_bonnmotion,
    "sumo": import_sumo_fcd,
    "csv": import_csv,
}
"""Format name (as ``hffm import`` takes it) → importer."""
