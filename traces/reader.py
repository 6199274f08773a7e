"""Read a run file into numpy structured arrays in one call.

Example::

    run = read_run("runs/paper.h5")
    run.rounds[run.rounds["scheme"] == b"star"]["latency_s"].mean()

Anything that is not a readable hffm run (missing file, not HDF5, missing
tables, a newer schema) raises :class:`RunFileError` with one line saying why.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from traces.schema import SCHEMA_VERSION, TABLES


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

    @property
    def complete(self) -> bool:
        """Whether the run finished (an interrupted run holds the rounds flushed before it stopped)."""
        return self.meta.get("status") == "complete"

    @property
    def schemes(self) -> list[str]:
        """Scheme names in run order."""
        return list(self.meta.get("schemes", []))

    def scheme_rows(self, table: str, scheme: str) -> np.ndarray:
        """Rows of ``table`` that belong to ``scheme``."""
        rows: np.ndarray = getattr(self, table)
        return rows[rows["scheme"] == scheme.encode()]


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


def read_run(path: str | os.PathLike[str]) -> RunData:
    """Load every table of the run at ``path``.

    Raises:
        RunFileError: the file is missing, not HDF5, not an hffm run, or of a newer schema.
    """
    path = Path(path)
    if not path.is_file():
        raise RunFileError(f"{path}: no such file")
    try:
        with _open(path) as f:
            if "meta" not in f:
                raise RunFileError(f"{path}: not an hffm run (no /meta group)")
            meta = {key: _decode_attr(value) for key, value in f["meta"].attrs.items()}
            version = meta.get("schema_version")
            if not isinstance(version, int):
                raise RunFileError(f"{path}: /meta has no integer schema_version")
            if version > SCHEMA_VERSION:
                raise RunFileError(
                    f"{path}: schema version {version} is newer than this hffm reads ({SCHEMA_VERSION}); upgrade hffm"
                )
            tables = {}
            for name, dtype in TABLES.items():
                if name not in f:
                    raise RunFileError(f"{path}: table /{name} is missing")
                data = f[name][()]
                if data.dtype.names != dtype.names:
                    raise RunFileError(f"{path}: table /{name} has fields {data.dtype.names}, expected {dtype.names}")
                tables[name] = data
    except RunFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise RunFileError(f"{path}: unreadable HDF5 run ({exc})") from None
    return RunData(path=path, meta=meta, **tables)
