"""Host milliseconds per module-wise aggregation call (``models.aggregate_modules``) in a paper-like case.

    .venv/bin/python benchmarks/aggregation.py [--updates 40] [--repeats 20] [--preset paper] [--seed 0]

The preset's model (``sim.learner.model_config``, ``models.net.build_model``)
and ``--updates`` holders with heterogeneous holdings: each holds the
encoders, prompts and heads of a random non-empty set of modalities and tasks
(``ModuleRegistry.held``) plus every shared module, with random tensors and
weights like ``models.train.TrainResult.module_weights`` (its sample count,
and for ``moe/expert/<j>`` the sample count times a random routing share).
The base is the model's own state (it fills in modules no holder sent). Both
LoRA modes are timed, one thread, after a warm-up call; the median of
``--repeats`` calls is reported. Host time is a performance figure only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from models.aggregate import LORA_MODES, ModuleUpdate, aggregate_modules
from models.net import build_model, trainable_state
from models.registry import ModuleRegistry
from sim.learner import model_config
from sim.scenario import load_scenario


def random_subset(rng: np.random.Generator, names: tuple[str, ...]) -> list[str]:
    """A uniformly random non-empty subset of ``names``."""
    while True:
        chosen = [n for n in names if rng.random() < 0.5]
        if chosen:
            return chosen


def holder_updates(model: torch.nn.Module, registry: ModuleRegistry, n: int, seed: int) -> list[ModuleUpdate]:
    """``n`` holders of random modalities and tasks, random tensors and sample-count weights (module docstring)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    state = trainable_state(model)
    updates = []
    for _ in range(n):
        held = registry.held(random_subset(rng, registry.modalities), random_subset(rng, registry.tasks))
        samples = float(rng.integers(50, 200))
        experts = [k for k in registry.keys if k.startswith("moe/expert/")]
        shares = rng.dirichlet(np.ones(len(experts))) if experts else []
        weights = {k: samples for k in registry.keys if k in held}
        weights.update({k: samples * float(s) for k, s in zip(experts, shares, strict=True)})
        tensors = {name: torch.randn(t.shape, generator=gen) for name, t in registry.select(state, held).items()}
        updates.append(ModuleUpdate(tensors, weights))
    return updates


def ms_per_call(updates: list[ModuleUpdate], registry: ModuleRegistry, base: dict, lora: str, repeats: int) -> float:
    """Median host milliseconds of one ``aggregate_modules`` call (after one warm-up call)."""
    aggregate_modules(updates, registry, base=base, lora=lora)  # type: ignore[arg-type]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        aggregate_modules(updates, registry, base=base, lora=lora)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=40, help="holders per aggregation call")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per LoRA mode")
    parser.add_argument("--preset", default="paper", help="scenario preset or TOML file for the model")
    parser.add_argument("--seed", type=int, default=0, help="seed of holdings, tensors and weights")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = build_model(model_config(load_scenario(args.preset)), seed=args.seed)
    registry = ModuleRegistry(model)
    updates = holder_updates(model, registry, args.updates, args.seed)
    base = trainable_state(model)
    numel = sum(t.numel() for u in updates for t in u.state.values())
    print(f"{args.updates} updates, {len(registry.keys)} modules, {numel} parameters sent in all")
    for lora in LORA_MODES:
        print(f"lora={lora}: {ms_per_call(updates, registry, base, lora, args.repeats):.1f} ms per call")


if __name__ == "__main__":
    main()
