"""The ``/metrics`` rows of a run, written in order as their background evaluations finish.

Every evaluated round adds a :class:`~sim.eval_worker.PendingEvaluation`;
the queue writes the rows of the finished ones at the head of the line
(never out of order) each time something is added, and all of them on
:meth:`MetricsQueue.drain`. A run drains before every checkpoint and at its
end, so files and checkpoints hold the same rows as with evaluation in line;
one queue can span schemes, so a scheme's last evaluations overlap the next
scheme's training instead of being waited for.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np

from sim.eval_worker import PendingEvaluation
from traces.schema import TABLES


class MetricsQueue:
    """Pending ``/metrics`` rows for ``sink(table, rows)``."""

    def __init__(self, sink: Callable[[str, np.ndarray], None]) -> None:
        self._sink = sink
        self._pending: deque[tuple[bytes, int, float, PendingEvaluation]] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, scheme: bytes, r: int, t_s: float, evaluation: PendingEvaluation) -> None:
        """Round ``r`` of ``scheme`` ended at ``t_s``; its metrics come from ``evaluation``."""
        self._pending.append((scheme, r, t_s, evaluation))
        self._write_finished()

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait for every pending evaluation and write its rows.

        Raises:
            TimeoutError: ``timeout_s`` passed first (the rows written so far stay written).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._pending:
            left_s = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._pending[0][3].wait(left_s)
            self._write_finished()

    def _write_finished(self) -> None:
        while self._pending and self._pending[0][3].done():
            scheme, r, t_s, evaluation = self._pending.popleft()
            results = evaluation.result()
            rows = np.zeros(len(results), TABLES["metrics"])
            for i, (task, (loss, score)) in enumerate(sorted(results.items())):
                rows[i] = (scheme, r, t_s, task, loss, score)
            self._sink("metrics", rows)
