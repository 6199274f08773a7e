"""The D2D sidelink of one world: medium, contacts on the clock, cluster graphs and D2D transfers that log rows.

A :class:`Sidelink` is built per scheme run (fresh streams, like the other
media) from the scenario's ``[d2d]`` section:

* **medium** — a :class:`sim.radio.RadioMedium` over the device pairs of each
  cell (:class:`sim.d2d_medium.PairLinks`), with the sidelink's power,
  bandwidth, path loss and fading; its gains are logged as channel samples of
  medium ``"d2d"`` and can be replayed like the others;
* **contacts** — a :class:`sim.d2d_contacts.ContactClock`: pairs within the
  sidelink range (``radius_m``, shortened by ``snr_threshold_db``) of the
  layout, or the exact contact intervals of the mobility trace;
* **graph** — :meth:`Sidelink.graph`: the pairs of some devices in contact
  now, joined by minimum-spanning-tree links when ``connect_with_mst`` (the
  HF-FM prototype's; such links are used at their real distance and never
  break);
* **transfers** — :meth:`Sidelink.unicast` over the receiver's band (a
  :class:`sim.d2d_medium.SidelinkCell`: the senders transmitting to one
  receiver at a time share its ``bandwidth_hz`` equally; distinct receivers
  reuse the band, no interference between them) and
  :meth:`Sidelink.broadcast` on a cluster's band (one sender at a time, at the
  worst receiver's rate in each fading block:
  :class:`sim.d2d_medium.SidelinkBroadcast`).

Energy: the sender is charged ``tx_energy_power_w`` × airtime (0.6 W, the
prototype's D2D power), each receiver ``rx_power_w`` × airtime; the rows are
of kind ``"d2d"`` (energy category ``d2d``). A unicast whose contact closes
mid-way stops: with ``on_contact_loss = "fail"`` it is logged with outcome
``failed`` (the energy spent until the cut charged), with ``"resume"`` it
waits for the contact to reopen and sends the remaining bits (its row spans
the pause; energy counts the airtime only); when the pair never meets again
it fails. A broadcast receiver whose contact closes before the broadcast
ends misses it (outcome ``failed``, listening energy charged).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np
import simpy

from channels import connect_with_mst, distance_m, radio_energy_j
from sim.d2d_contacts import ContactClock, contact_intervals_for
from sim.d2d_medium import PairLinks, SidelinkBroadcast, SidelinkCell, sidelink_range_m
from sim.learner import Update
from sim.radio import RadioMedium

if TYPE_CHECKING:
    from sim.world import World

D2D_STREAM = 0xD2D
"""Spawn key of the D2D random streams: ``SeedSequence(seed, spawn_key=(D2D_STREAM,))``, apart from the run's tree."""

MEDIUM = "d2d"
"""Medium name of the sidelink's channel samples (and of its replayed trace)."""


def log_d2d(
    world: World, r: int, start_s: float, sender: int, receivers: Sequence[int], update: Update,
    tx_energy_j: float, rx_energy_j: float, failed: Sequence[int] = (),
) -> None:  # fmt: skip
    """The rows of one D2D message carrying ``update`` (kind ``"d2d"``); the one place D2D rows are written.

    Per module of the message: one ``tx`` row for the sender, one ``rx`` row
    per receiver; receivers in ``failed`` get outcome ``failed`` (and the
    sender's rows too when every receiver failed).
    """
    sizes = world.message_sizes(update)
    world._log_message(r, start_s, "d2d", sender, receivers, sizes, tx_energy_j, rx_energy_j, failed=failed)


