"""Checkpoints: what a run saves at round barriers so that ``hffm run --resume`` continues it exactly.

SimPy processes are Python generators and cannot be saved, so a checkpoint is
taken only at a *barrier*: an instant when nothing is in flight and the
protocol's whole state is data.

* **Star**: the end of a round (the model is back on every device).
* **Hierarchical**: the instant the cloud holds every edge's upload of a cloud
  round, before it aggregates (every device has uploaded, every backhaul is
  idle, no broadcast has started). Saved: each edge's model and upload, the
  cloud's model.
* **Edge-only, D2D schemes, mobility, trace replay**: no barrier inside a
  scheme; the checkpoint after the scheme ends keeps it from being redone.

What a checkpoint holds (a ``torch.save`` file loaded with
``weights_only=True``, so loading it runs no code):

* the scenario (JSON) and the trace path, checked on resume;
* every row the run has written so far (all tables), so the resumed run file
  is rebuilt from the checkpoint alone: rows a killed run wrote after its last
  checkpoint are dropped and written again, identically;
* the index of the scheme in progress, and for it the simulated clock, the
  open rounds' rows and reports, the ledger, the channel samples, the radio
  media's generator and fading-block states, every device's torch generator,
  torch's global generator, and the protocol state above.

The file sits beside the run (``run.h5.ckpt``), is replaced atomically
(written beside, then renamed) and removed when the run completes.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sim.learner import Update
from sim.radio import RadioMedium
from traces import TABLES, RunFileError
from traces.recorder import temp_beside

if TYPE_CHECKING:
    from sim.world import World

CHECKPOINT_VERSION = 1
SUFFIX = ".ckpt"


class CheckpointError(RunFileError):
    """A checkpoint is missing, damaged, or does not belong to the run being resumed."""


def checkpoint_path(run_path: str | os.PathLike[str]) -> Path:
    """The checkpoint file of the run file ``run_path`` (``run.h5`` → ``run.h5.ckpt``)."""
    run_path = Path(run_path)
    return run_path.with_name(run_path.name + SUFFIX)


@dataclass
class Checkpoint:
    """A run's state at a barrier.

    Attributes:
        scenario: the scenario as JSON data (``Scenario.model_dump(mode="json")``).
        trace: the trace file the run replays, if any.
        scheme_index: the first scheme not finished.
        tables: every row written so far, per table.
        scheme_state: the state of scheme ``scheme_index`` at its last barrier (None: start it afresh):
            ``{"round": r, "world": capture_world(...), "protocol": ...}``.
        every: the run's ``--checkpoint-every`` (the resumed run keeps it).
    """

    scenario: dict[str, Any]
    trace: str | None
    scheme_index: int
    tables: dict[str, np.ndarray]
    scheme_state: dict[str, Any] | None
    every: int = 1


_NOT_A_LEAF = object()


def _rebuild(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """``value`` with ``leaf(v)`` in place of every ``v`` it converts, dicts, lists and tuples rebuilt around them.

    ``leaf`` returns :data:`_NOT_A_LEAF` for what it leaves alone. One object
    reached twice is converted once, so shared objects stay shared.
    """
    memo: dict[int, Any] = {}

    def walk(v: Any) -> Any:
        if id(v) in memo:
            return memo[id(v)]
        out = leaf(v)
        if out is _NOT_A_LEAF:
            if isinstance(v, dict):
                out = {k: walk(x) for k, x in v.items()}
            elif isinstance(v, (list, tuple)):
                out = type(v)(walk(x) for x in v)
            else:
                return v
        memo[id(v)] = out
        return out

    return walk(value)


def _pack_leaf(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(v).copy())}
    if isinstance(v, np.generic):
        return v.item()
    return _NOT_A_LEAF


def _unpack_leaf(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"__ndarray__"}:
        return v["__ndarray__"].numpy()
    return _NOT_A_LEAF


def pack(value: Any) -> Any:
    """``value`` with numpy arrays as tensors and numpy scalars as Python numbers (for ``weights_only`` loading).

    Containers are rebuilt (dict, list, tuple) but one object reached twice is
    packed once, so shared objects (edges holding the same model) stay shared.
    """
    return _rebuild(value, _pack_leaf)


def unpack(value: Any) -> Any:
    """Inverse of :func:`pack` (arrays back to numpy; shared objects stay shared)."""
    return _rebuild(value, _unpack_leaf)


def write_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> None:
    """Save ``checkpoint`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    payload = {
        "version": CHECKPOINT_VERSION,
        "scenario": json.dumps(checkpoint.scenario, sort_keys=True),
        "trace": checkpoint.trace,
        "scheme_index": checkpoint.scheme_index,
        "tables": {name: torch.frombuffer(bytearray(rows.tobytes()), dtype=torch.uint8) if len(rows) else None
                   for name, rows in checkpoint.tables.items()},  # fmt: skip
        "scheme_state": pack(checkpoint.scheme_state),
        "every": checkpoint.every,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load the checkpoint at ``path``.

    Raises:
        CheckpointError: missing, not a checkpoint, damaged, or of another version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint (was the run started with --checkpoint-every?)")
    try:
        payload = torch.load(path, weights_only=True)
        if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"not an hffm checkpoint of version {CHECKPOINT_VERSION}")
        tables = {}
        for name, data in payload["tables"].items():
            raw = b"" if data is None else data.numpy().tobytes()
            if len(raw) % TABLES[name].itemsize:
                raise ValueError(f"table {name} has a partial row")
            tables[name] = np.frombuffer(raw, TABLES[name]).copy()
        return Checkpoint(
            scenario=json.loads(payload["scenario"]),
            trace=payload["trace"],
            scheme_index=int(payload["scheme_index"]),
            tables=tables,
            scheme_state=unpack(payload["scheme_state"]),
            every=int(payload["every"]),
        )
    except Exception as exc:  # torch.load and the checks above fail in many ways on a damaged file
        text = str(exc).strip().splitlines()
        raise CheckpointError(f"{path}: unreadable checkpoint ({text[0] if text else type(exc).__name__})") from None


# ---------------------------------------------------------------------- simulator state
def _encode_leaf(v: Any) -> Any:
    if isinstance(v, Update):
        return {"__update__": [v.state, dict(v.weights), v.n_samples, v.loss]}
    return _NOT_A_LEAF


def _decode_leaf(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"__update__"}:
        state, weights, n_samples, loss = v["__update__"]
        return Update(state, weights, n_samples, loss)
    return _NOT_A_LEAF


def encode(value: Any) -> Any:
    """Protocol state as plain data: every :class:`Update` becomes ``{"__update__": [state, weights, n, loss]}``."""
    return _rebuild(value, _encode_leaf)


def decode(value: Any) -> Any:
    """Inverse of :func:`encode` (tensors shared before stay shared: :func:`pack` keeps object identity)."""
    return _rebuild(value, _decode_leaf)


def _medium_state(medium: RadioMedium) -> dict[str, Any]:
    """A radio medium's mutable state: its generator, static gains, fading blocks, replay position."""
    fading = medium._fading
    return {
        "rng": medium._rng.bit_generator.state,
        "static_gain": medium._static_gain,
        "fading": {k: v.copy() for k, v in vars(fading).items() if isinstance(v, np.ndarray)},
        "replay_next": None if medium._replay is None else medium._replay._next,
    }


def _restore_medium(medium: RadioMedium, state: dict[str, Any]) -> None:
    medium._rng.bit_generator.state = state["rng"]
    medium._static_gain = state["static_gain"]
    for name, array in state["fading"].items():
        setattr(medium._fading, name, array.copy())
    if medium._replay is not None:
        medium._replay._next = state["replay_next"]


def capture_world(world: World) -> dict[str, Any]:
    """What a world needs to go on from a barrier, besides the protocol's own state.

    The clock, the open rounds' rows and reports, the end of the last closed
    round, the ledger, the channel samples, both radio media, every device's
    torch generator and torch's global generator.
    """
    generators = getattr(world.learner, "_generators", [])
    return {
        "now_s": world.env.now,
        "rows": {r: list(rows) for r, rows in world._rows.items()},
        "reports": {r: encode(list(updates)) for r, updates in world._reports.items()},
        "last_round_end_s": world._last_round_end_s,
        "ledger": world._ledger.copy(),
        "channel_samples": list(world.channel_samples),
        "media": {"uplink": _medium_state(world.uplink_medium), "downlink": _medium_state(world.downlink_medium)},
        "torch_generators": [g.get_state() for g in generators],
        "torch_rng": torch.get_rng_state(),
    }


def restore_world(world: World, state: dict[str, Any]) -> None:
    """Put a fresh world (same scenario, scheme and seeds) into the captured ``state``; its clock moves to it."""
    if state["now_s"] > world.env.now:
        world.env.run(until=state["now_s"])  # an empty queue: only the clock moves
    world._rows = {int(r): [tuple(row) for row in rows] for r, rows in state["rows"].items()}
    world._reports = {int(r): list(decode(updates)) for r, updates in state["reports"].items()}
    world._last_round_end_s = state["last_round_end_s"]
    world._ledger = state["ledger"].copy()
    world.channel_samples[:] = [tuple(sample) for sample in state["channel_samples"]]
    _restore_medium(world.uplink_medium, state["media"]["uplink"])
    _restore_medium(world.downlink_medium, state["media"]["downlink"])
    for generator, saved in zip(getattr(world.learner, "_generators", []), state["torch_generators"]):
        generator.set_state(saved)
    torch.set_rng_state(state["torch_rng"])


class Checkpointer:
    """Writes a run's checkpoints: at barriers at least ``every`` rounds apart, and after every scheme.

    Args:
        path: the checkpoint file.
        every: rounds between checkpoints inside a scheme.
        scenario: the scenario as JSON data; ``trace``: the trace file, if any.
        tables: returns every row written so far, per table.
    """

    def __init__(
        self, path: Path, every: int, scenario: dict[str, Any], trace: str | None,
        tables: Callable[[], dict[str, np.ndarray]],
    ) -> None:  # fmt: skip
        self.path, self.every, self.scenario, self.trace, self.tables = path, every, scenario, trace, tables
        self._last_round = 0

    def _write(self, scheme_index: int, scheme_state: dict[str, Any] | None) -> None:
        write_checkpoint(
            self.path, Checkpoint(self.scenario, self.trace, scheme_index, self.tables(), scheme_state, self.every)
        )

    def barrier_hook(self, world: World, scheme_index: int, resumed_round: int = 0) -> Callable[[int, dict], None]:
        """The ``world.on_barrier`` of scheme ``scheme_index`` (resumed at ``resumed_round``)."""
        self._last_round = resumed_round

        def on_barrier(r: int, protocol_state: dict[str, Any]) -> None:
            if r - self._last_round < self.every:
                return
            self._last_round = r
            state = {"round": r, "world": capture_world(world), "protocol": encode(protocol_state)}
            self._write(scheme_index, state)

        return on_barrier

    def scheme_done(self, scheme_index: int) -> None:
        """Scheme ``scheme_index`` and its rows are complete: a resumed run starts at the next one."""
        self._write(scheme_index + 1, None)
