"""Module relaying: a device that gains a task or modality fetches the new modules before it trains.

A device's held modules grow when it starts a task
(``[[heterogeneity.task_arrivals]]``: it then needs ``prompt/<task>`` and
``head/<task>``) or senses a new modality
(``[[heterogeneity.modality_arrivals]]``: ``encoder/<modality>``). The
modules it gains in round r, held(r) − held(r − 1), are fetched at the start
of round r, just before it trains (:meth:`sim.world.World.train` calls
:meth:`ModuleFetch.fetch`):

* with ``SchemeConfig.module_relay`` (a D2D scheme), each new module comes
  from the D2D neighbour that held it in round r − 1 with the best link —
  the shortest one of the sidelink graph now (:meth:`sim.d2d.Sidelink.graph`:
  contacts up, plus MST links when ``d2d.connect_with_mst``); the path loss
  falls with distance, so it has the best median SNR; ties go to the lowest
  device id. One D2D unicast per chosen holder carries exactly the modules
  it gives (:meth:`sim.d2d.Sidelink.unicast`, kind ``"d2d"``, one row per
  module plus the header);
* the modules no neighbour holds, or whose D2D transfer failed (contact
  lost), and every new module without ``module_relay``, come from the
  device's server in one message: its edge as a downlink unicast (kind
  ``"downlink"``), or the cloud over the WAN in star FL (kind ``"wan_down"``).

Whose copy: devices train from their edge's model (the cloud's in star), so a
holder's current copy of a module it held last round is that model's, and so
is the server's; the fetched tensors are taken from it. Edges therefore ask
the cloud for the global version of every module their devices hold in the
next round (:class:`sim.protocols.CloudRound`), so an edge can serve a module
none of its devices held before. The device trains from the round's model with
the fetched modules put in (:meth:`sim.learner.NetworkOnlyLearner.merge`);
:attr:`ModuleFetch.fetched` keeps what each device fetched last, for
inspection. From the end of round r the edge's broadcasts include the new
modules like any held module.

Limits: a device switched off in the round its set grows gets the modules by
the round's broadcast (as every device that missed rounds is assumed to have
its edge's model); a re-homed device fetches from its home edge.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import networkx as nx
import simpy

from sim.learner import Update
from sim.scenario import SchemeConfig

if TYPE_CHECKING:
    from sim.world import World


class ModuleFetch:
    """Gets each device the modules it gains, before it trains (see the module docstring).

    Args:
        world: the world of the scheme being run.
        scheme: the scheme (``module_relay``: from D2D neighbours first; ``protocol = "star"``: the server is
            the cloud).
    """

    def __init__(self, world: World, scheme: SchemeConfig) -> None:
        self.world = world
        self.relay = scheme.module_relay
        self.from_cloud = scheme.protocol == "star"
        self.fetched: dict[int, Update] = {}
        """Device → the modules (tensors, weight 0) it fetched in its last fetch."""

    def new_modules(self, device: int, r: int) -> tuple[str, ...]:
        """The modules ``device`` holds in round ``r`` and did not hold in round r − 1 (none in round 1)."""
        learner = self.world.learner
        if r <= 1:
            return ()
        before = set(learner.held(device, r - 1))
        return tuple(k for k in learner.held(device, r) if k not in before)

    def holders(self, device: int, modules: tuple[str, ...], r: int, graph: nx.Graph) -> dict[int, tuple[str, ...]]:
        """Neighbour in ``graph`` → the ``modules`` it gives: per module the neighbour that held it in round
        r − 1 with the shortest link (ties: lowest id). Neighbours in the order of their links."""
        world = self.world
        ranked = sorted(graph.neighbors(device), key=lambda v: (graph.edges[device, v]["distance_m"], v))
        chosen: dict[int, list[str]] = {}
        for k in modules:
            holder = next((v for v in ranked if k in world.learner.held(v, r - 1)), None)
            if holder is not None:
                chosen.setdefault(holder, []).append(k)
        return {v: tuple(chosen[v]) for v in ranked if v in chosen}

    def fetch(self, device: int, model: Update, r: int) -> Generator[simpy.Event, object, Update]:
        """Fetch the modules ``device`` gains in round ``r`` (D2D, then its server); returns the model it trains from.

        ``model`` is the round's model the device would train from (its edge's, or the cloud's).
        """
        new = self.new_modules(device, r)
        if not new:
            return model
        world, learner = self.world, self.world.learner
        missing = set(new)
        sidelink = world.sidelink
        if self.relay and sidelink is not None:
            graph = sidelink.graph(sorted({*world.available(world.edge_of_device[device].devices), device}))
            for holder, modules in self.holders(device, new, r, graph).items():
                part = learner.restrict(model, modules)  # the holder's copy: the round's model (module docstring)
                if (yield from sidelink.unicast(holder, device, part, r, graph)):
                    missing -= set(modules)
        if missing:
            part = learner.restrict(model, missing)
            if self.from_cloud:
                yield from world.wan(device, part, r, up=False)
            else:
                yield from world.broadcast(world.edge_of_device[device], part, r, receivers=[device])
        self.fetched[device] = learner.restrict(model, new)
        return learner.merge(model, self.fetched[device])
