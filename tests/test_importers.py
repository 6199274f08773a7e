"""hffm import: the example files of docs/trace-format.md give the expected positions and contacts; bad lines exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from traces import read_trace
from traces.importers import TraceFormatError, import_bonnmotion, import_csv, import_one, import_sumo_fcd

# The examples shown in docs/trace-format.md ("Importing traces").
ONE_EXAMPLE = """\
# time CONN a b up|down
0.0 CONN 0 1 up
12.5 CONN 1 2 up
30.0 CONN 0 1 down
41.0 CONN 0 1 up
45.5 CONN 2 1 down
"""
BONNMOTION_EXAMPLE = """\
0.0 0.0 0.0 10.0 100.0 0.0 20.0 100.0 50.0
0.0 50.0 50.0 20.0 50.0 50.0
"""
SUMO_EXAMPLE = """\
<?xml version="1.0" encoding="UTF-8"?>
<fcd-export>
    <timestep time="0.00">
        <vehicle id="bus_7" x="10.00" y="5.00" angle="90.00" type="bus" speed="0.00" pos="5.10" lane="e0_0" slope="0.00"/>
    </timestep>
    <timestep time="1.00">
        <vehicle id="bus_7" x="20.00" y="5.00" angle="90.00" type="bus" speed="10.00" pos="15.10" lane="e0_0" slope="0.00"/>
        <vehicle id="car_1" x="0.00" y="0.00" angle="0.00" type="car" speed="0.00" pos="5.10" lane="e1_0" slope="0.00"/>
    </timestep>
    <timestep time="2.00">
        <vehicle id="car_1" x="0.00" y="30.00" angle="0.00" type="car" speed="30.00" pos="35.10" lane="e1_0" slope="0.00"/>
    </timestep>
</fcd-export>
"""
CSV_EXAMPLE = """\
t_s,node,x_m,y_m
0,0,0.0,0.0
0,1,100.0,0.0
10,0,50.0,0.0
5,1,100.0,25.0
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_one_connection_events_give_contact_intervals(tmp_path) -> None:
    contacts = import_one(write(tmp_path, "conn.txt", ONE_EXAMPLE)).contacts
    # 0-1 up 0..30 and again from 41 to the end of the file (45.5); 1-2 up 12.5..45.5 ("2 1 down" is the same pair)
    assert contacts.tolist() == [(0.0, 30.0, 0, 1), (12.5, 45.5, 1, 2), (41.0, 45.5, 0, 1)]


def test_bonnmotion_waypoints_give_linear_motion_on_the_union_grid(tmp_path) -> None:
    trace = import_bonnmotion(write(tmp_path, "walk.movements", BONNMOTION_EXAMPLE)).mobility
    assert trace.times_s.tolist() == [0.0, 10.0, 20.0] and trace.n_nodes == 2
    np.testing.assert_allclose(trace.at(5.0), [[50.0, 0.0], [50.0, 50.0]])
    np.testing.assert_allclose(trace.at(15.0), [[100.0, 25.0], [50.0, 50.0]])
    np.testing.assert_allclose(trace.at(60.0), [[100.0, 50.0], [50.0, 50.0]])  # held after the last waypoint


def test_sumo_vehicles_are_numbered_in_first_seen_order_and_held_outside_their_trips(tmp_path) -> None:
    trace = import_sumo_fcd(write(tmp_path, "fcd.xml", SUMO_EXAMPLE)).mobility
    assert trace.times_s.tolist() == [0.0, 1.0, 2.0] and trace.n_nodes == 2
    assert trace.xy_m[:, 0].tolist() == [[10, 5], [20, 5], [20, 5]]  # bus_7 = node 0, left after t = 1
    assert trace.xy_m[:, 1].tolist() == [[0, 0], [0, 0], [0, 30]]  # car_1 = node 1, appeared at t = 1


def test_csv_rows_in_any_order_give_per_node_tracks(tmp_path) -> None:
    trace = import_csv(write(tmp_path, "xy.csv", CSV_EXAMPLE)).mobility
    assert trace.times_s.tolist() == [0.0, 5.0, 10.0]
    assert trace.xy_m[:, 0].tolist() == [[0, 0], [25, 0], [50, 0]]
    assert trace.xy_m[:, 1].tolist() == [[100, 0], [100, 25], [100, 25]]


