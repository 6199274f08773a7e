"""Checkpoint files: round trip (tables, tensors, RNG states, shared objects), damaged files refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sim.checkpoint import Checkpoint, CheckpointError, checkpoint_path, read_checkpoint, write_checkpoint
from traces import TABLES


def sample() -> Checkpoint:
    rounds = np.zeros(3, TABLES["rounds"])
    rounds["scheme"], rounds["round"], rounds["t_end_s"] = b"star", [1, 2, 3], [0.1, 0.2, 1 / 3]
    shared = {"w": torch.arange(4.0)}
    rng = np.random.default_rng(3)
    rng.random(5)
    state = {
        "now_s": 1 / 3,
        "models": [{"state": shared, "weights": {"a": 2.0}}, {"state": shared, "weights": {"a": 1.0}}],
        "rng": rng.bit_generator.state,
        "gains": np.array([0.5, np.inf]),
        "blocks": np.array([3, -(2**63)], dtype=np.int64),
        "rows": [(b"star", np.int64(2), 0.25, np.float64(1e-3))],
    }
    tables = {"rounds": rounds, "events": np.zeros(0, TABLES["events"])}
    return Checkpoint({"name": "x", "rounds": 3}, None, 1, tables, state)


def test_round_trip_is_exact(tmp_path) -> None:
    path = checkpoint_path(tmp_path / "run.h5")
    assert path.name == "run.h5.ckpt"
    original = sample()
    write_checkpoint(path, original)
    loaded = read_checkpoint(path)
    assert loaded.scenario == original.scenario and loaded.trace is None and loaded.scheme_index == 1
    assert loaded.tables["rounds"].tobytes() == original.tables["rounds"].tobytes()
    assert len(loaded.tables["events"]) == 0
    state = loaded.scheme_state
    assert state["now_s"] == 1 / 3
    assert state["models"][0]["state"] is state["models"][1]["state"]  # still one object
    torch.testing.assert_close(state["models"][0]["state"]["w"], torch.arange(4.0), rtol=0, atol=0)
    again = np.random.default_rng(0)
    again.bit_generator.state = state["rng"]
    expected = np.random.default_rng(3)
    expected.random(5)
    assert again.random() == expected.random()
    assert state["gains"].tolist() == [0.5, np.inf] and state["blocks"].dtype == np.int64
    assert state["rows"] == [(b"star", 2, 0.25, 1e-3)] and type(state["rows"][0][1]) is int
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5.ckpt"]


def test_replacing_a_checkpoint_leaves_one_file(tmp_path) -> None:
    path = tmp_path / "run.h5.ckpt"
    write_checkpoint(path, sample())
    second = sample()
    second.scheme_index = 2
    write_checkpoint(path, second)
    assert read_checkpoint(path).scheme_index == 2
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5.ckpt"]


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "pickle"])
def test_damaged_checkpoints_are_refused_in_one_line(tmp_path, damage: str) -> None:
    path = tmp_path / "run.h5.ckpt"
    if damage != "missing":
        write_checkpoint(path, sample())
        data = path.read_bytes()
        if damage == "garbage":
            path.write_bytes(b"not a checkpoint")
        elif damage == "truncated":
            path.write_bytes(data[: len(data) // 2])
        else:  # a pickle that would run code if loaded without weights_only
            import pickle

            path.write_bytes(pickle.dumps(print))
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
