"""Event rows for many actions at once, as :class:`sim.world.World` logs them one by one.

A message of modules ``sizes = [(module, bytes), …]`` from a sender to R
receivers gives, per module, one ``tx`` row for the sender and one ``rx`` row
per receiver, the message's energies shared among its modules in proportion
to their bytes (``World._log_message``). A compute or aggregation step gives
one ``local`` row. Rows carry the time the action started and its duration.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from traces.schema import EVENT_KINDS, OUTCOMES, ROLES, TABLES

_KIND = {k: i for i, k in enumerate(EVENT_KINDS)}
_ROLE = {r: i for i, r in enumerate(ROLES)}
_OK = OUTCOMES.index("ok")


class RowLog:
    """Collects event rows of one scheme per round as arrays; :meth:`take` hands a round's rows over.

    Within a round, rows come in the order they were added (action by action),
    not in the event engine's order of completion.
    """

    def __init__(self, scheme: str) -> None:
        self._scheme = scheme.encode()
        self._parts: dict[int, list[np.ndarray]] = {}

    def _add(self, r: int, rows: np.ndarray) -> None:
        rows["scheme"], rows["round"], rows["outcome"] = self._scheme, r, _OK
        self._parts.setdefault(r, []).append(rows)

    def local(self, r: int, kind: str, node: np.ndarray, start_s: np.ndarray, end_s: np.ndarray,
              energy_j: np.ndarray | float) -> None:  # fmt: skip
        """One ``local`` row per node (compute or aggregate): no peer, no module, no bytes."""
        rows = np.zeros(len(node), TABLES["events"])
        rows["t_start_s"], rows["duration_s"] = start_s, end_s - start_s
        rows["kind"], rows["role"], rows["node"], rows["peer"] = _KIND[kind], _ROLE["local"], node, -1
        rows["energy_j"] = energy_j
        self._add(r, rows)

    def messages(
        self,
        r: int,
        kind: str,
        sender: np.ndarray,
        receivers: np.ndarray,
        counts: np.ndarray,
        sizes: Sequence[tuple[str, int]],
        start_s: np.ndarray,
        end_s: np.ndarray,
        tx_energy_j: np.ndarray,
        rx_energy_j: np.ndarray | float,
    ) -> None:
        """M messages of the same ``sizes``: message m goes from ``sender[m]`` to ``counts[m]`` receivers.

        ``receivers`` lists every message's receivers one message after another;
        times and energies are per message.
        """
        sender, counts = np.asarray(sender), np.asarray(counts)
        m, n_mod = len(sender), len(sizes)
        total = sum(nbytes for _, nbytes in sizes) or 1
        shares = np.array([nbytes / total for _, nbytes in sizes])
        per_module = 1 + counts
        block = n_mod * per_module
        msg = np.repeat(np.arange(m), block)
        offset = np.arange(int(block.sum())) - np.repeat(np.cumsum(block) - block, block)
        module, position = np.divmod(offset, per_module[msg])
        is_tx = position == 0
        rx_first = np.cumsum(counts) - counts
        rx_node = receivers[np.minimum(rx_first[msg] + position - 1, len(receivers) - 1)] if len(receivers) else 0
        start_s, end_s = np.asarray(start_s, dtype=float), np.asarray(end_s, dtype=float)
        rows = np.zeros(len(msg), TABLES["events"])
        rows["t_start_s"] = start_s[msg]
        rows["duration_s"] = (end_s - start_s)[msg]
        rows["kind"] = _KIND[kind]
        rows["role"] = np.where(is_tx, _ROLE["tx"], _ROLE["rx"])
        rows["node"] = np.where(is_tx, sender[msg], rx_node)
        tx_peer = np.where(counts == 1, receivers[np.minimum(rx_first, len(receivers) - 1)], -1) if len(receivers) else -1
        rows["peer"] = np.where(is_tx, np.broadcast_to(tx_peer, (m,))[msg], sender[msg])
        rows["module"] = np.array([name.encode() for name, _ in sizes], dtype=TABLES["events"]["module"])[module]
        rows["bytes"] = np.array([nbytes for _, nbytes in sizes], dtype=np.int64)[module]
        tx_energy_j = np.broadcast_to(np.asarray(tx_energy_j, dtype=float), (m,))
        rx_energy_j = np.broadcast_to(np.asarray(rx_energy_j, dtype=float), (m,))
        rows["energy_j"] = np.where(is_tx, tx_energy_j[msg], rx_energy_j[msg]) * shares[module]
        self._add(r, rows)

    def take(self, r: int) -> np.ndarray:
        """Round ``r``'s rows, and forget them."""
        parts = self._parts.pop(r, [])
        return np.concatenate(parts) if parts else np.zeros(0, TABLES["events"])
