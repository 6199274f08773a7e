"""Input traces: interpolation, schedules, channel samples, trace files (round trip, refusals)."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from channels.contacts import CONTACT_DTYPE
from traces import SCHEMA_VERSION, TABLES, OutputExistsError, RunFileError, RunWriter
from traces.inputs import (
    AvailabilitySchedule,
    ChannelTrace,
    InputTraces,
    MobilityTrace,
    TraceError,
    contact_rows,
    read_trace,
    resample,
    write_trace,
)


def two_nodes() -> MobilityTrace:
    times = np.array([0.0, 10.0, 30.0])
    xy = np.array([[[0.0, 0.0], [5.0, 5.0]], [[10.0, 0.0], [5.0, 5.0]], [[10.0, 20.0], [7.0, 5.0]]])
    return MobilityTrace(times, xy)


def test_positions_are_linear_between_samples_and_held_outside() -> None:
    trace = two_nodes()
    assert trace.n_nodes == 2
    np.testing.assert_array_equal(trace.at(-5.0), [[0, 0], [5, 5]])
    np.testing.assert_array_equal(trace.at(10.0), [[10, 0], [5, 5]])
    np.testing.assert_allclose(trace.at(4.0), [[4, 0], [5, 5]])
    np.testing.assert_allclose(trace.at(25.0), [[10, 15], [6.5, 5]])  # 3/4 of the way from t=10 to t=30
    np.testing.assert_array_equal(trace.at(1e6), [[10, 20], [7, 5]])
    with pytest.raises(ValueError):
        trace.xy_m[0, 0, 0] = 1.0  # read-only: nobody can bend a trace in place


def test_mobility_rows_round_trip_and_need_a_common_grid() -> None:
    trace = two_nodes()
    rows = trace.rows()
    assert rows[["t_s", "node"]].tolist() == [(0.0, 0), (0.0, 1), (10.0, 0), (10.0, 1), (30.0, 0), (30.0, 1)]
    again = MobilityTrace.from_rows(rows[::-1].copy())
    assert again.xy_m.tobytes() == trace.xy_m.tobytes() and again.times_s.tobytes() == trace.times_s.tobytes()
    with pytest.raises(TraceError, match="common time grid"):
        MobilityTrace.from_rows(rows[:-1])
    with pytest.raises(TraceError, match="increase strictly"):
        MobilityTrace(np.array([0.0, 0.0]), np.zeros((2, 1, 2)))
    with pytest.raises(TraceError, match="shape"):
        MobilityTrace(np.array([0.0]), np.zeros((1, 2)))


def test_resample_puts_own_time_tracks_on_the_union_grid() -> None:
    a = (np.array([0.0, 10.0]), np.array([[0.0, 0.0], [10.0, 0.0]]))
    b = (np.array([5.0, 15.0]), np.array([[0.0, 0.0], [0.0, 10.0]]))
    trace = resample([a, b])
    assert trace.times_s.tolist() == [0.0, 5.0, 10.0, 15.0]
    assert trace.xy_m[:, 0].tolist() == [[0, 0], [5, 0], [10, 0], [10, 0]]
    assert trace.xy_m[:, 1].tolist() == [[0, 0], [0, 0], [0, 5], [0, 10]]


def test_availability_intervals_are_half_open_and_validated() -> None:
    rows = np.array([(0, 0.0, 5.0), (0, 8.0, math.inf), (2, 1.0, 2.0)], TABLES["availability"])
    schedule = AvailabilitySchedule(rows)
    assert [schedule.is_on(0, t) for t in (0.0, 4.99, 5.0, 7.0, 8.0, 1e9)] == [True, True, False, False, True, True]
    assert [schedule.is_on(2, t) for t in (0.5, 1.0, 2.0)] == [False, True, False]
    assert not schedule.is_on(1, 1.0) and schedule.max_node == 2
    with pytest.raises(TraceError, match="before off_s"):
        AvailabilitySchedule(np.array([(0, 5.0, 5.0)], TABLES["availability"]))
    with pytest.raises(TraceError, match="overlap"):
        AvailabilitySchedule(np.array([(0, 0.0, 5.0), (0, 4.0, 6.0)], TABLES["availability"]))


def test_contacts_use_the_contact_interval_layout_and_are_validated() -> None:
    assert TABLES["contacts"] == CONTACT_DTYPE  # channels.contacts.contact_intervals output is a valid table
    rows = contact_rows(np.array([(5.0, 9.0, 1, 2), (1.0, 3.0, 0, 1)], CONTACT_DTYPE))
    assert rows["start_s"].tolist() == [1.0, 5.0]
    with pytest.raises(TraceError, match="0 <= a < b"):
        contact_rows(np.array([(1.0, 3.0, 2, 1)], CONTACT_DTYPE))


def test_channel_samples_become_rows_per_scheme_and_medium() -> None:
    samples = [
        (0.5, "uplink", np.array([0, 2]), np.array([1e-9, 2e-9])),
        (0.5, "downlink", np.array([1]), np.array([3e-9])),
        (1.5, "uplink", np.array([2]), np.array([4e-9])),
    ]
    trace = ChannelTrace.from_samples("hier", samples)
    assert len(trace) == 4 and trace.schemes == ["hier"]
    t_s, links, gains = trace.samples("hier", "uplink")
    assert t_s.tolist() == [0.5, 0.5, 1.5] and links.tolist() == [0, 2, 2] and gains.tolist() == [1e-9, 2e-9, 4e-9]
    assert len(trace.samples("star", "uplink")[0]) == 0
    with pytest.raises(TraceError, match="non-negative"):
        ChannelTrace(np.array([(b"s", b"uplink", 0.0, 0, -1.0)], TABLES["channel"]))


def full_traces() -> InputTraces:
    return InputTraces(
        mobility=two_nodes(),
        contacts=np.array([(1.0, 3.0, 0, 1)], CONTACT_DTYPE),
        availability=AvailabilitySchedule(np.array([(1, 0.0, math.inf)], TABLES["availability"])),
        channel=ChannelTrace.from_samples("s", [(0.0, "uplink", np.array([1]), np.array([5e-10]))]),
    )


def test_trace_file_round_trip_is_exact(tmp_path) -> None:
    path = write_trace(tmp_path / "t.h5", full_traces(), meta={"source": "test"})
    back = read_trace(path)
    assert back.mobility.xy_m.tobytes() == two_nodes().xy_m.tobytes()
    assert back.contacts.tolist() == [(1.0, 3.0, 0, 1)]
    assert back.availability.is_on(1, 99.0) and not back.availability.is_on(0, 0.0)
    assert back.channel.samples("s", "uplink")[2].tolist() == [5e-10]
    with h5py.File(path) as f:
        assert f["meta"].attrs["kind"] == "trace" and f["meta"].attrs["schema_version"] == SCHEMA_VERSION
        assert f["mobility"].compression == "gzip" and f["mobility"].fletcher32


def test_partial_trace_file_reads_none_where_absent(tmp_path) -> None:
    back = read_trace(write_trace(tmp_path / "m.h5", InputTraces(mobility=two_nodes())))
    assert back.availability is None and back.channel is None and len(back.contacts) == 0


def test_trace_files_are_not_overwritten_without_force(tmp_path) -> None:
    path = tmp_path / "t.h5"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--force"):
        write_trace(path, full_traces())
    assert path.read_bytes() == b"precious"
    write_trace(path, full_traces(), force=True)
    assert read_trace(path).mobility is not None
    assert [p.name for p in tmp_path.iterdir()] == ["t.h5"]  # no temporary left behind


def test_a_run_file_is_a_trace_file(tmp_path) -> None:
    path = tmp_path / "run.h5"
    with RunWriter(path, meta={}) as w:
        w.append("mobility", two_nodes().rows())
    assert read_trace(path).mobility.xy_m.tobytes() == two_nodes().xy_m.tobytes()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f.__delitem__("mobility") or f.__delitem__("contacts") or f.__delitem__("availability")
         or f.__delitem__("channel"), "no input traces"),  # fmt: skip
        (lambda f: f["meta"].attrs.__setitem__("schema_version", SCHEMA_VERSION + 1), "newer than this hffm"),
        (lambda f: _replace(f, "mobility", np.array([(0.0, 0, 1.0, 1.0), (0.0, 0, 2.0, 2.0)], TABLES["mobility"])),
         "common time grid"),  # fmt: skip
    ],
)
def test_bad_trace_files_give_one_clear_error(tmp_path, damage, message) -> None:
    path = write_trace(tmp_path / "t.h5", full_traces())
    with h5py.File(path, "a") as f:
        damage(f)
    with pytest.raises(RunFileError, match=message):
        read_trace(path)


def _replace(f: h5py.File, name: str, rows: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=rows)
