"""Aggregated network-only engine (``network.engine = "aggregated"``): a scheme's rounds with numpy, no SimPy events.

The event engine runs one SimPy process per device and one timer per cell
and coherence block, and logs rows one by one; that costs ~1 ms per device
and round. In network-only mode nothing a device does depends on another
cell, so a round can be computed for all devices at once:

* local training: duration FLOPs / FLOP/s for every device (a vector);
* uplinks: every cell's shared FDMA channel in lock-step
  (:func:`sim.fastnet_cells.shared_cell_transfers`);
* edge aggregation, backhaul, cloud aggregation, downlink multicasts, the
  star protocol's wide-area links: closed-form times per edge or device;
* rows: built as arrays (:class:`sim.fastnet_rows.RowLog`) and handed to
  :meth:`sim.world.World.close_round`, which writes the round summary and
  ledger exactly as for the event engine.

The operations are the event engine's, in the same order, so every event
row (times, bytes, energies) is equal to the last bit
(``tests/test_fastnet_engine.py``). Rows within a round come action by action
rather than in order of completion, so the round and ledger totals, float
sums over those rows, can differ in the last bits. The fading must not depend on
the order of draws (``fading.draws = "keyed"`` or ``kind = "none"``), and
the engine refuses what it does not model (training, mobility, churn,
channel replay, D2D, non-default sections such as faults) with a message
naming it. It does not record ``/channel`` samples: keyed fading is a pure
function of the seed.

Module bookkeeping uses the learner's own methods once per group of edges
whose devices hold the same modules: in network-only mode without churn
every round carries the same module sets.
"""

from __future__ import annotations

from collections.abc import Sequence
import numpy as np

from channels import compute_time_s, radio_energy_j
from sim.fastnet_cells import shared_cell_transfers
from sim.fastnet_rows import RowLog
from sim.keyed_fading import KeyedRadioMedium
from sim.learner import Update
from sim.media import OutageError
from sim.scenario import Scenario, ScenarioError, SchemeConfig
from sim.world import Layout, World, WorldInputs

MODELLED_SECTIONS = frozenset({
    "name", "seed", "rounds", "topology", "uplink", "downlink", "backhaul", "wan", "d2d", "compute", "model",
    "data", "training", "network", "heterogeneity", "aggregation", "schemes",
})  # fmt: skip
"""Scenario sections the aggregated engine models (others, e.g. mobility, faults, must keep their defaults)."""

Sizes = tuple[tuple[str, int], ...]


def unsupported(
    scenario: Scenario, scheme: SchemeConfig, inputs: WorldInputs | None = None, layout: Layout | None = None
) -> list[str]:
    """What in this run the aggregated engine does not model (empty: it can run it).

    Without ``inputs`` and ``layout``, what the scenario alone shows (checked before any file is written).
    """
    reasons = []
    if scenario.training.enabled:
        reasons.append("training.enabled = true (the engine is network-only)")
    for name in ("uplink", "downlink"):
        fading = getattr(scenario, name).fading
        if fading.kind != "none" and fading.draws != "keyed":
            reasons.append(f"{name}.fading.draws = 'sequential' (set 'keyed', or kind = 'none')")
    if scheme.d2d != "none":
        reasons.append(f"scheme {scheme.name!r}: d2d = {scheme.d2d!r}")
    for name, spec in Scenario.model_fields.items():
        if name not in MODELLED_SECTIONS and getattr(scenario, name) != spec.get_default(call_default_factory=True):
            reasons.append(f"[{name}] (not modelled; leave it at its defaults)")
    if inputs is not None:
        if inputs.positions is not None:
            reasons.append("moving devices (mobility)")
        if inputs.availability is not None:
            reasons.append("device availability (churn)")
        if inputs.channel_replay:
            reasons.append("channel replay (--trace)")
    if layout is not None and scheme.protocol != "star":
        if (np.bincount(layout.device_edge, minlength=layout.n_edges) == 0).any():
            reasons.append("an edge server without devices")
    return reasons


