"""HDF5 run files: the format (:mod:`traces.schema`), the writer and the reader.

``traces`` knows HDF5 and arrays, never SimPy: the simulator hands it numpy rows.
"""

from traces.reader import RunData, RunFileError, read_run
from traces.recorder import OutputExistsError, RunWriter
from traces.schema import CATEGORIES, ENERGY_CATEGORIES, EVENT_KINDS, SCHEMA_VERSION, TABLES

__all__ = [
    "CATEGORIES",
    "ENERGY_CATEGORIES",
    "EVENT_KINDS",
    "SCHEMA_VERSION",
    "TABLES",
    "OutputExistsError",
    "RunData",
    "RunFileError",
    "RunWriter",
    "read_run",
]
