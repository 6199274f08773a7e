"""Held-out evaluation in a background process, on the core that local training leaves idle.

Local training runs on one torch thread (a tiny model gains nothing from a
second), so evaluating every round's models in the same process would add
its whole cost to the run time. :class:`BackgroundEvaluator` sends each
model state to one process-wide worker (``python -c``, started once, one
torch thread) that evaluates it with :func:`models.train.evaluate` while the
simulation and the next round's training go on; the caller collects the
results later (:class:`PendingEvaluation`).

The worker computes exactly what the calling process would: the same model
(pickled once per evaluator), the same data, the same single-threaded
kernels (``tests/test_eval_worker.py``). States travel as one flat float32
array; everything is copied, nothing is shared, so later training in the
caller cannot touch a state being evaluated. The worker is a plain
subprocess talking pickles over its stdin/stdout (not ``multiprocessing``,
whose ``spawn`` re-imports the caller's main script, which fails in scripts
without an ``if __name__ == "__main__"`` guard); it exits when the caller's
end of the pipe closes, also when the caller is killed.

    >>> from models.data import make_m3t_dataset
    >>> from models.net import ModelConfig, build_model, trainable_state
    >>> model = build_model(ModelConfig(), seed=0)
    >>> evaluator = BackgroundEvaluator(model, make_m3t_dataset(32, seed=1))
    >>> pending = evaluator.submit([trainable_state(model)], combine=lambda results: results[0])
    >>> sorted(pending.result())
    ['activity', 'shape', 'vqa']
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import torch

from models.data import M3TData
from models.train import evaluate

Metrics = dict[str, tuple[float, float]]
"""Task → (loss, score), as :func:`models.train.evaluate` returns."""


# ---------------------------------------------------------------- the worker's side
_worker_models: dict[str, tuple[torch.nn.Module, M3TData, list[tuple[str, torch.Size]]]] = {}
"""Evaluator key → (model, test data, trainable parameter names and shapes)."""


def _register(key: str, blob: bytes) -> None:
    model, data = pickle.loads(blob)
    layout = [(name, p.shape) for name, p in model.named_parameters() if p.requires_grad]
    _worker_models[key] = (model, data, layout)


def _forget(key: str) -> None:
    _worker_models.pop(key, None)


def _evaluate_flat(key: str, flats: list[np.ndarray]) -> list[Metrics]:
    model, data, layout = _worker_models[key]
    results = []
    for flat in flats:
        pieces = torch.from_numpy(flat).split([shape.numel() for _, shape in layout])
        state = {name: piece.view(shape) for (name, shape), piece in zip(layout, pieces)}
        results.append(evaluate(model, state, data))
    return results


_CALLS: dict[str, Callable[..., Any]] = {"register": _register, "forget": _forget, "evaluate": _evaluate_flat}


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The worker's loop: (call id, name, args) in, (call id, error or None, result) out, until end of input."""
    torch.set_num_threads(1)
    while True:
        try:
            call_id, name, args = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = (call_id, None, _CALLS[name](*args))
        except Exception as exc:  # sent back to the caller's future
            reply = (call_id, f"{type(exc).__name__}: {exc}", None)
        pickle.dump(reply, replies)
        replies.flush()