def check_supported(
    scenario: Scenario, scheme: SchemeConfig, inputs: WorldInputs | None = None, layout: Layout | None = None
) -> None:
    """Raise :class:`ScenarioError` naming everything the aggregated engine cannot run here."""
    reasons = unsupported(scenario, scheme, inputs, layout)
    if reasons:
        raise ScenarioError(f"network.engine = 'aggregated' cannot run this: {'; '.join(reasons)}")


def _groups(keys: Sequence[object]) -> list[tuple[np.ndarray, object]]:
    """(indices, key) per distinct key, in order of first appearance."""
    index: dict[object, list[int]] = {}
    for i, key in enumerate(keys):
        index.setdefault(key, []).append(i)
    return [(np.array(ids), key) for key, ids in index.items()]


def _segment_max(values: np.ndarray, segment: np.ndarray, n_segments: int) -> np.ndarray:
    out = np.full(n_segments, -np.inf)
    np.maximum.at(out, segment, values)
    return out


class _Devices:
    """Per-device constants of a network-only run: training time and energy, upload sizes."""

    def __init__(self, world: World) -> None:
        learner = world.learner
        n = world.layout.n_devices
        model0 = learner.initial_update()
        self.held = [learner.held(d) for d in range(n)]
        self.flops = np.array([learner.train_flops(d) for d in range(n)])
        flops_per_s = np.asarray(world.device_flops_per_s, dtype=float)
        self.train_s = np.asarray(compute_time_s(self.flops, flops_per_s), dtype=float)
        self.train_energy_j = np.broadcast_to(world.compute_energy_j(self.flops, flops_per_s, self.train_s), (n,))
        self.by_held = _groups(self.held)
        """(devices, held modules) per distinct module set."""
        self.upload_sizes: dict[tuple[str, ...], Sizes] = {}
        self.upload_bits = np.zeros(n)
        self.params = np.zeros(n, dtype=np.int64)
        for devices, held in self.by_held:
            sizes = tuple(world.message_sizes(learner.train(int(devices[0]), model0)))
            self.upload_sizes[held] = sizes  # type: ignore[index]
            self.upload_bits[devices] = 8 * sum(nbytes for _, nbytes in sizes)
            self.params[devices] = learner.parameter_count(held)  # type: ignore[arg-type]


def _message_rows(
    rows: RowLog, r: int, kind: str, groups: list[tuple[np.ndarray, Sizes]], sender: np.ndarray,
    receivers: np.ndarray, start_s: np.ndarray, end_s: np.ndarray, tx_energy_j: np.ndarray, rx_energy_j: float,
) -> None:  # fmt: skip
    """Unicast messages (one receiver each); ``groups`` lists (items, sizes), merged here by sizes."""
    by_sizes: dict[Sizes, list[np.ndarray]] = {}
    for members, sizes in groups:
        by_sizes.setdefault(sizes, []).append(members)
    for sizes, parts in by_sizes.items():
        members = np.concatenate(parts)
        rows.messages(r, kind, sender[members], receivers[members], np.ones(len(members), dtype=np.int64), sizes,
                      start_s[members], end_s[members], tx_energy_j[members], rx_energy_j)  # fmt: skip


def run_aggregated(world: World, scheme: SchemeConfig, radio_rngs: tuple[np.random.Generator, np.random.Generator]) -> None:
    """Run ``scheme`` on ``world`` (initial metrics already recorded) with the aggregated engine.

    ``radio_rngs`` are fresh generators of the same seeds as the world's media
    (the engine builds keyed copies of them: same large-scale gains, same keys).
    """
    scenario = world.scenario
    uplink, downlink = (
        KeyedRadioMedium(config, world._device_edge_distance_m, world.layout.n_devices, rng)
        for config, rng in zip((scenario.uplink, scenario.downlink), radio_rngs)
    )
    devices = _Devices(world)
    if scheme.protocol == "star":
        _star(world, devices)
    else:
        _Hierarchical(world, devices, uplink, downlink, scheme.cloud_period if scheme.protocol == "hierarchical" else None).run()


