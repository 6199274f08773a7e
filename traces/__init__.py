"""HDF5 run files and input traces: the format (:mod:`traces.schema`), writer, reader, trace files, generators.

``traces`` knows HDF5 and arrays, never SimPy: the simulator hands it numpy rows.
"""

from traces.inputs import (
    AvailabilitySchedule,
    ChannelTrace,
    InputTraces,
    MobilityTrace,
    TraceError,
    read_trace,
    write_trace,
)
from traces.reader import RunData, RunFileError, read_run
from traces.recorder import OutputExistsError, RunWriter
from traces.schema import (
    CATEGORIES,
    ENERGY_CATEGORIES,
    EVENT_KINDS,
    INPUT_TABLES,
    SCHEMA_VERSION,
    TABLES,
)

__all__ = [
    "CATEGORIES",
    "ENERGY_CATEGORIES",
    "EVENT_KINDS",
    "INPUT_TABLES",
    "SCHEMA_VERSION",
    "TABLES",
    "AvailabilitySchedule",
    "ChannelTrace",
    "InputTraces",
    "MobilityTrace",
    "OutputExistsError",
    "RunData",
    "RunFileError",
    "RunWriter",
    "TraceError",
    "read_run",
    "read_trace",
    "write_trace",
]