def main() -> None:
    """The worker process: requests on stdin, replies on a private copy of stdout (prints go to stderr)."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies)


# ---------------------------------------------------------------- the caller's side
class _Worker:
    """One worker process and the futures of its calls (answered in call order).

    Requests are pickled by the caller and written by a sender thread: a
    full pipe (the worker busy evaluating) never blocks the simulation.
    """

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen(
            [sys.executable, "-c", "import sim.eval_worker; sim.eval_worker.main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._futures: dict[int, Future] = {}
        self._next_id = 0
        self._outbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        threading.Thread(target=self._send_requests, daemon=True, name="hffm-eval-requests").start()
        threading.Thread(target=self._read_replies, daemon=True, name="hffm-eval-replies").start()

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def call(self, name: str, *args: Any) -> Future:
        future: Future = Future()
        with self._lock:
            if not self.alive:
                raise RuntimeError(f"the evaluation worker stopped (exit code {self._process.returncode})")
            call_id, self._next_id = self._next_id, self._next_id + 1
            self._futures[call_id] = future
        self._outbox.put(pickle.dumps((call_id, name, args), protocol=pickle.HIGHEST_PROTOCOL))
        return future

    def _send_requests(self) -> None:
        pipe = self._process.stdin
        while True:
            request = self._outbox.get()
            try:
                pipe.write(request)
                pipe.flush()
            except OSError:  # the worker stopped: the reply reader fails the pending calls
                return

    def _read_replies(self) -> None:
        replies = self._process.stdout
        while True:
            try:
                call_id, error, result = pickle.load(replies)
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            with self._lock:
                future = self._futures.pop(call_id)
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(RuntimeError(f"evaluation failed in the worker: {error}"))
        code = self._process.wait()
        with self._lock:
            pending, self._futures = self._futures, {}
        for future in pending.values():
            future.set_exception(RuntimeError(f"the evaluation worker stopped (exit code {code})"))


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _shared_worker() -> _Worker:
    """The process-wide worker, started on first use (again if it stopped)."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.alive:
            _worker = _Worker()
        return _worker


def _forget_later(worker: _Worker, key: str) -> None:
    """Drop an evaluator's model from the worker it was registered with (if that one still runs)."""
    if worker.alive:
        try:
            worker.call("forget", key)
        except (RuntimeError, OSError):  # stopped meanwhile: the model went with it
            pass


@dataclass
class PendingEvaluation:
    """Metrics being computed in the background: ``done()`` without waiting, ``result()`` waiting.

    ``combine`` turns the worker's per-state metrics into the caller's result.
    """

    future: Future
    combine: Callable[[list[Metrics]], Metrics]

    @classmethod
    def ready(cls, metrics: Metrics) -> PendingEvaluation:
        """Metrics already known (nothing runs in the background)."""
        future: Future = Future()
        future.set_result([])
        return cls(future, lambda _results: metrics)

    def done(self) -> bool:
        return self.future.done()

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until done (TimeoutError after ``timeout_s``; a failed evaluation raises its error)."""
        self.future.result(timeout=timeout_s)

    def result(self) -> Metrics:
        return self.combine(self.future.result())


class BackgroundEvaluator:
    """Evaluates full trainable states of one model on one held-out set, in the background worker.

    Args:
        model: the model (its frozen weights and structure travel once, pickled).
        test_data: the held-out samples.
    """

    def __init__(self, model: torch.nn.Module, test_data: M3TData) -> None:
        self._names = [name for name, p in model.named_parameters() if p.requires_grad]
        dtypes = {p.dtype for p in model.parameters() if p.requires_grad}
        if dtypes != {torch.float32}:
            raise ValueError(f"background evaluation needs float32 trainable parameters, not {sorted(map(str, dtypes))}")
        self._key = uuid.uuid4().hex
        self._blob = pickle.dumps((model, test_data), protocol=pickle.HIGHEST_PROTOCOL)
        self._worker: _Worker | None = None
        self._registered()  # start the worker now: its start-up overlaps the first round

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its worker: a copy in another process registers with that process's worker."""
        return {**self.__dict__, "_worker": None}

    def _registered(self) -> _Worker:
        worker = _shared_worker()
        if worker is not self._worker:
            worker.call("register", self._key, self._blob)
            weakref.finalize(self, _forget_later, worker, self._key).atexit = False
            self._worker = worker
        return worker

    def submit(
        self, states: Sequence[dict[str, torch.Tensor]], combine: Callable[[list[Metrics]], Metrics]
    ) -> PendingEvaluation:
        """Start evaluating ``states`` (each every trainable parameter); ``combine`` gets their metrics in order."""
        flats = [torch.cat([state[name].detach().reshape(-1) for name in self._names]).numpy() for state in states]
        return PendingEvaluation(self._registered().call("evaluate", self._key, flats), combine)
