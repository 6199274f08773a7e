"""Run a scenario: build the layout and learner once, run each scheme on a fresh world, record.

Randomness: one root ``SeedSequence(scenario.seed)`` spawns independent streams
for the layout, device speeds, the learner (data, partition, model init, per
device sampling) and the radio media. Every scheme starts from the same
streams, so schemes differ only by protocol.

Example::

    >>> from sim.scenario import load_scenario
    >>> s = load_scenario("small", ["rounds=1", "training.enabled=false"])
    >>> result = run_scenario(s, out=None, progress=False)
    >>> sorted(result.rounds_by_scheme)
    ['edge-only', 'hier-E2', 'star']
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm import tqdm

from channels import clustered_layout
from sim.checkpoint import Checkpoint, Checkpointer, checkpoint_path, decode, restore_world
from sim.fastnet import check_supported, run_aggregated
from sim.inputs import build_inputs, channel_rows, link_rows, load_trace_inputs, placed_layout
from sim.learner import NetworkOnlyLearner, TorchLearner, make_learner
from sim.metrics_queue import MetricsQueue
from sim.profiles import device_profiles
from sim.protocols import scheme_process
from sim.scenario import Scenario, SchemeConfig, TopologyConfig
from sim.world import Layout, Sink, World, WorldInputs
from traces import TABLES, RunWriter
from traces.schema import NODE_KINDS

PROFILE_STREAM = 1000
"""Spawn key of the device-profile stream: a child of the root seed that no ``root.spawn`` call reaches."""

VERSIONED_PACKAGES = ("hffm", "simpy", "torch", "peft", "numpy", "scipy", "h5py", "pydantic", "networkx")


def build_layout(topology: TopologyConfig, rng: np.random.Generator) -> Layout:
    """Explicit positions (devices on their given or nearest edge) or the paper's clustered layout."""
    if topology.edge_positions_m is not None and topology.device_positions_m is not None:
        edge_xy = np.asarray(topology.edge_positions_m, dtype=float)
        device_xy = np.asarray(topology.device_positions_m, dtype=float)
        if topology.device_edge is not None:
            device_edge = np.asarray(topology.device_edge, dtype=int)
        else:
            device_edge = np.argmin(np.linalg.norm(device_xy[:, None] - edge_xy[None], axis=-1), axis=1)
        return Layout(edge_xy, device_xy, device_edge)
    edge_xy, device_xy, device_edge = clustered_layout(
        rng,
        topology.n_edges,
        topology.devices_per_edge,
        topology.area_m,
        topology.min_edge_separation_m,
        topology.cluster_center_radius_m,
        topology.device_radius_m,
        max_tries=max(10_000, 100 * topology.n_edges),  # same draws; only large layouts get more candidates
    )
    return Layout(edge_xy, device_xy, device_edge)


def package_versions() -> dict[str, str]:
    """Versions of hffm and its main dependencies, for ``/meta``."""
    versions = {"python": sys.version.split()[0]}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass
class RunResult:
    """In-memory copy of what a run wrote, per table (for callers that do not read the file)."""

    tables: dict[str, list[np.ndarray]] = field(default_factory=lambda: {name: [] for name in TABLES})

    def add(self, table: str, rows: np.ndarray) -> None:
        self.tables[table].append(rows)

    def table(self, name: str) -> np.ndarray:
        parts = self.tables[name]
        return np.concatenate(parts) if parts else np.zeros(0, TABLES[name])

    @property
    def rounds_by_scheme(self) -> dict[str, np.ndarray]:
        rounds = self.table("rounds")
        return {s.decode(): rounds[rounds["scheme"] == s] for s in dict.fromkeys(rounds["scheme"])}


INTERRUPTED_DRAIN_S = 10.0
"""How long a failed or interrupted run waits for its pending metrics before closing its file."""


