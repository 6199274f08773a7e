"""Many shared FDMA cells at once: the uplink part of the aggregated network-only engine (:mod:`sim.fastnet`).

The event-driven path (:class:`sim.media.SharedCell` under SimPy) spends one
Python event per flow start, flow end and coherence-block boundary of every
cell. Here every cell runs the same algorithm in lock-step: each iteration
handles the next event of every live cell (a flow arrival or the cell's
timer), with the state of all cells in ``(cells, slots)`` arrays. The
arithmetic is the event path's, operation for operation, so the results are
the same to the last bit when the fading does not depend on the order of
draws (:class:`sim.keyed_fading.KeyedRadioMedium`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.keyed_fading import KeyedRadioMedium
from sim.media import DUE_RTOL, FINISHED_BITS, OutageError


@dataclass(frozen=True)
class Transfers:
    """Start and end time (s) of every flow, in the order the flows were given."""

    start_s: np.ndarray
    end_s: np.ndarray


class _CellState:
    """Flows of the live cells in ``(cells, slots)`` arrays; slot order = arrival order."""

    def __init__(self, cell: np.ndarray, link: np.ndarray, arrival_s: np.ndarray, bits: np.ndarray) -> None:
        order = np.lexsort((np.arange(len(cell)), arrival_s, cell))
        cells, first, counts = np.unique(cell[order], return_index=True, return_counts=True)
        n_cells, n_slots = len(cells), int(counts.max())
        row = np.repeat(np.arange(n_cells), counts)
        col = np.arange(len(order)) - np.repeat(first, counts)
        shape = (n_cells, n_slots)
        self.flow = np.full(shape, -1, dtype=np.int64)
        self.flow[row, col] = order
        self.link = np.zeros(shape, dtype=np.int64)
        self.link[row, col] = link[order]
        self.arrival = np.full(shape, np.inf)
        self.arrival[row, col] = arrival_s[order]
        self.left = np.zeros(shape)
        self.left[row, col] = bits[order]
        self.pending = self.flow >= 0
        self.active = np.zeros(shape, dtype=bool)
        self.due = np.zeros(shape, dtype=bool)
        self.rate = np.zeros(shape)
        self.gain = np.zeros(shape)
        self.block = np.zeros(shape, dtype=np.int64)
        self.start = np.zeros(shape)
        self.t_last = np.zeros(n_cells)
        self.timer = np.full(n_cells, np.inf)

    _FIELDS = ("flow", "link", "arrival", "left", "pending", "active", "due", "rate", "gain", "block", "start")

    def keep(self, rows: np.ndarray) -> None:
        """Drop every cell not in ``rows``."""
        for name in (*self._FIELDS, "t_last", "timer"):
            setattr(self, name, getattr(self, name)[rows])


def _rates(medium: KeyedRadioMedium, gain: np.ndarray, sharing: np.ndarray, n_active: np.ndarray,
           bandwidth_hz: float, out: np.ndarray) -> None:  # fmt: skip
    """``out[sharing] = R(gain, B / n)``, n the number of active flows of the cell (row)."""
    for n in range(1, int(n_active.max(initial=0)) + 1):
        cells = n_active == n
        if cells.any():
            picked = sharing & cells[:, None]
            out[picked] = medium.rates_bps(gain[picked], bandwidth_hz / n)


def shared_cell_transfers(
    medium: KeyedRadioMedium,
    bandwidth_hz: float,
    cell: np.ndarray,
    link: np.ndarray,
    arrival_s: np.ndarray,
    bits: np.ndarray,
) -> Transfers:
    """Finish times of flows on independent shared FDMA cells, as :class:`sim.media.SharedCell` computes them.

    Each flow ``i`` starts sending ``bits[i]`` on ``link[i]`` in cell
    ``cell[i]`` at ``arrival_s[i]``. In a cell with n active flows each gets
    ``bandwidth_hz / n`` at rate R(g, B/n); the split is recomputed when a
    flow starts or ends and gains are redrawn at coherence-block boundaries
    (see ``SharedCell``). Flows arriving at the same time as a cell's timer
    are handled first, as SimPy orders them.

    Raises:
        OutageError: a flow whose rate is 0 and whose channel never changes.
    """
    s = _CellState(np.asarray(cell), np.asarray(link), np.asarray(arrival_s, dtype=float), np.asarray(bits, float))
    start_out = np.zeros(len(cell))
    end_out = np.zeros(len(cell))
    fading = medium.fading
    coherence_s = fading.coherence_s
    while len(s.timer) and (np.isfinite(s.timer).any() or s.pending.any()):
        next_arrival = np.where(s.pending, s.arrival, np.inf).min(axis=1)
        is_arrival = next_arrival <= s.timer
        now = np.where(is_arrival, next_arrival, s.timer)
        now = np.where(np.isfinite(now), now, s.t_last)  # finished cells: no time passes
        s.left -= s.rate * (now - s.t_last)[:, None]
        s.t_last = now
        s.left[s.due & ~is_arrival[:, None]] = 0.0
        new = s.pending & (s.arrival == now[:, None]) & is_arrival[:, None]
        if new.any():
            rows = np.nonzero(new)[0]
            links = s.link[new]
            if coherence_s is None:
                s.block[new] = -1
                epochs = fading.next_transfer_epochs(links)
            else:
                epochs = s.block[new] = fading.block_indices(now[rows])
            s.gain[new] = medium.gains_at(links, epochs)
            s.start[new] = now[rows]
            s.active |= new
            s.pending &= ~new
        finished = s.active & (s.left <= FINISHED_BITS)
        if finished.any():
            flows = s.flow[finished]
            start_out[flows] = s.start[finished]
            end_out[flows] = now[np.nonzero(finished)[0]]
            s.active &= ~finished
            s.rate[finished] = 0.0
        n_active = s.active.sum(axis=1)
        block = np.full(len(now), -1, dtype=np.int64) if coherence_s is None else fading.block_indices(now)
        stale = s.active & (s.block != block[:, None])
        if stale.any():
            epochs = s.block[stale] = block[np.nonzero(stale)[0]]
            s.gain[stale] = medium.gains_at(s.link[stale], epochs)
        _rates(medium, s.gain, s.active, n_active, bandwidth_hz, s.rate)
        sending = s.active & (s.rate > 0)
        finish = np.full(s.left.shape, np.inf)
        np.divide(s.left, s.rate, out=finish, where=sending)
        delay = finish.min(axis=1)
        s.due = s.active & (finish <= (delay * (1 + DUE_RTOL))[:, None])
        if coherence_s is not None:
            boundary = (block + 1) * coherence_s - now
            crossing = boundary < delay
            delay = np.where(crossing, boundary, delay)
            s.due[crossing] = False
        busy = n_active > 0
        stuck = busy & np.isinf(delay)
        if stuck.any():
            link_id = int(s.link[stuck][0, s.active[stuck][0]][0])
            raise OutageError(
                f"link {link_id} has rate 0 bit/s and the channel never changes; "
                "set fading.coherence_s or use rate = 'shannon'"
            )
        s.timer = np.where(busy, now + delay, np.inf)
        live = busy | s.pending.any(axis=1)
        if live.sum() < 0.8 * len(live):  # a finished cell stays put (its next event is at +inf) until then
            s.keep(np.flatnonzero(live))
    return Transfers(start_out, end_out)
