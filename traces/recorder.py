"""Append-only HDF5 writer for one run (the trace sink of the simulator).

The writer never overwrites an existing file unless asked (``force=True``),
and then writes to a temporary file beside it and renames it into place only
when the run completes, so the old file survives an interrupted run. Rows are
appended to resizable, chunked datasets of a file in HDF5 single-writer /
multiple-reader (SWMR) mode, whose writes are ordered so that the file on disk
is consistent at every :meth:`RunWriter.flush`: a run killed at any moment
(even SIGKILL) leaves a readable file holding everything flushed so far, with
``/meta`` attribute ``status`` still ``"running"``.

Example::

    >>> import tempfile, os, numpy as np
    >>> from traces.schema import TABLES
    >>> path = os.path.join(tempfile.mkdtemp(), "run.h5")
    >>> with RunWriter(path, meta={"seed": 1}) as w:
    ...     w.append("metrics", np.zeros(2, TABLES["metrics"]))
    >>> from traces.reader import read_run
    >>> len(read_run(path).metrics)
    2
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from traces.schema import META_DIGEST, SCHEMA_VERSION, TABLES, create_table, meta_digest


def temp_beside(path: Path, suffix: str = ".part") -> Path:
    """A new empty file in ``path``'s directory, for writing a replacement of ``path`` to rename onto it.

    Its permissions are those of a newly created file (0666 less the umask), not
    ``mkstemp``'s private 0600, so the renamed result reads like any new file.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


class OutputExistsError(FileExistsError):
    """The output file exists and ``force`` was not given."""


@contextmanager
def new_hdf5_file(path: str | os.PathLike[str], force: bool = False, **options: Any) -> Iterator[h5py.File]:
    """An HDF5 file written beside ``path`` and renamed onto it when the block completes (removed if it fails).

    Raises:
        OutputExistsError: ``path`` exists and ``force`` is false.
        FileNotFoundError: the directory does not exist.
    """
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; pass --force to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output directory {path.parent} does not exist")
    tmp = temp_beside(path)
    try:
        with h5py.File(tmp, "w", **options) as f:
            yield f
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


class RunWriter:
    """Create a run file and append rows to its tables.

    Args:
        path: final file name.
        meta: attributes stored on ``/meta`` (dicts and lists are stored as JSON).
        force: replace an existing file (atomically, on :meth:`close`).
    """

    def __init__(self, path: str | os.PathLike[str], meta: dict[str, Any], force: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and not force:
            raise OutputExistsError(f"{self.path} exists; pass --force to replace it")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"output directory {self.path.parent} does not exist")
        self._replace = self.path.exists()
        if self._replace:
            self._write_path = temp_beside(self.path)
            self._file = h5py.File(self._write_path, "w", libver="latest")
        else:
            self._write_path = self.path
            self._file = h5py.File(self._write_path, "w-", libver="latest")
        group = self._file.create_group("meta")
        group.attrs["schema_version"] = SCHEMA_VERSION
        group.attrs["created_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        group.attrs["status"] = "running"
        for key, value in meta.items():
            group.attrs[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value
        group.attrs[META_DIGEST] = meta_digest(dict(group.attrs))
        for name in TABLES:
            create_table(self._file, name)
        self._file.swmr_mode = True  # from here on the file on disk stays readable at every flush
        self._file.flush()

    def append(self, table: str, rows: np.ndarray) -> None:
        """Append structured ``rows`` (dtype ``TABLES[table]``) to ``table``."""
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; tables are {sorted(TABLES)}")
        if len(rows) == 0:
            return
        dataset = self._file[table]
        start = dataset.shape[0]
        dataset.resize((start + len(rows),))
        dataset[start:] = rows.astype(TABLES[table], copy=False)

    def flush(self) -> None:
        """Write everything appended so far to disk."""
        self._file.flush()

    def close(self, complete: bool = True) -> None:
        """Mark the run complete (if it is), close, and move a replacement into place."""
        if not self._file.id.valid:
            return
        self._file.close()
        if complete:  # attributes cannot change in SWMR mode: reopen to mark the run complete
            with h5py.File(self._write_path, "r+") as f:
                f["meta"].attrs["status"] = "complete"
        if self._replace:
            if complete:
                os.replace(self._write_path, self.path)
            else:
                self._write_path.unlink(missing_ok=True)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(complete=exc_type is None)