@dataclass
class Setup:
    """What every scheme of a run shares: layout, device speeds, learner and radio seeds."""

    scenario: Scenario
    layout: Layout
    device_flops_per_s: np.ndarray
    learner: NetworkOnlyLearner
    radio_seeds: tuple[np.random.SeedSequence, np.random.SeedSequence]

    @classmethod
    def from_scenario(cls, scenario: Scenario, trainer: Callable[..., TorchLearner] = TorchLearner) -> Setup:
        """Draw the layout, speeds, data and model from the scenario's root seed (``trainer``: see make_learner)."""
        root = np.random.SeedSequence(scenario.seed)
        layout_seq, speed_seq, learner_seq, radio_seq = root.spawn(4)
        up_seq, down_seq = radio_seq.spawn(2)
        layout = build_layout(scenario.topology, np.random.default_rng(layout_seq))
        low, high = scenario.compute.device_flops_per_s
        flops_per_s = np.random.default_rng(speed_seq).uniform(low, high, layout.n_devices)
        profile_seq = np.random.SeedSequence(scenario.seed, spawn_key=(PROFILE_STREAM,))
        profiles = device_profiles(scenario, layout.device_edge, np.random.default_rng(profile_seq))
        learner = make_learner(scenario, learner_seq, profiles, trainer)
        return cls(scenario, layout, flops_per_s, learner, (up_seq, down_seq))

    def nodes_table(self) -> np.ndarray:
        """``/nodes`` rows: devices, then edges, then the cloud."""
        layout = self.layout
        n_dev, n_edge = layout.n_devices, layout.n_edges
        rows = np.zeros(n_dev + n_edge + 1, TABLES["nodes"])
        rows["id"] = np.arange(len(rows))
        rows["kind"][:n_dev] = NODE_KINDS.index("device")
        rows["kind"][n_dev:-1] = NODE_KINDS.index("edge")
        rows["kind"][-1] = NODE_KINDS.index("cloud")
        rows["x_m"][:n_dev], rows["y_m"][:n_dev] = layout.device_xy.T
        rows["x_m"][n_dev:-1], rows["y_m"][n_dev:-1] = layout.edge_xy.T
        rows["edge"] = -1
        rows["edge"][:n_dev] = n_dev + layout.device_edge
        rows["flops_per_s"][:n_dev] = self.device_flops_per_s
        rows["n_samples"][:n_dev] = self.learner.n_samples
        return rows

    def simulate(
        self, scheme: SchemeConfig, sink: Sink, progress: bool = False, inputs: WorldInputs = WorldInputs(),
        barrier: Callable[[World], Callable[[int, dict], None]] | None = None, resume: dict | None = None,
        metrics: MetricsQueue | None = None,
    ) -> World:  # fmt: skip
        """Run one scheme on a fresh world (same seeds as every other scheme); return the world.

        ``barrier(world)``: the world's checkpoint hook (:mod:`sim.checkpoint`); ``resume``: a
        checkpoint's scheme state to continue from (the rounds after its barrier run).
        ``metrics``: a queue shared with other schemes, drained by the caller; without one,
        every metrics row has reached ``sink`` when this returns.
        """
        self.learner.reset()
        radio_rngs = (np.random.default_rng(self.radio_seeds[0]), np.random.default_rng(self.radio_seeds[1]))
        aggregated = self.scenario.network.engine == "aggregated"
        if aggregated:
            check_supported(self.scenario, scheme, inputs, self.layout)
        world = World(
            self.scenario, self.layout, self.device_flops_per_s, self.learner, radio_rngs, scheme.name, sink, inputs,
            metrics,
        )
        if barrier is not None and scheme.d2d == "none":  # the sidelink's state is not checkpointed
            world.on_barrier = barrier(world)
        if resume is not None:
            restore_world(world, resume["world"])
        done = 0 if resume is None else int(resume["round"])
        with tqdm(total=self.scenario.rounds, initial=done, desc=f"{scheme.name:>12}", unit="round",
                  disable=not progress) as bar:  # fmt: skip
            world.on_round_done = lambda _r: bar.update()
            if resume is None:
                world.record_initial_metrics()
            if aggregated:
                run_aggregated(world, scheme, tuple(np.random.default_rng(s) for s in self.radio_seeds))
            else:
                protocol_state = None if resume is None else decode(resume["protocol"])
                world.env.run(until=world.env.process(scheme_process(world, scheme, protocol_state)))
        if metrics is None:
            world.metrics.drain()
        sink("ledger", world.ledger())
        return world


