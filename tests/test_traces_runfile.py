"""HDF5 run files: round trip, refusal of bad files, no overwrite, interrupted runs readable."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from traces import EVENT_KINDS, SCHEMA_VERSION, TABLES, OutputExistsError, RunFileError, RunWriter, read_run
from traces.schema import INPUT_TABLES, META_DIGEST


def rows(table: str, n: int) -> np.ndarray:
    data = np.zeros(n, TABLES[table])
    data["scheme"] = b"s"
    return data


def test_round_trip(tmp_path) -> None:
    path = tmp_path / "run.h5"
    with RunWriter(path, meta={"seed": 3, "schemes": ["s"], "scenario": {"name": "x"}}) as w:
        events = rows("events", 5)
        events["bytes"] = np.arange(5)
        w.append("events", events)
        w.append("events", events)
    run = read_run(path)
    assert run.complete and run.meta["seed"] == 3 and run.meta["scenario"] == {"name": "x"}
    assert run.meta["schema_version"] == SCHEMA_VERSION
    assert run.events["bytes"].tolist() == list(range(5)) * 2
    assert run.schemes == ["s"]


def test_existing_file_is_never_overwritten_without_force(tmp_path) -> None:
    path = tmp_path / "run.h5"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--force"):
        RunWriter(path, meta={})
    assert path.read_bytes() == b"precious"


def test_forced_replacement_keeps_the_old_file_if_the_run_fails(tmp_path) -> None:
    path = tmp_path / "run.h5"
    path.write_bytes(b"precious")
    with pytest.raises(RuntimeError):
        with RunWriter(path, meta={}, force=True) as w:
            w.append("rounds", rows("rounds", 1))
            raise RuntimeError("killed")
    assert path.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [path]
    with RunWriter(path, meta={}, force=True) as w:
        w.append("rounds", rows("rounds", 2))
    assert len(read_run(path).rounds) == 2


def test_interrupted_run_is_readable_and_says_so(tmp_path) -> None:
    path = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(path, meta={}) as w:
            w.append("rounds", rows("rounds", 3))
            w.flush()
            raise KeyboardInterrupt
    run = read_run(path)
    assert not run.complete and len(run.rounds) == 3


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"not hdf5 at all"), "unreadable HDF5"),
        (lambda p: h5py.File(p, "w").close(), "no /meta group"),
        (lambda p: p.write_bytes(b""), "unreadable HDF5"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, make, message) -> None:
    path = tmp_path / "bad.h5"
    make(path)
    with pytest.raises(RunFileError, match=message):
        read_run(path)


def test_newer_schema_is_refused(tmp_path) -> None:
    path = tmp_path / "run.h5"
    with RunWriter(path, meta={}):
        pass
    with h5py.File(path, "a") as f:
        f["meta"].attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(RunFileError, match="newer than this hffm reads"):
        read_run(path)


def test_truncated_file_gives_a_clear_error(tmp_path) -> None:
    path = tmp_path / "run.h5"
    with RunWriter(path, meta={}) as w:
        w.append("events", rows("events", 10_000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFileError):
        read_run(path)


def test_schema_1_files_read_with_empty_new_tables(tmp_path) -> None:
    path = tmp_path / "v1.h5"
    with RunWriter(path, meta={"schemes": ["s"]}) as w:
        w.append("rounds", rows("rounds", 2))
    with h5py.File(path, "a") as f:
        f["meta"].attrs["schema_version"] = 1
        del f["meta"].attrs[META_DIGEST]  # schema 1 had no metadata checksum
        for name in ("links", *INPUT_TABLES):
            del f[name]
    run = read_run(path)
    assert len(run.rounds) == 2 and len(run.mobility) == 0 and run.channel.dtype == TABLES["channel"]


def test_v2_tables_round_trip_and_are_checksummed(tmp_path) -> None:
    path = tmp_path / "run.h5"
    with RunWriter(path, meta={}) as w:
        w.append("links", np.array([(b"uplink", 0, 0, 6, 12.5)], TABLES["links"]))
        w.append("availability", np.array([(3, 0.0, np.inf)], TABLES["availability"]))
    run = read_run(path)
    assert run.links.tolist() == [(b"uplink", 0, 0, 6, 12.5)] and run.availability["off_s"][0] == np.inf
    with h5py.File(path) as f:
        assert all(f[name].fletcher32 and f[name].maxshape == (None,) for name in TABLES)
        assert f["events"].compression == "gzip" and f["nodes"].compression is None


def test_rounds_done_says_how_far_each_scheme_got(tmp_path) -> None:
    path = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        with RunWriter(path, meta={"schemes": ["a", "b", "c"]}) as w:
            done = rows("rounds", 5)
            done["scheme"] = [b"a", b"a", b"a", b"b", b"b"]
            done["round"] = [1, 2, 3, 1, 2]
            w.append("rounds", done)
            w.flush()
            raise KeyboardInterrupt
    assert read_run(path).rounds_done == {"a": 3, "b": 2, "c": 0}


def test_frame_gives_a_dataframe_or_a_clear_error(tmp_path) -> None:
    path = tmp_path / "run.h5"
    with RunWriter(path, meta={}) as w:
        events = rows("events", 2)
        events["kind"] = [EVENT_KINDS.index("uplink"), EVENT_KINDS.index("aggregate")]
        events["module"] = b"encoder/image"
        w.append("events", events)
    run = read_run(path)
    with pytest.raises(KeyError, match="unknown table"):
        run.frame("nope")
    try:
        import pandas  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ModuleNotFoundError, match=r"pip install pandas.*run\.events"):
            run.frame("events")
        return
    frame = run.frame("events")
    assert frame["kind"].tolist() == ["uplink", "aggregate"] and frame["module"].tolist() == ["encoder/image"] * 2
    assert frame["scheme"].tolist() == ["s", "s"] and len(frame.columns) == len(TABLES["events"].names)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(RunFileError, match="no such file"):
        read_run(tmp_path / "nope.h5")


def test_run_killed_with_sigkill_keeps_its_completed_rounds(tmp_path) -> None:
    """SIGKILL at arbitrary moments: the file stays readable and holds whole rounds 1..k."""
    import os
    import signal
    import subprocess
    import sys
    import time

    for attempt in range(3):
        out = tmp_path / f"killed{attempt}.h5"
        cmd = [sys.executable, "-m", "sim.cli", "run", "small", "--set", "training.enabled=false",
               "--set", "rounds=100000", "--set", "network.payload_bytes=50000", "--out", str(out), "--quiet"]  # fmt: skip
        proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": os.getcwd()})
        deadline = time.monotonic() + 120
        rounds = 0
        while rounds < 3 + 5 * attempt and time.monotonic() < deadline:
            time.sleep(0.05)
            if out.exists():
                try:
                    rounds = len(read_run(out).rounds)
                except RunFileError:
                    pass
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        run = read_run(out)
        assert not run.complete
        assert len(run.rounds) >= rounds >= 3
        per_scheme = run.scheme_rows("rounds", run.schemes[0])["round"]
        assert per_scheme.tolist() == list(range(1, len(per_scheme) + 1))


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory):
    """A real run file: small preset, network-only, moving devices with churn (every table has rows)."""
    from sim.runner import run_scenario
    from sim.scenario import load_scenario

    path = tmp_path_factory.mktemp("real") / "run.h5"
    overrides = ["training.enabled=false", "rounds=4", "mobility.model=random_waypoint", "mobility.duration_s=60",
                 "availability.model=on_off", "availability.mean_on_s=5", "availability.mean_off_s=1"]  # fmt: skip
    run_scenario(load_scenario("small", overrides), path, progress=False)
    return path, read_run(path)


def same_run(a, b) -> bool:
    return a.meta == b.meta and all(getattr(a, t).tobytes() == getattr(b, t).tobytes() for t in TABLES)


def test_flipped_bytes_anywhere_in_a_real_run_give_a_clear_error_or_the_intact_run(real_run, tmp_path) -> None:
    """Chunks carry Fletcher-32, HDF5 metadata its own checksums, /meta a SHA-256: damage never reads as data."""
    path, original = real_run
    data = path.read_bytes()
    assert all(len(getattr(original, t)) for t in TABLES if t not in ("metrics", "contacts"))
    damaged = tmp_path / "damaged.h5"
    errors = 0
    for offset in np.linspace(0, len(data) - 1, 150).astype(int):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        damaged.write_bytes(bytes(flipped))
        try:
            run = read_run(damaged)
        except RunFileError as exc:
            assert str(damaged) in str(exc) and "\n" not in str(exc)
            errors += 1
        else:
            assert same_run(run, original), f"byte {offset} changed what was read"
    assert errors > 50  # most bytes of a run file matter


def test_a_truncated_real_run_gives_a_clear_error_or_whole_rounds(real_run, tmp_path) -> None:
    path, original = real_run
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    for fraction in np.linspace(0.02, 0.999, 40):
        cut.write_bytes(data[: int(len(data) * fraction)])
        try:
            run = read_run(cut)
        except RunFileError as exc:
            assert "\n" not in str(exc)
            continue
        for scheme, last in run.rounds_done.items():
            assert run.scheme_rows("rounds", scheme)["round"].tolist() == list(range(1, last + 1))


def test_edited_metadata_is_detected(real_run, tmp_path) -> None:
    path, _ = real_run
    edited = tmp_path / "edited.h5"
    edited.write_bytes(path.read_bytes())
    with h5py.File(edited, "a") as f:
        f["meta"].attrs["seed"] = 12345
    with pytest.raises(RunFileError, match="/meta is damaged"):
        read_run(edited)


def test_a_replaced_run_file_gets_the_permissions_of_a_new_file(tmp_path) -> None:
    import os

    fresh, replaced = tmp_path / "fresh.h5", tmp_path / "replaced.h5"
    replaced.write_bytes(b"old")
    for path in (fresh, replaced):
        with RunWriter(path, meta={}, force=True) as w:
            w.append("rounds", rows("rounds", 1))
    assert os.stat(replaced).st_mode & 0o777 == os.stat(fresh).st_mode & 0o777
