"""Read a run file into numpy structured arrays in one call.

Example::

    run = read_run("runs/paper.h5")
    run.rounds[run.rounds["scheme"] == b"star"]["latency_s"].mean()

Anything that is not a readable hffm run (missing file, not HDF5, missing
tables, a newer schema, a truncated or corrupted file) raises
:class:`RunFileError` with one line saying why. Files of schema version 1
read with empty ``links`` and input-trace tables.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from traces.schema import META_DIGEST, RUN_TABLES, SCHEMA_VERSION, TABLES, meta_digest


class RunFileError(ValueError):
    """The file is not a readable hffm run."""


@dataclass(frozen=True)
class RunData:
    """A run loaded into memory: ``/meta`` attributes and one structured array per table."""

    path: Path
    meta: dict[str, Any]
    nodes: np.ndarray
    events: np.ndarray
    rounds: np.ndarray
    metrics: np.ndarray
    ledger: np.ndarray
    links: np.ndarray
    mobility: np.ndarray
    contacts: np.ndarray
    availability: np.ndarray
    channel: np.ndarray

    @property
    def complete(self) -> bool:
        """Whether the run finished (an interrupted run holds the rounds flushed before it stopped)."""
        return self.meta.get("status") == "complete"

    @property
    def schemes(self) -> list[str]:
        """Scheme names in run order."""
        return list(self.meta.get("schemes", []))

    @property
    def rounds_done(self) -> dict[str, int]:
        """Last complete round per scheme (0: none); shows how far an interrupted run got."""
        return {s: int(self.scheme_rows("rounds", s)["round"].max(initial=0)) for s in self.schemes}

    def scheme_rows(self, table: str, scheme: str) -> np.ndarray:
        """Rows of ``table`` that belong to ``scheme``."""
        rows: np.ndarray = getattr(self, table)
        return rows[rows["scheme"] == scheme.encode()]

    def frame(self, table: str) -> Any:
        """``table`` as a pandas DataFrame: names as ``str``, enums as categories (needs pandas).

        Raises:
            KeyError: no such table.
            ModuleNotFoundError: pandas is not installed (the numpy arrays ``run.<table>`` need nothing).
        """
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        try:
            import pandas as pd
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                f"RunData.frame needs pandas (pip install pandas); without it use the numpy array run.{table}"
            ) from None
        rows: np.ndarray = getattr(self, table)
        columns: dict[str, Any] = {}
        for name in TABLES[table].names:
            values = rows[name]
            names = h5py.check_enum_dtype(TABLES[table].fields[name][0])
            if names is not None:
                categories = sorted(names, key=names.__getitem__)
                columns[name] = pd.Categorical.from_codes(values.astype(int), categories=categories)
            elif values.dtype.kind == "S":
                columns[name] = np.char.decode(values, "ascii")
            else:
                columns[name] = values
        return pd.DataFrame(columns)


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _open(path: Path) -> h5py.File:
    """Open for reading; a run still being written, or killed while writing, opens as an SWMR reader.

    A SWMR writer leaves the file's "open for write" flag set until it closes
    the file (and forever if it is killed); plain readers refuse such a file,
    SWMR readers see its last flushed state.
    """
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise
        return h5py.File(path, "r", swmr=True)


def read_table(f: h5py.File, name: str, path: Path) -> np.ndarray:
    """Table ``name`` of an open hffm file, checked against the schema's fields."""
    data = f[name][()]
    if data.dtype.names != TABLES[name].names:
        raise RunFileError(f"{path}: table /{name} has fields {data.dtype.names}, expected {TABLES[name].names}")
    return data


def read_meta(f: h5py.File, path: Path) -> dict[str, Any]:
    """``/meta`` attributes of an open hffm file; refuses a newer schema."""
    if "meta" not in f:
        raise RunFileError(f"{path}: not an hffm file (no /meta group)")
    raw = dict(f["meta"].attrs)
    meta = {key: _decode_attr(value) for key, value in raw.items()}
    version = meta.get("schema_version")
    if not isinstance(version, int):
        raise RunFileError(f"{path}: /meta has no integer schema_version")
    if version > SCHEMA_VERSION:
        raise RunFileError(
            f"{path}: schema version {version} is newer than this hffm reads ({SCHEMA_VERSION}); upgrade hffm"
        )
    if META_DIGEST in raw and raw[META_DIGEST] != meta_digest(raw):
        raise RunFileError(f"{path}: /meta is damaged (its checksum does not match)")
    return meta


def open_hffm_file(path: str | os.PathLike[str], what: str = "run") -> tuple[Path, h5py.File]:
    """Open an hffm run or trace file for reading (:class:`RunFileError` if it is missing or not HDF5)."""
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"{path}: no such file")
    try:
        return path, _open(path)
    except Exception as exc:  # h5py reports damaged files with many exception types
        raise RunFileError(f"{path}: unreadable HDF5 {what} ({one_line(exc)})") from None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_run(path: str | os.PathLike[str]) -> RunData:
    """Load every table of the run at ``path``.

    Raises:
        RunFileError: the file is missing, not HDF5, not an hffm run, of a newer
            schema, truncated or corrupted (every chunk is checksummed).
    """
    path, f = open_hffm_file(path)
    try:
        with f:
            meta = read_meta(f, path)
            if "nodes" not in f and "mobility" in f:
                raise RunFileError(f"{path}: a trace file, not a run (use it with `hffm run --trace`)")
            tables = {}
            for name in TABLES:
                if name in f:
                    tables[name] = read_table(f, name, path)
                elif name in RUN_TABLES:
                    raise RunFileError(f"{path}: table /{name} is missing")
                else:  # written by schema version 1
                    tables[name] = np.zeros(0, TABLES[name])
    except RunFileError:
        raise
    except Exception as exc:  # h5py reports damaged files with many exception types
        raise RunFileError(f"{path}: unreadable HDF5 run, damaged or truncated ({one_line(exc)})") from None
    return RunData(path=path, meta=meta, **tables)