def run_scenario(
    scenario: Scenario,
    out: str | os.PathLike[str] | None,
    force: bool = False,
    progress: bool = True,
    trace: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: Checkpoint | None = None,
    trainer: Callable[..., TorchLearner] = TorchLearner,
) -> RunResult:
    """Run every scheme of ``scenario``; write ``out`` (HDF5) if given; return the tables.

    The output file is created before any work (so a name clash fails fast),
    flushed after every round, and marked complete at the end. Positions,
    availability and channel gains come from the trace file ``trace`` where it
    has them (:func:`sim.inputs.load_trace_inputs`), else from the scenario's
    models; the run records the input traces it used.

    ``checkpoint_every``: save ``out``'s checkpoint (``out.ckpt``) at barriers at
    least that many rounds apart and after every scheme (removed when the run
    completes). ``resume``: continue from that checkpoint instead of starting:
    its rows are written again, finished schemes are not rerun, the scheme in
    progress goes on from its barrier; ``out`` is replaced when the run completes.
    ``trainer``: builds the training learner, e.g. a backend's (:func:`sim.backends.learner_factory`).
    """
    if scenario.network.engine == "aggregated":  # refuse before any file is written
        for scheme in scenario.schemes:
            check_supported(scenario, scheme)
    writer = None
    if out is not None:
        versions = package_versions()
        meta = {
            "scenario": scenario.model_dump(mode="json"),
            "seed": scenario.seed,
            "versions": versions,
            "schemes": [s.name for s in scenario.schemes],
            "hffm_version": versions["hffm"],
        }
        if trace is not None:
            meta["trace"] = str(trace)
        writer = RunWriter(Path(out), meta=meta, force=force)
    result = RunResult()

    def sink(table: str, rows: np.ndarray) -> None:
        result.add(table, rows)
        if writer is not None:
            writer.append(table, rows)
            if table == "rounds":
                writer.flush()

    metrics = MetricsQueue(sink)  # shared by the schemes: one's last evaluations overlap the next one's rounds

    def tables() -> dict[str, np.ndarray]:
        metrics.drain()
        return {name: result.table(name) for name in TABLES}

    checkpointer = None
    every = checkpoint_every or (resume.every if resume is not None else None)
    if out is not None and every:
        checkpointer = Checkpointer(checkpoint_path(out), every, scenario.model_dump(mode="json"),
                                    None if trace is None else str(trace), tables)  # fmt: skip
    try:
        setup = Setup.from_scenario(scenario, trainer)
        if trace is None:
            inputs = build_inputs(scenario, setup.layout)
        else:
            inputs = load_trace_inputs(trace, scenario, setup.layout)
        setup.layout = placed_layout(setup.layout, inputs.positions, scenario.topology)
        if resume is None:
            sink("nodes", setup.nodes_table())
            sink("links", link_rows(setup.layout))
            for table, rows in inputs.tables().items():
                sink(table, rows)
        else:
            for table, rows in resume.tables.items():
                sink(table, rows)
        first = 0 if resume is None else resume.scheme_index
        for index, scheme in enumerate(scenario.schemes[first:], start=first):
            state = resume.scheme_state if resume is not None and index == resume.scheme_index else None
            barrier = None
            if checkpointer is not None:
                resumed_round = 0 if state is None else int(state["round"])
                barrier = functools.partial(checkpointer.barrier_hook, scheme_index=index, resumed_round=resumed_round)
            world = setup.simulate(scheme, sink, progress, inputs.world_inputs(scheme.name), barrier, state, metrics)
            sink("channel", channel_rows(scheme.name, world.channel_samples))
            if checkpointer is not None:
                checkpointer.scheme_done(index)
        metrics.drain()
    except BaseException:
        try:  # the closed rounds' metrics, as with evaluation in line (unless the worker is stuck or failed)
            with contextlib.suppress(Exception):
                metrics.drain(timeout_s=INTERRUPTED_DRAIN_S)
        finally:
            if writer is not None:
                writer.close(complete=False)
        raise
    if writer is not None:
        writer.close(complete=True)
    if checkpointer is not None:
        checkpointer.path.unlink(missing_ok=True)
    return result
