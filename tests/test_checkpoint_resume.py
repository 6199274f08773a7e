"""Kill and resume: a run SIGKILLed after a checkpoint and resumed ends byte-identical to an uninterrupted run.

The run (star then hierarchical, real training, some faults) is started as
``hffm run --checkpoint-every 1`` in a subprocess and killed with SIGKILL as
soon as its checkpoint shows a barrier inside the hierarchical scheme; the
resume must not redo the star scheme and must end with /rounds and /metrics
(and /events, /ledger, /channel) equal to an uninterrupted run's byte for byte,
leaving no checkpoint or temporary file behind. In-process tests stop a run at
every checkpoint in turn (star rounds, scheme ends, cloud rounds) and resume it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.checkpoint import CheckpointError, checkpoint_path, read_checkpoint
from sim.cli import main
from sim.runner import run_scenario
from sim.scenario import load_scenario
from traces import read_run

OVERRIDES = [
    "rounds=4", "training.local_steps=2", "data.samples_per_device=24", "data.test_samples=60",
    "model.d_model=32", "model.n_layers=1", "model.moe_experts=0",
    'schemes=[{name="star", protocol="star"}, {name="h2", protocol="hierarchical", cloud_period=2}]',
    "faults.dropout_prob=0.2", "faults.deadline_s=2.0",
]  # fmt: skip
KILLED = [*OVERRIDES, "rounds=6"]  # three barriers in h2, so the run cannot finish before the kill lands
SET = [arg for override in KILLED for arg in ("--set", override)]


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sim.cli", "run", *argv, "--quiet"], cwd=Path(__file__).parent.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def kill_at_barrier(proc: subprocess.Popen, ckpt: Path, scheme_index: int, timeout_s: float = 120.0) -> int:
    """SIGKILL ``proc`` once its checkpoint holds a barrier inside scheme ``scheme_index``; the barrier's round."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-800:]}")
        if ckpt.exists():
            try:
                state = read_checkpoint(ckpt)
            except CheckpointError:  # replaced while we read it
                continue
            if state.scheme_index == scheme_index and state.scheme_state is not None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return int(state.scheme_state["round"])
        time.sleep(0.01)
    proc.kill()
    pytest.fail("no checkpoint appeared in time")


def test_sigkilled_run_resumes_to_the_same_results(tmp_path: Path) -> None:
    full, part = tmp_path / "full.h5", tmp_path / "part.h5"
    run_scenario(load_scenario("small", KILLED), full, progress=False)
    ckpt = checkpoint_path(part)

    first = start(["small", *SET, "--out", str(part), "--checkpoint-every", "1"])
    kill_at_barrier(first, ckpt, scheme_index=1)
    killed = read_run(part)
    assert not killed.complete and killed.rounds_done["star"] == 6  # the file holds what was flushed

    assert main(["run", "--resume", str(part), "--quiet"]) == 0
    a, b = read_run(full), read_run(part)
    assert b.complete and not ckpt.exists()
    assert len(a.metrics) > 0
    for table in ("rounds", "metrics", "events", "ledger", "channel", "nodes"):
        assert getattr(a, table).tobytes() == getattr(b, table).tobytes(), table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.h5", "part.h5"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resume", "{run}"], "no checkpoint"),
        (["small", "--resume", "{run}"], "--resume takes the run file only, not a scenario"),
        (["--resume", "{run}", "--set", "rounds=2"], "not --set"),
        (["small", "--out", "{new}", "--checkpoint-every", "0"], "--checkpoint-every must be at least 1"),
        (["small"], "needs a preset or scenario file and --out"),
    ],
)
def test_resume_mistakes_exit_2_with_one_line(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    run = tmp_path / "run.h5"
    run.write_bytes(b"keep me")
    args = [a.format(run=run, new=tmp_path / "new.h5") for a in argv]
    assert main(["run", *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hffm: error:") and message in err and "\n" not in err, err
    assert run.read_bytes() == b"keep me" and not (tmp_path / "new.h5").exists()


def test_a_checkpoint_of_another_run_is_refused(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    fast = ["training.enabled=false", "rounds=2"]
    run_scenario(load_scenario("small", fast), a, progress=False)
    run_scenario(load_scenario("small", [*fast, "seed=9"]), b, progress=False, checkpoint_every=1)
    assert not checkpoint_path(b).exists()  # removed when the run completed
    from sim.checkpoint import Checkpoint, write_checkpoint

    write_checkpoint(checkpoint_path(a), Checkpoint(load_scenario("small", [*fast, "seed=9"]).model_dump(mode="json"),
                                                    None, 1, {}, None))  # fmt: skip
    before = a.read_bytes()
    assert main(["run", "--resume", str(a), "--quiet"]) == 2
    assert "belongs to another run" in capsys.readouterr().err
    assert a.read_bytes() == before


class Stop(Exception):
    """Stands for a kill right after a checkpoint is written."""


@pytest.mark.parametrize("training", [False, True])
def test_stopping_at_each_checkpoint_and_resuming_gives_the_same_run(tmp_path: Path, monkeypatch, training) -> None:
    import sim.checkpoint

    overrides = OVERRIDES + ([] if training else ["training.enabled=false"])
    scenario = load_scenario("small", overrides)
    full = run_scenario(scenario, None, progress=False)
    write = sim.checkpoint.write_checkpoint
    stops = range(1, 4) if training else range(1, 9)  # star rounds 1-4, star done, cloud rounds 2 and 4, h2 done
    for stop_after in stops:
        part = tmp_path / f"stop{stop_after}.h5"
        written = []

        def write_then_stop(path, checkpoint, n=stop_after, written=written) -> None:
            write(path, checkpoint)
            written.append((checkpoint.scheme_index, checkpoint.scheme_state and checkpoint.scheme_state["round"]))
            if len(written) == n:
                raise Stop

        monkeypatch.setattr(sim.checkpoint, "write_checkpoint", write_then_stop)
        with pytest.raises(Stop):
            run_scenario(scenario, part, progress=False, checkpoint_every=1)
        monkeypatch.setattr(sim.checkpoint, "write_checkpoint", write)
        resumed = run_scenario(scenario, part, force=True, progress=False,
                               resume=read_checkpoint(checkpoint_path(part)))  # fmt: skip
        for table in ("rounds", "metrics", "events", "ledger", "channel"):
            assert full.table(table).tobytes() == resumed.table(table).tobytes(), (stop_after, written[-1], table)
    if not training:
        assert written == [(0, 1), (0, 2), (0, 3), (0, 4), (1, None), (1, 2), (1, 4), (2, None)][:len(written)]
