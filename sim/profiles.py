"""Who holds what: device profiles (modalities, tasks) and the module plan (held, trained, shared per tier).

A device's *profile* is the modalities it senses and the tasks it runs, from
the scenario's ``[heterogeneity]`` section. Its *held modules* are the encoders
of its modalities, the prompts and heads of its tasks and every shared module
(LoRA, adapters, MoE), minus the frozen ones (``[[aggregation.rules]]`` with
``trainable = false``): exactly what it trains and sends. Servers aggregate a
module over the children that hold it; a module's rule says whether it goes on
to the cloud (``tier``) and how often (``cloud_every``).

    >>> from sim.scenario import load_scenario
    >>> s = load_scenario("small", ["heterogeneity.device_modalities=[['image'],['text','sensor'],['image'],"
    ...                             "['image'],['image'],['image']]"])
    >>> profiles = device_profiles(s, np.array([0, 0, 0, 1, 1, 1]), np.random.default_rng(0))
    >>> profiles[1]
    DeviceProfile(modalities=('text', 'sensor'), tasks=('shape', 'vqa', 'activity'))
"""

from __future__ import annotations

import bisect
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sim.scenario import ModuleRule, Scenario

HEADER_MODULE = "header"
"""Module name of a message's header row in the event log."""
PAYLOAD_MODULE = "model"
"""Module name of a fixed-size payload (``network.payload_bytes``), which has no module structure."""


@dataclass(frozen=True)
class DeviceProfile:
    """The modalities a device senses and the tasks it runs (in the model's order)."""

    modalities: tuple[str, ...]
    tasks: tuple[str, ...]


def device_profiles(scenario: Scenario, device_edge: np.ndarray, rng: np.random.Generator) -> list[DeviceProfile]:
    """One profile per device from ``[heterogeneity]``: explicit lists, else seeded missing-modality draws.

    A device missing every modality by the draw keeps one, chosen uniformly, so each device has data.
    """
    het, spec = scenario.heterogeneity, scenario.model
    n = len(device_edge)
    if het.device_modalities is not None:
        modalities = [set(m) for m in het.device_modalities]
    else:
        p_missing = np.array([het.missing_modality_prob.get(m, 0.0) for m in spec.modalities])
        keep = rng.random((n, len(spec.modalities))) >= p_missing
        fallback = rng.integers(0, len(spec.modalities), n)
        empty = np.flatnonzero(~keep.any(axis=1))
        keep[empty, fallback[empty]] = True
        modalities = [{m for m, k in zip(spec.modalities, row) if k} for row in keep]
    if het.device_tasks is not None:
        tasks = [set(t) for t in het.device_tasks]
    elif het.tasks_by_edge is not None:
        tasks = [set(het.tasks_by_edge[int(j) % len(het.tasks_by_edge)]) for j in device_edge]
    else:
        tasks = [set(spec.tasks)] * n
    return [
        DeviceProfile(tuple(m for m in spec.modalities if m in mods), tuple(t for t in spec.tasks if t in ts))
        for mods, ts in zip(modalities, tasks)
    ]


@dataclass(frozen=True)
class ProfileTimeline:
    """A device's profiles over the rounds: ``profiles[i]`` holds from round ``starts[i]`` on (``starts[0]`` = 1).

    Profiles only grow (``[[heterogeneity.task_arrivals]]``, ``[[heterogeneity.modality_arrivals]]``).

        >>> t = ProfileTimeline((1, 3), (DeviceProfile(("image",), ("shape",)), DeviceProfile(("image",), ("shape", "vqa"))))
        >>> t.at(2).tasks, t.at(3).tasks, t.at(99).tasks
        (('shape',), ('shape', 'vqa'), ('shape', 'vqa'))
    """

    starts: tuple[int, ...]
    profiles: tuple[DeviceProfile, ...]

    def step(self, r: int) -> int:
        """Index of the profile in round ``r`` (round 0 and before: the first)."""
        return max(bisect.bisect_right(self.starts, r) - 1, 0)

    def at(self, r: int) -> DeviceProfile:
        """The profile in round ``r``."""
        return self.profiles[self.step(r)]


def profile_timelines(scenario: Scenario, profiles: Sequence[DeviceProfile]) -> list[ProfileTimeline]:
    """Each device's profiles over the rounds: ``profiles`` (round 1) plus the arrivals, in the model's order."""
    het, spec = scenario.heterogeneity, scenario.model
    added: dict[tuple[int, int], tuple[set[str], set[str]]] = {}
    for a in het.modality_arrivals:
        added.setdefault((a.device, a.round), (set(), set()))[0].add(a.modality)
    for t in het.task_arrivals:
        added.setdefault((t.device, t.round), (set(), set()))[1].add(t.task)
    timelines = []
    for device, first in enumerate(profiles):
        starts, steps = [1], [first]
        for r in sorted(r for d, r in added if d == device):
            modalities, tasks = added[device, r]
            mods, ts = set(steps[-1].modalities) | modalities, set(steps[-1].tasks) | tasks
            profile = DeviceProfile(tuple(m for m in spec.modalities if m in mods), tuple(t for t in spec.tasks if t in ts))
            if profile == steps[-1]:
                continue
            if r <= 1:
                steps[-1] = profile
            else:
                starts.append(r)
                steps.append(profile)
        timelines.append(ProfileTimeline(tuple(starts), tuple(steps)))
    return timelines


class ModulePlan:
    """The module rules applied to the model's module keys.

    Args:
        keys: every trainable module key of the model, in registry order.
        rules: ``[[aggregation.rules]]``; the first rule whose pattern matches a key applies,
            else the default (trainable, cloud tier, every cloud round).
    """

    def __init__(self, keys: Sequence[str], rules: Sequence[ModuleRule]) -> None:
        self.keys = tuple(keys)
        default = ModuleRule(match="*")
        unused = [r.match for r in rules if not any(fnmatch.fnmatchcase(k, r.match) for k in self.keys)]
        if unused:
            raise ValueError(f"aggregation.rules: pattern(s) {unused} match no module; modules are {list(self.keys)}")
        self._rule = {k: next((r for r in rules if fnmatch.fnmatchcase(k, r.match)), default) for k in self.keys}
        self.trainable = frozenset(k for k in self.keys if self._rule[k].trainable)

    def ordered(self, modules: Iterable[str]) -> tuple[str, ...]:
        """``modules`` in registry order."""
        chosen = set(modules)
        return tuple(k for k in self.keys if k in chosen)

    def to_cloud(self, modules: Iterable[str], cloud_round_index: int) -> tuple[str, ...]:
        """The modules of ``modules`` that go to the cloud at its ``cloud_round_index``-th round (1-based)."""
        return self.ordered(
            k for k in modules
            if self._rule[k].tier == "cloud" and cloud_round_index % self._rule[k].cloud_every == 0
        )  # fmt: skip