@pytest.mark.parametrize(
    ("fmt", "text"),
    [("one", ONE_EXAMPLE), ("bonnmotion", BONNMOTION_EXAMPLE), ("sumo", SUMO_EXAMPLE), ("csv", CSV_EXAMPLE)],
)
def test_hffm_import_writes_a_trace_file_and_never_overwrites(tmp_path, capsys, fmt: str, text: str) -> None:
    src, out = write(tmp_path, f"src.{fmt}", text), tmp_path / "trace.h5"
    assert main(["import", fmt, str(src), "--out", str(out)]) == 0
    assert "->" in capsys.readouterr().out
    traces = read_trace(out)
    assert (traces.mobility is not None) == (fmt != "one") and (len(traces.contacts) > 0) == (fmt == "one")
    before = out.read_bytes()
    assert main(["import", fmt, str(src), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["import", fmt, str(src), "--out", str(out), "--force"]) == 0


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("one", "0.0 CONN 0 1 up\n5 CONN 0 1 sideways\n", "src:2: expected '<time> CONN <a> <b> up|down'"),
        ("one", "0.0 CONN 0 1 up\nsoon CONN 0 1 down\n", "src:2: time 'soon' is not a finite decimal number"),
        ("one", "5.0 CONN 0 1 up\n1.0 CONN 0 1 down\n", "src:2: time 1.0 is before the previous event"),
        ("one", "0 CONN 0 1 down\n", "src:1: contact 0-1 goes down but is not up"),
        ("one", "0 CONN 0 1 up\n1 CONN 1 0 up\n", "src:2: contact 0-1 is already up"),
        ("one", "0 CONN 3 3 up\n", "src:1: a node cannot be in contact with itself"),
        ("one", "0 CONN 0 99999999999 up\n", "src:1: node '99999999999' is not an integer"),
        ("bonnmotion", "0 0 0 10 5\n", "src:1: expected 't x y' triples"),
        ("bonnmotion", "0 0 0\n\n0 1 1\n", "src:2: expected 't x y' triples"),
        ("bonnmotion", "0 0 0 0 5 5\n", "src:1: waypoint times must increase strictly"),
        ("bonnmotion", "0 0 nan\n", "src:1: value 'nan' is not a finite decimal number"),
        ("sumo", "<fcd-export><timestep time='0'>\n<vehicle id='a' x='1'/></timestep></fcd-export>", "src:2: <vehicle> without y"),
        ("sumo", "<fcd-export>\n<timestep time='0'><vehicle id='a' x='1' y='2'>\n</fcd-export>", "src:3: malformed XML"),
        ("sumo", "<fcd-export>\n<vehicle id='a' x='1' y='2'/></fcd-export>", "src:2: <vehicle> outside a <timestep>"),
        ("sumo", '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<x>&e;</x>', "entity declarations are not allowed"),
        ("sumo", "<fcd-export/>", "src: no positions"),
        ("csv", "time,node,x,y\n0,0,1,1\n", "src:1: expected the header 't_s,node,x_m,y_m'"),
        ("csv", "t_s,node,x_m,y_m\n0,0,1,1\n0,1,2\n", "src:3: expected 4 columns"),
        ("csv", "t_s,node,x_m,y_m\n0,0,1,1\n0,2,1,1\n", "nodes must be 0..n-1; node 1 has no rows"),
        ("csv", "t_s,node,x_m,y_m\n0,0,1,1\n0,0,2,2\n", "src:3: node 0 has two positions at t = 0.0"),
        ("csv", "t_s,node,x_m,y_m\n0,-1,1,1\n", "src:2: node '-1' is not an integer"),
    ],
)
def test_malformed_input_is_one_error_line_naming_the_line(tmp_path, capsys, fmt: str, text: str, message: str) -> None:
    src, out = write(tmp_path, "src", text), tmp_path / "trace.h5"
    assert main(["import", fmt, str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hffm: error: ") and err.count("\n") == 1
    assert message in err.replace(str(tmp_path) + "/", "")
    assert not out.exists()


def test_missing_source_and_unknown_format(tmp_path, capsys) -> None:
    with pytest.raises(TraceFormatError, match="no such file"):
        import_csv(tmp_path / "nope.csv")
    assert main(["import", "bonnmotion", str(tmp_path / "nope"), "--out", str(tmp_path / "t.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: invalid choice, exit 2
        main(["import", "ns2", str(tmp_path), "--out", str(tmp_path / "t.h5")])


def test_a_contact_trace_alone_cannot_drive_a_run(tmp_path, capsys) -> None:
    trace_file = tmp_path / "conn.h5"
    assert main(["import", "one", str(write(tmp_path, "conn.txt", ONE_EXAMPLE)), "--out", str(trace_file)]) == 0
    out = tmp_path / "run.h5"
    assert main(["run", "small", "--set", "training.enabled=false", "--trace", str(trace_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "has contacts but no positions" in err and err.count("\n") == 1 and not out.exists()


def test_imported_trace_drives_a_run(tmp_path) -> None:
    """A BonnMotion walk of the 6 devices of the small preset replaces their layout and moves them."""
    lines = [f"0 {100 + 10 * i} 100 30 {600 - 10 * i} 400" for i in range(6)]
    src = write(tmp_path, "six.movements", "\n".join(lines) + "\n")
    trace_file = tmp_path / "six.h5"
    assert main(["import", "bonnmotion", str(src), "--out", str(trace_file)]) == 0
    out = tmp_path / "run.h5"
    overrides = ["training.enabled=false", "rounds=2"]
    assert main(["run", "small", *[a for o in overrides for a in ("--set", o)], "--trace", str(trace_file),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    from traces import read_run

    run = read_run(out)
    devices = run.nodes[:6]
    assert devices["x_m"].tolist() == [100 + 10 * i for i in range(6)] and (devices["y_m"] == 100).all()
    assert len(run.mobility) == 12 and len(run.events) > 0
