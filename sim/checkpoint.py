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
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from traces import TABLES, RunFileError

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
        scheme_state: the state of scheme ``scheme_index`` at its last barrier (None: start it afresh).
    """

    scenario: dict[str, Any]
    trace: str | None
    scheme_index: int
    tables: dict[str, np.ndarray]
    scheme_state: dict[str, Any] | None


def pack(value: Any) -> Any:
    """``value`` with numpy arrays as tensors and numpy scalars as Python numbers (for ``weights_only`` loading).

    Containers are rebuilt (dict, list, tuple) but one object reached twice is
    packed once, so shared objects (edges holding the same model) stay shared.
    """
    memo: dict[int, Any] = {}

    def walk(v: Any) -> Any:
        if id(v) in memo:
            return memo[id(v)]
        if isinstance(v, np.ndarray):
            out: Any = {"__ndarray__": torch.from_numpy(np.ascontiguousarray(v).copy())}
        elif isinstance(v, np.generic):
            out = v.item()
        elif isinstance(v, dict):
            out = {k: walk(x) for k, x in v.items()}
        elif isinstance(v, list):
            out = [walk(x) for x in v]
        elif isinstance(v, tuple):
            out = tuple(walk(x) for x in v)
        else:
            return v
        memo[id(v)] = out
        return out

    return walk(value)


def unpack(value: Any) -> Any:
    """Inverse of :func:`pack` (arrays back to numpy; shared objects stay shared)."""
    memo: dict[int, Any] = {}

    def walk(v: Any) -> Any:
        if id(v) in memo:
            return memo[id(v)]
        if isinstance(v, dict) and set(v) == {"__ndarray__"}:
            out: Any = v["__ndarray__"].numpy()
        elif isinstance(v, dict):
            out = {k: walk(x) for k, x in v.items()}
        elif isinstance(v, list):
            out = [walk(x) for x in v]
        elif isinstance(v, tuple):
            out = tuple(walk(x) for x in v)
        else:
            return v
        memo[id(v)] = out
        return out

    return walk(value)


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
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
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
        )
    except Exception as exc:  # torch.load and the checks above fail in many ways on a damaged file
        text = str(exc).strip().splitlines()
        raise CheckpointError(f"{path}: unreadable checkpoint ({text[0] if text else type(exc).__name__})") from None