def _star(world: World, devices: _Devices) -> None:
    """Star FedAvg (:func:`sim.protocols.star`) for every device at once."""
    learner, scenario = world.learner, world.scenario
    model0 = learner.initial_update()
    n = world.layout.n_devices
    ids = np.arange(n)
    cloud = np.full(n, world.cloud_id)
    wan = scenario.wan
    model = learner.aggregate([learner.train(d, model0) for d in range(n)], base=model0)
    down_groups = [(members, tuple(world.message_sizes(world.for_device(int(members[0]), model))))
                   for members, _ in devices.by_held]  # fmt: skip
    up_groups = [(members, devices.upload_sizes[held]) for members, held in devices.by_held]  # type: ignore[index]
    down_bits = np.zeros(n)
    for members, sizes in down_groups:
        down_bits[members] = 8 * sum(nbytes for _, nbytes in sizes)
    aggregate_s = float(compute_time_s(2 * int(devices.params.sum()), scenario.compute.server_flops_per_s))
    rows = RowLog(world.scheme)
    t0 = 0.0
    for r in range(1, scenario.rounds + 1):
        trained = t0 + devices.train_s
        rows.local(r, "compute", ids, np.full(n, t0), trained, devices.train_energy_j)
        air_s = devices.upload_bits / wan.rate_bps
        uploaded = trained + (wan.latency_s + air_s)
        _message_rows(rows, r, "wan_up", up_groups, ids, cloud, trained, uploaded,
                      radio_energy_j(wan.tx_power_w, air_s), 0.0)  # fmt: skip
        t1 = float(uploaded.max())
        t2 = t1 + aggregate_s
        rows.local(r, "aggregate", np.array([world.cloud_id]), np.array([t1]), np.array([t2]), 0.0)
        air_s = down_bits / wan.rate_bps
        delivered = t2 + (wan.latency_s + air_s)
        _message_rows(rows, r, "wan_down", down_groups, cloud, ids, np.full(n, t2), delivered,
                      radio_energy_j(wan.tx_power_w, air_s), 0.0)  # fmt: skip
        t0 = float(delivered.max())
        world.close_round(r, [model], t0, rows.take(r))


