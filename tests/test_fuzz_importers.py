"""Hostile trace files for ``hffm import``: random and near-valid lines give a trace file or one error line.

Exit 0 writes the trace file; exit 2 prints one ``hffm: error:`` line and
writes nothing. Lines are drawn near each format's grammar (numbers, node ids,
keywords, random text) so the fuzzer reaches past the first line.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main
from traces.inputs import read_trace

WORKDIR = Path(tempfile.mkdtemp(prefix="hffm-fuzz-import-"))
FUZZ = settings(
    max_examples=40, deadline=3000, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip

NUMBER = st.one_of(
    st.integers(-5, 10**13).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-0", "1e999", "1_0", "²", "٣", "0x10", "", " "]),
)
NODE = st.one_of(st.integers(0, 6).map(str), st.integers(0, 2**40).map(str), NUMBER)
JUNK = st.text(max_size=25)


def one_line() -> st.SearchStrategy[str]:
    event = st.tuples(NUMBER, st.sampled_from(["CONN", "conn", "X"]), NODE, NODE, st.sampled_from(["up", "down", "?"]))
    return st.one_of(event.map(" ".join), JUNK, st.just("# comment"), st.just(""))


def bonnmotion_line() -> st.SearchStrategy[str]:
    return st.one_of(st.lists(NUMBER, max_size=9).map(" ".join), JUNK)


def csv_line() -> st.SearchStrategy[str]:
    row = st.tuples(NUMBER, st.integers(0, 6).map(str), NUMBER, NUMBER).map(",".join)
    return st.one_of(row, st.lists(st.one_of(NUMBER, NODE), min_size=3, max_size=5).map(",".join), JUNK)


def sumo_text() -> st.SearchStrategy[str]:
    vehicle = st.tuples(JUNK.map(lambda s: s.replace('"', "")), NUMBER, NUMBER).map(
        lambda v: f'<vehicle id="{v[0]}" x="{v[1]}" y="{v[2]}"/>'
    )
    step = st.tuples(NUMBER, st.lists(vehicle, max_size=3)).map(
        lambda s: f'<timestep time="{s[0]}">' + "".join(s[1]) + "</timestep>"
    )
    body = st.lists(st.one_of(step, JUNK), max_size=4).map("".join)
    return st.one_of(body.map(lambda b: f"<fcd-export>{b}</fcd-export>"), JUNK, body)


SOURCES = {
    "one": st.lists(one_line(), max_size=8).map("\n".join),
    "bonnmotion": st.lists(bonnmotion_line(), max_size=5).map("\n".join),
    "csv": st.lists(csv_line(), max_size=6).map(lambda lines: "\n".join(["t_s,node,x_m,y_m", *lines])),
    "sumo": sumo_text(),
}


def check_import(fmt: str, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = WORKDIR / f"src.{fmt}"
    out = WORKDIR / f"out-{fmt}.h5"
    src.write_text(text, encoding="utf-8", errors="surrogatepass")
    out.unlink(missing_ok=True)
    status = main(["import", fmt, str(src), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    if status == 0:
        read_trace(out)
    else:
        assert status == 2 and err.startswith("hffm: error:") and "\n" not in err, err
        assert not out.exists()
    assert sorted(p.name for p in WORKDIR.iterdir() if not p.name.startswith(("src.", "out-"))) == []


@pytest.mark.parametrize("fmt", sorted(SOURCES))
def test_near_valid_and_random_lines(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    @FUZZ
    @given(text=SOURCES[fmt])
    def run(text: str) -> None:
        check_import(fmt, text, capsys)

    run()


HOSTILE = [
    pytest.param("csv", "t_s,node,x_m,y_m\n0,\u00b2,1,1\n", id="csv-superscript-node"),  # '²'.isdigit() is True
    pytest.param("one", "0 CONN 0 99999999999999 up\n1 CONN 0 99999999999999 down\n", id="one-node-beyond-int32"),
    pytest.param("csv", "t_s,node,x_m,y_m\n0,0,1,1\n", id="csv-valid"),
]


@pytest.mark.parametrize(("fmt", "text"), HOSTILE)
def test_known_hostile_files(fmt: str, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    check_import(fmt, text, capsys)


def test_huge_csv_node_id_is_refused_quickly(tmp_path) -> None:
    """A node id of 10^11 must be refused, not make ``import_csv`` build a set of 10^11 ids (run capped at 1 GiB)."""
    src = tmp_path / "huge.csv"
    src.write_text("t_s,node,x_m,y_m\n0,100000000000,1,1\n")
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
        "from traces.importers import TraceFormatError, import_csv\n"
        "try:\n    import_csv(sys.argv[1])\nexcept TraceFormatError:\n    sys.exit(2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, timeout=20)
    assert proc.returncode == 2, proc.stderr.decode()[-500:]


@pytest.mark.parametrize("fmt", sorted(SOURCES))
def test_random_bytes(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    @settings(max_examples=15, deadline=3000, database=None)
    @given(data=st.binary(max_size=200))
    def run(data: bytes) -> None:
        src = WORKDIR / f"src.{fmt}"
        out = WORKDIR / f"out-{fmt}.h5"
        src.write_bytes(data)
        out.unlink(missing_ok=True)
        status = main(["import", fmt, str(src), "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert status == 0 or (status == 2 and err.startswith("hffm: error:") and "\n" not in err), err

    run()
