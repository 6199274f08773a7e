"""Hostile run files: random bytes, truncated and bit-flipped real runs give a run or one clear error line.

``read_run`` either returns a :class:`RunData` or raises :class:`RunFileError`;
``hffm report`` exits 0 (and writes its PNG) or exits 2 with one
``hffm: error:`` line, writing nothing and never touching the run file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main
from sim.runner import run_scenario
from sim.scenario import load_scenario
from traces import RunData, RunFileError, read_run

FUZZ = settings(max_examples=40, deadline=3000, suppress_health_check=[HealthCheck.too_slow], database=None)
WORKDIR = Path(tempfile.mkdtemp(prefix="hffm-fuzz-run-"))


def _real_run() -> bytes:
    path = WORKDIR / "real.h5"
    scenario = load_scenario("small", ["training.enabled=false", "rounds=2", 'schemes=[{name="s", protocol="star"}]'])
    run_scenario(scenario, path, progress=False)
    return path.read_bytes()


REAL = _real_run()


def assert_run_or_one_line(path: Path) -> None:
    try:
        run = read_run(path)
    except RunFileError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)
    else:
        assert isinstance(run, RunData)


def assert_report_exits_cleanly(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = path.read_bytes()
    plot = path.with_suffix(".png")
    plot.unlink(missing_ok=True)
    status = main(["report", str(path), "--plot", str(plot)])
    err = capsys.readouterr().err.strip()
    if status == 0:
        assert plot.stat().st_size > 0
    else:
        assert status == 2 and err.startswith("hffm: error:") and "\n" not in err, err
        assert not plot.exists()
    assert path.read_bytes() == before
    assert [p.name for p in WORKDIR.iterdir() if p.suffix not in (".h5", ".png")] == []


def test_the_untouched_real_run_reads() -> None:
    path = WORKDIR / "copy.h5"
    path.write_bytes(REAL)
    run = read_run(path)
    assert run.complete and len(run.rounds) == 2


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    path = WORKDIR / "random.h5"
    path.write_bytes(data)
    assert_run_or_one_line(path)


@FUZZ
@given(st.integers(0, len(REAL) - 1))
def test_truncated_real_run(length: int) -> None:
    path = WORKDIR / "truncated.h5"
    path.write_bytes(REAL[:length])
    assert_run_or_one_line(path)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(REAL) - 1), st.integers(1, 255)), min_size=1, max_size=8))
def test_bit_flipped_real_run(flips: list[tuple[int, int]]) -> None:
    data = bytearray(REAL)
    for offset, mask in flips:
        data[offset] ^= mask
    path = WORKDIR / "flipped.h5"
    path.write_bytes(bytes(data))
    assert_run_or_one_line(path)


@settings(max_examples=12, deadline=10000, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(st.one_of(st.integers(0, len(REAL) - 1).map(lambda n: REAL[:n]), st.binary(max_size=512)))
def test_report_on_damaged_runs(capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    path = WORKDIR / "report.h5"
    path.write_bytes(data)
    assert_report_exits_cleanly(path, capsys)