class Sidelink:
    """D2D medium, contacts and transfers of one world (see the module docstring).

    Args:
        world: the world of the scheme being run.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        world.sidelink = self  # the scheme's one sidelink, also used to relay modules (sim.module_relay)
        self.config = world.scenario.d2d
        layout = world.layout
        self._track = world.inputs.positions
        self.links = PairLinks(layout.device_edge)
        medium_seq, choice_seq = np.random.SeedSequence(world.scenario.seed, spawn_key=(D2D_STREAM,)).spawn(2)
        self.rng = np.random.default_rng(choice_seq)
        """The D2D protocols' own generator (random heads, uploaders)."""
        self.medium = RadioMedium(
            self.config,
            self.links.distance_function(self.positions),
            len(self.links),
            np.random.default_rng(medium_seq),
            static=self._track is None,
            log=lambda t, links, gains: world.channel_samples.append((t, MEDIUM, links, gains)),
            replay=world.inputs.channel_replay.get(MEDIUM),
        )
        self.range_m = sidelink_range_m(self.config)
        peers = zip(self.links.a.tolist(), self.links.b.tolist())
        self.contacts = ContactClock(world.env, contact_intervals_for(layout.device_xy, self._track, self.range_m, peers))
        self._cells: dict[int, SidelinkCell] = {}

    def positions(self, t_s: float) -> np.ndarray:
        """(n_devices, 2) device positions at ``t_s`` (m)."""
        return self.world.layout.device_xy if self._track is None else np.asarray(self._track.at(t_s), dtype=float)

    def graph(self, members: Sequence[int]) -> nx.Graph:
        """D2D graph of ``members`` now: pairs in contact, plus MST links when ``connect_with_mst``.

        Edges carry ``distance_m``; MST links carry ``mst=True`` (see
        :func:`channels.connect_with_mst`). Nodes are the members.
        """
        xy = self.positions(self.world.env.now)
        ids = sorted(int(m) for m in members)
        graph = nx.Graph()
        graph.add_nodes_from(ids)
        inside = set(ids)
        pairs = [(a, b) for a, b in self.contacts.pairs_up() if a in inside and b in inside]
        if pairs:
            a, b = np.array(pairs).T
            graph.add_edges_from((i, j, {"distance_m": float(d)}) for i, j, d in zip(a, b, distance_m(xy[a], xy[b])))
        if self.config.connect_with_mst:
            graph = connect_with_mst(graph, xy[ids], nodes=ids)
        return graph

    def band(self) -> SidelinkBroadcast:
        """A new shared band for broadcasts (one sender at a time), e.g. one per cluster."""
        return SidelinkBroadcast(self.world.env, self.medium, self.config.bandwidth_hz)

    def _breakable(self, a: int, b: int, graph: nx.Graph) -> bool:
        """A contact link (may close), as opposed to an MST link (never breaks)."""
        return not graph.edges[a, b].get("mst", False)

    def unicast(
        self, sender: int, receiver: int, update: Update, r: int, graph: nx.Graph
    ) -> Generator[simpy.Event, object, bool]:
        """Send ``update`` over the graph link sender → receiver on the receiver's band; True when delivered.

        Contact loss handling as configured (module docstring). Logs the rows.
        """
        world, env = self.world, self.world.env
        bits_left = 8.0 * world.message_bytes(update)
        link = self.links.link(sender, receiver)
        cell = self._cells.setdefault(receiver, SidelinkCell(env, self.medium, self.config.bandwidth_hz))
        breakable = self._breakable(sender, receiver, graph)
        start_s, airtime_s, delivered = env.now, 0.0, False
        while True:
            if not breakable or self.contacts.is_up(sender, receiver):
                piece_start_s = env.now
                done = cell.transfer(link, bits_left)
                if not breakable or math.isinf(self.contacts.closes_at(sender, receiver)):
                    yield done
                else:
                    yield done | self.contacts.closing(sender, receiver)
                airtime_s += env.now - piece_start_s
                if done.triggered:
                    delivered = True
                    break
                bits_left -= cell.cancel(done)
            reopened = self.contacts.opening(sender, receiver) if self.config.on_contact_loss == "resume" else None
            if reopened is None:
                break
            yield reopened
        medium = self.medium
        log_d2d(world, r, start_s, sender, [receiver], update,
                float(radio_energy_j(medium.tx_energy_power_w, airtime_s)),
                float(radio_energy_j(medium.rx_power_w, airtime_s)),
                failed=() if delivered else [receiver])  # fmt: skip
        return delivered

    def broadcast(
        self, sender: int, receivers: Sequence[int], update: Update, r: int, graph: nx.Graph, band: SidelinkBroadcast
    ) -> Generator[simpy.Event, object, list[int]]:
        """Broadcast ``update`` to ``receivers`` on ``band`` at the worst receiver's rate; returns who missed it.

        A receiver misses it when its contact with the sender closes before the
        broadcast ends. Logs the rows.
        """
        world = self.world
        links = [self.links.link(sender, v) for v in receivers]
        start_s, end_s = yield from band.send(links, 8.0 * world.message_bytes(update))
        missed = [v for v in receivers if self._breakable(sender, v, graph) and self.contacts.opened_at(sender, v) > start_s]
        medium, airtime_s = self.medium, end_s - start_s
        log_d2d(world, r, start_s, sender, list(receivers), update,
                float(radio_energy_j(medium.tx_energy_power_w, airtime_s)),
                float(radio_energy_j(medium.rx_power_w, airtime_s)), failed=missed)  # fmt: skip
        return missed
