"""What drives a run besides its seeds — device motion, churn, recorded channel gains — generated or from a file.

- :func:`build_inputs` draws the scenario's ``[mobility]`` and
  ``[availability]`` models (:mod:`traces.generators`) from their own seed
  stream: ``SeedSequence(seed, spawn_key=(INPUTS_SPAWN_KEY,))``, a child of the
  run's root seed that the runner's sequential ``root.spawn(n)`` never reaches,
  so adding it leaves every existing stream (layout, speeds, learner, radio)
  and thus every existing result unchanged. ``static`` / ``always`` draw
  nothing and give exactly today's world.
- :func:`load_trace_inputs` takes positions, availability and channel gains
  from a trace file (``hffm run --trace``): each trace the file holds replaces
  the scenario's model; what it lacks is generated as above.
- :func:`placed_layout` puts devices where a trace file says they are at t = 0.

Example::

    >>> from sim.runner import Setup
    >>> from sim.scenario import load_scenario
    >>> s = load_scenario("small", ["training.enabled=false", "mobility.model=random_waypoint"])
    >>> inputs = build_inputs(s, Setup.from_scenario(s).layout)
    >>> inputs.positions.xy_m.shape, inputs.availability is None
    ((3601, 6, 2), True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from channels import distance_m
from sim.radio import ChannelReplay, ReplayMismatchError
from sim.scenario import MobilityConfig, Scenario, TopologyConfig
from sim.world import Layout, WorldInputs
from traces import TABLES, AvailabilitySchedule, ChannelTrace, MobilityTrace, read_trace
from traces.generators import Bounds, gauss_markov, on_off_availability, random_waypoint

INPUTS_SPAWN_KEY = 0x74726163
"""Spawn key ("trac") of the inputs' seed stream under the run's root seed."""

CELL_MEDIA = ("uplink", "downlink")
"""Names of the cell media in ``World.channel_samples`` and ``WorldInputs.channel_replay``."""


class TraceMismatchError(ReplayMismatchError):
    """An input trace does not fit the scenario (node count, scheme names, node ids)."""


@dataclass(frozen=True, eq=False)
class RunInputs:
    """The inputs shared by every scheme of a run.

    Attributes:
        positions: device positions over time (``None``: static layout).
        availability: device on/off schedule (``None``: always on).
        channel: recorded gains to replay, per scheme and medium (``None``: the channel models).
    """

    positions: MobilityTrace | None = None
    availability: AvailabilitySchedule | None = None
    channel: ChannelTrace | None = None

    def world_inputs(self, scheme: str) -> WorldInputs:
        """The world inputs of one scheme: fresh replay cursors over that scheme's recorded gains.

        With a channel trace every medium replays (a medium with no samples of
        ``scheme`` fails at its first draw), so no gain silently comes from a model.
        """
        replay = {}
        if self.channel is not None:
            for medium in dict.fromkeys([*CELL_MEDIA, *self.channel.media]):
                replay[medium] = ChannelReplay(*self.channel.samples(scheme, medium))
        return WorldInputs(positions=self.positions, availability=self.availability, channel_replay=replay)

    def tables(self) -> dict[str, np.ndarray]:
        """Rows of the ``/mobility`` and ``/availability`` tables a run records.

        ``/channel`` is recorded per scheme from what the world hands out (:func:`channel_rows`).
        """
        return {
            "mobility": self.positions.rows() if self.positions is not None else np.zeros(0, TABLES["mobility"]),
            "availability": (
                self.availability.rows() if self.availability is not None else np.zeros(0, TABLES["availability"])
            ),
        }


def inputs_seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    """The inputs' own stream under root ``seed`` (an int or the root SeedSequence)."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, INPUTS_SPAWN_KEY))


def mobility_bounds_m(config: MobilityConfig, topology: TopologyConfig, layout: Layout) -> Bounds:
    """``config.bounds_m``, or the smallest rectangle holding the ``topology.area_m`` square and every node."""
    if config.bounds_m is not None:
        return config.bounds_m
    points = np.vstack([[[0.0, 0.0], [topology.area_m, topology.area_m]], layout.edge_xy, layout.device_xy])
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def generated_positions(
    scenario: Scenario, layout: Layout, rng: np.random.Generator
) -> MobilityTrace | None:
    """The ``[mobility]`` model's trace starting from the layout (``None`` when static)."""
    m = scenario.mobility
    if m.model == "static":
        return None
    bounds = mobility_bounds_m(m, scenario.topology, layout)
    if m.model == "random_waypoint":
        return random_waypoint(rng, layout.device_xy, bounds, m.speed_m_s, m.pause_s, m.sample_interval_s, m.duration_s)
    return gauss_markov(
        rng, layout.device_xy, bounds, m.alpha, m.mean_speed_m_s, m.speed_std_m_s, m.direction_std_rad,
        m.sample_interval_s, m.duration_s,
    )  # fmt: skip