class _Hierarchical:
    """HierFAVG / edge-only (:func:`sim.protocols.hierarchical`) for every edge at once."""

    def __init__(
        self, world: World, devices: _Devices, uplink: KeyedRadioMedium, downlink: KeyedRadioMedium,
        cloud_period: int | None,
    ) -> None:  # fmt: skip
        self.world, self.devices = world, devices
        self.uplink, self.downlink = uplink, downlink
        self.cloud_period = cloud_period
        learner = world.learner
        self.model0 = learner.initial_update()
        self.edge_ids = np.array([e.id for e in world.edges])
        self.device_edge = np.asarray(world.layout.device_edge)
        n_samples = learner.n_samples
        signatures = [tuple((devices.held[d], n_samples[d]) for d in e.devices) for e in world.edges]
        self.kinds: list[tuple[np.ndarray, _EdgeKind]] = [
            (members, _EdgeKind(world, world.edges[int(members[0])].devices, self.model0))
            for members, _ in _groups(signatures)
        ]
        """(edges, bookkeeping) per group of edges whose devices hold the same modules."""
        self.edge_kind = np.zeros(len(world.edges), dtype=np.int64)
        for k, (members, _) in enumerate(self.kinds):
            self.edge_kind[members] = k
        self.aggregate_s = np.array([kind.aggregate_s for _, kind in self.kinds])[self.edge_kind]
        width = max(len(e.devices) for e in world.edges)
        self.edge_devices = np.full((len(world.edges), width), -1, dtype=np.int64)
        for e in world.edges:
            self.edge_devices[e.index, : len(e.devices)] = e.devices
        self.rows = RowLog(world.scheme)

    def run(self) -> None:
        world = self.world
        rounds = world.scenario.rounds
        t0 = np.zeros(len(world.edges))
        for r in range(1, rounds + 1):
            t_edge = self._edge_round(r, t0)
            if self.cloud_period is not None and r % self.cloud_period == 0:
                t_edge = self._cloud_round(r, t_edge, r // self.cloud_period)
            t0 = self._broadcast(r, t_edge)
            order = np.argsort(t0, kind="stable")
            world.close_round(r, [self.kinds[self.edge_kind[e]][1].model for e in order], float(t0.max()),
                              self.rows.take(r))  # fmt: skip

    def _edge_round(self, r: int, t0: np.ndarray) -> np.ndarray:
        """Train, upload over the shared cells, aggregate at the edge; returns the time each edge is done."""
        world, dev, rows = self.world, self.devices, self.rows
        n = len(dev.train_s)
        ids = np.arange(n)
        started = t0[self.device_edge]
        trained = started + dev.train_s
        rows.local(r, "compute", ids, started, trained, dev.train_energy_j)
        bandwidth_hz = world.scenario.uplink.bandwidth_hz
        sent = shared_cell_transfers(self.uplink, bandwidth_hz, self.device_edge, ids, trained, dev.upload_bits)
        tx_j = radio_energy_j(self.uplink.tx_energy_power_w, sent.end_s - sent.start_s)
        groups = [(members, dev.upload_sizes[held]) for members, held in dev.by_held]  # type: ignore[index]
        _message_rows(rows, r, "uplink", groups, ids, self.edge_ids[self.device_edge], sent.start_s, sent.end_s,
                      tx_j, 0.0)  # fmt: skip
        collected = _segment_max(sent.end_s, self.device_edge, len(t0))
        aggregated = collected + self.aggregate_s
        rows.local(r, "aggregate", self.edge_ids, collected, aggregated, 0.0)
        return aggregated

    def _cloud_round(self, r: int, t_edge: np.ndarray, index: int) -> np.ndarray:
        """Backhaul up, cloud aggregation when the last edge is in, backhaul down; returns each edge's time."""
        world, rows = self.world, self.rows
        learner, backhaul = world.learner, world.scenario.backhaul
        ups = [kind.cloud_upload(index) for _, kind in self.kinds]
        up_bits = np.array([8 * sum(n for _, n in sizes) for _, sizes in ups])[self.edge_kind]
        air_s = up_bits / backhaul.rate_bps
        arrived = t_edge + (backhaul.latency_s + air_s)
        cloud = np.full(len(t_edge), world.cloud_id)
        groups = [(members, ups[k][1]) for k, (members, _) in enumerate(self.kinds)]
        _message_rows(rows, r, "backhaul_up", groups, self.edge_ids, cloud, t_edge, arrived,
                      radio_energy_j(backhaul.tx_power_w, air_s), 0.0)  # fmt: skip
        params = sum(len(members) * learner.parameter_count(up.modules) for (members, _), (up, _) in zip(self.kinds, ups))
        t_in = float(arrived.max())
        t_out = t_in + float(compute_time_s(2 * params, world.scenario.compute.server_flops_per_s))
        rows.local(r, "aggregate", np.array([world.cloud_id]), np.array([t_in]), np.array([t_out]), 0.0)
        sent = {k for up, _ in ups for k in up.modules}
        returns = [kind.cloud_return(sent) for _, kind in self.kinds]
        down_bits = np.array([8 * sum(n for _, n in sizes) for sizes in returns])[self.edge_kind]
        air_s = down_bits / backhaul.rate_bps
        returned = t_out + (backhaul.latency_s + air_s)
        groups = [(members, returns[k]) for k, (members, _) in enumerate(self.kinds)]
        _message_rows(rows, r, "backhaul_down", groups, cloud, self.edge_ids, np.full(len(t_edge), t_out), returned,
                      radio_energy_j(backhaul.tx_power_w, air_s), 0.0)  # fmt: skip
        return returned

    def _broadcast(self, r: int, t_edge: np.ndarray) -> np.ndarray:
        """Each edge's multicasts one after another, each at its worst receiver's rate; returns the end times."""
        medium, fading = self.downlink, self.downlink.fading
        bandwidth_hz = self.world.scenario.downlink.bandwidth_hz
        t = t_edge.copy()
        for g in range(max(len(kind.multicasts) for _, kind in self.kinds)):
            batch = [
                (members, self.edge_devices[members][:, kind.multicasts[g][0]], kind.multicasts[g][1])
                for members, kind in self.kinds
                if len(kind.multicasts) > g
            ]
            edges = np.concatenate([members for members, _, _ in batch])
            counts = np.concatenate([np.full(len(members), rx.shape[1]) for members, rx, _ in batch])
            links = np.concatenate([rx.ravel() for _, rx, _ in batch])
            bits = np.concatenate([np.full(len(m), 8 * sum(n for _, n in sizes)) for m, _, sizes in batch])
            first = np.cumsum(counts) - counts
            start = t[edges]
            if fading.coherence_s is None:
                epochs = fading.next_transfer_epochs(links)
            else:
                epochs = fading.block_indices(np.repeat(start, counts))
            rate = np.minimum.reduceat(medium.rates_bps(medium.gains_at(links, epochs), bandwidth_hz), first)
            if not (rate > 0).all():
                bad = int(np.flatnonzero(~(rate > 0))[0])
                receivers = links[first[bad]:first[bad] + counts[bad]].tolist()
                raise OutageError(f"downlink broadcast to links {receivers} has rate 0 bit/s")
            end = start + bits / rate
            tx_j = radio_energy_j(medium.tx_energy_power_w, end - start)
            rx_j = radio_energy_j(medium.rx_power_w, end - start)
            item_edges = np.cumsum([0] + [len(m) for m, _, _ in batch])
            for items, sizes in _groups([sizes for _, _, sizes in batch]):
                picked = np.concatenate([np.arange(item_edges[i], item_edges[i + 1]) for i in items])
                rx = np.concatenate([batch[i][1].ravel() for i in items])
                self.rows.messages(r, "downlink", self.edge_ids[edges[picked]], rx, counts[picked], sizes,  # type: ignore[arg-type]
                                   start[picked], end[picked], tx_j[picked], rx_j[picked])  # fmt: skip
            t[edges] = end
        return t


class _EdgeKind:
    """Module bookkeeping of an edge with the given devices (the same for every edge whose devices hold the same)."""

    def __init__(self, world: World, devices: tuple[int, ...], model0: Update) -> None:
        self.world = world
        learner = world.learner
        self.model0 = model0
        updates = [learner.train(d, model0) for d in devices]
        self.model = learner.complete(learner.aggregate(updates, base=model0), model0)
        """The edge's model after every round (the same module weights each round)."""
        params = sum(learner.parameter_count(u.modules) for u in updates)
        self.aggregate_s = float(compute_time_s(2 * params, world.scenario.compute.server_flops_per_s))
        self.aggregated = [k for k, w in self.model.weights.items() if w > 0]
        self.holds = {k for d in devices for k in learner.held(d)}
        position = {d: i for i, d in enumerate(devices)}
        self.multicasts = [
            (np.array([position[d] for d in receivers]), tuple(world.message_sizes(part)))
            for receivers, part in world.multicast_groups(list(devices), self.model)
        ]
        """(receiver positions among the edge's devices, sizes) of each downlink multicast, in sending order."""

    def cloud_upload(self, index: int) -> tuple[Update, Sizes]:
        """What the edge sends the cloud at its ``index``-th cloud round, and its sizes."""
        learner = self.world.learner
        up = learner.restrict(self.model, learner.plan.to_cloud(self.aggregated, index))
        return up, tuple(self.world.message_sizes(up))

    def cloud_return(self, sent: set[str]) -> Sizes:
        """Sizes of the global modules the cloud returns: those sent by some edge and held here.

        The cloud's model always carries every trainable module, as the initial model does.
        """
        return tuple(self.world.message_sizes(self.world.learner.restrict(self.model0, sent & self.holds)))