def generated_availability(scenario: Scenario, n_devices: int, rng: np.random.Generator) -> AvailabilitySchedule | None:
    """The ``[availability]`` model's schedule (``None`` when always on)."""
    a = scenario.availability
    if a.model == "always":
        return None
    return on_off_availability(rng, n_devices, a.mean_on_s, a.mean_off_s, a.duration_s)


def build_inputs(scenario: Scenario, layout: Layout, seed: int | np.random.SeedSequence | None = None) -> RunInputs:
    """Positions and availability drawn from the scenario's models (seed: the scenario's unless given)."""
    mobility_seq, availability_seq = inputs_seed_sequence(scenario.seed if seed is None else seed).spawn(2)
    return RunInputs(
        positions=generated_positions(scenario, layout, np.random.default_rng(mobility_seq)),
        availability=generated_availability(scenario, layout.n_devices, np.random.default_rng(availability_seq)),
    )


def load_trace_inputs(path: str | os.PathLike[str], scenario: Scenario, layout: Layout) -> RunInputs:
    """Inputs from the trace file at ``path``; traces it lacks come from the scenario's models.

    D2D contacts follow from the positions (``channels.contacts``), so a
    ``/contacts`` table beside ``/mobility`` is not needed; a trace of contacts
    alone (ONE) cannot drive a run.

    Raises:
        traces.RunFileError: the file is unreadable or its traces inconsistent.
        TraceMismatchError: a trace does not fit the scenario (node count, node ids,
            scheme names) or holds contacts without positions.
    """
    traces = read_trace(path)
    n_devices = layout.n_devices
    if len(traces.contacts) and traces.mobility is None:
        raise TraceMismatchError(
            f"trace {path} has contacts but no positions; the simulator derives D2D contacts from positions, "
            "so a contact trace alone cannot drive a run"
        )
    if traces.mobility is not None and traces.mobility.n_nodes != n_devices:
        raise TraceMismatchError(
            f"trace {path} moves {traces.mobility.n_nodes} nodes; the scenario has {n_devices} devices"
        )
    if traces.availability is not None and traces.availability.max_node >= n_devices:
        raise TraceMismatchError(
            f"trace {path} gives availability of node {traces.availability.max_node}; "
            f"the scenario's devices are 0..{n_devices - 1}"
        )
    if traces.channel is not None:
        missing = [s.name for s in scenario.schemes if s.name not in traces.channel.schemes]
        if missing:
            raise TraceMismatchError(
                f"trace {path} has the channel of schemes {', '.join(traces.channel.schemes)}, "
                f"not of {', '.join(missing)}"
            )
    generated = build_inputs(scenario, layout) if traces.mobility is None or traces.availability is None else None
    return RunInputs(
        positions=traces.mobility if traces.mobility is not None else generated.positions,
        availability=traces.availability if traces.availability is not None else generated.availability,
        channel=traces.channel,
    )


def placed_layout(layout: Layout, positions: MobilityTrace | None, topology: TopologyConfig) -> Layout:
    """The layout with devices where ``positions`` has them at t = 0.

    Unchanged when there is no trace or the trace starts at the layout (a
    generated or replayed trace); otherwise devices attach to
    ``topology.device_edge`` if given, else to the nearest edge at t = 0.
    """
    if positions is None:
        return layout
    start = positions.at(0.0)
    if np.array_equal(start, layout.device_xy):
        return layout
    if topology.device_edge is not None:
        device_edge = np.asarray(topology.device_edge, dtype=int)
    else:
        device_edge = np.argmin(distance_m(start[:, None, :], layout.edge_xy[None, :, :]), axis=1)
    return Layout(layout.edge_xy, start.copy(), device_edge)


def link_rows(layout: Layout) -> np.ndarray:
    """``/links`` rows of the cell media: uplink link i is device i → its edge, downlink link i its edge → device i."""
    n_dev = layout.n_devices
    devices = np.arange(n_dev)
    edges = n_dev + layout.device_edge
    dist = distance_m(layout.device_xy, layout.edge_xy[layout.device_edge])
    rows = np.zeros(2 * n_dev, TABLES["links"])
    rows["medium"] = ["uplink"] * n_dev + ["downlink"] * n_dev
    rows["link"] = np.tile(devices, 2)
    rows["a"] = np.concatenate([devices, edges])
    rows["b"] = np.concatenate([edges, devices])
    rows["distance_m"] = np.tile(dist, 2)
    return rows


def channel_rows(scheme: str, samples: list[tuple[float, str, np.ndarray, np.ndarray]]) -> np.ndarray:
    """``/channel`` rows of the gains one scheme's world handed out (``World.channel_samples``)."""
    return ChannelTrace.from_samples(scheme, samples).rows()
