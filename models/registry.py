"""Module registry: the trainable parameters grouped into the modules that are trained, sent and aggregated.

A module key names one unit of the modular M3T model (:func:`module_key`):

==================  ==================================================  ==============
key                 parameters (``base_model.model.`` prefix dropped)   held by
==================  ==================================================  ==============
encoder/<m>         ``encoders.<m>.*`` (not a pretrained backbone)      devices with m
prompt/<t>          ``prompts.<t>``                                     devices with t
head/<t>            ``heads.<t>.*``                                     devices with t
lora/layer<i>       ``fusion.blocks.<i>.*.lora_{A,B}.*``                every device
adapter/layer<i>    ``fusion.adapters.<i>.*`` (bottleneck adapter)      every device
moe/gate            ``moe.gate.*``                                      every device
moe/expert/<j>      ``moe.experts.<j>.*``                               every device
==================  ==================================================  ==============

    >>> module_key("base_model.model.fusion.blocks.1.q.lora_A.default.weight")
    'lora/layer1'
    >>> module_key("heads.vqa.bias"), module_key("moe.experts.3.w_in.weight")
    ('head/vqa', 'moe/expert/3')
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import nn

from models.data import ALL_TASKS, MODALITIES

PEFT_PREFIX = "base_model.model."
"""Prefix peft puts before the wrapped model's parameter names."""
SHARED_PREFIXES = ("lora/", "adapter/", "moe/")
"""Module keys every holder has, whatever its modalities and tasks."""

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"encoders\.text\.backbone\..*"), ""),  # the frozen pretrained backbone: never trained
    (re.compile(r"encoders\.(\w+)\..+"), "encoder/{0}"),
    (re.compile(r"prompts\.(\w+)"), "prompt/{0}"),
    (re.compile(r"heads\.(\w+)\..+"), "head/{0}"),
    (re.compile(r"fusion\.blocks\.(\d+)\..+\.lora_[AB]\..+"), "lora/layer{0}"),
    (re.compile(r"fusion\.adapters\.(\d+)\..+"), "adapter/layer{0}"),
    (re.compile(r"moe\.gate\..+"), "moe/gate"),
    (re.compile(r"moe\.experts\.(\d+)\..+"), "moe/expert/{0}"),
)


def module_key(param_name: str) -> str:
    """The module a trainable parameter belongs to (table in the module docstring).

    Raises:
        ValueError: ``param_name`` is not a trainable parameter's name (frozen backbone, pretrained text
            backbone, anything else).
    """
    name = param_name.removeprefix(PEFT_PREFIX)
    for pattern, key in _RULES:
        match = pattern.fullmatch(name)
        if match:
            if key:
                return key.format(*match.groups())
            break
    raise ValueError(f"{param_name!r} is not a trainable parameter of the M3T model")


class ModuleRegistry:
    """Trainable modules of a model: their keys, parameter names and byte sizes.

    Built from the parameters with ``requires_grad``, in module order; keys
    come in the order of their first parameter.

    >>> from models.net import ModelConfig, build_model
    >>> reg = ModuleRegistry(build_model(ModelConfig(moe_experts=2, moe_top_k=1), seed=0))
    >>> reg.keys  # doctest: +NORMALIZE_WHITESPACE
    ('encoder/image', 'encoder/text', 'encoder/sensor', 'prompt/activity', 'prompt/shape', 'prompt/vqa',
     'lora/layer0', 'lora/layer1', 'moe/gate', 'moe/expert/0', 'moe/expert/1', 'head/shape', 'head/vqa',
     'head/activity')
    >>> sorted(reg.held(["sensor"], ["activity"]))
    ['encoder/sensor', 'head/activity', 'lora/layer0', 'lora/layer1', 'moe/expert/0', 'moe/expert/1', 'moe/gate', 'prompt/activity']
    """

    def __init__(self, model: nn.Module) -> None:
        params: dict[str, list[str]] = {}
        self._nbytes: dict[str, int] = {}
        self._key_of: dict[str, str] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                key = module_key(name)
                params.setdefault(key, []).append(name)
                self._nbytes[key] = self._nbytes.get(key, 0) + p.numel() * p.element_size()
                self._key_of[name] = key
        self._params = {key: tuple(names) for key, names in params.items()}
        self.keys: tuple[str, ...] = tuple(self._params)
        self.modalities = tuple(k.removeprefix("encoder/") for k in self.keys if k.startswith("encoder/"))
        """Modalities with an encoder."""
        self.tasks = tuple(k.removeprefix("head/") for k in self.keys if k.startswith("head/"))
        """Tasks with a head."""

    def _check(self, modules: Iterable[str]) -> list[str]:
        modules = list(modules)
        unknown = sorted(set(modules) - set(self._params))
        if unknown:
            raise ValueError(f"unknown modules {unknown}; the model has {list(self.keys)}")
        return modules

    def params(self, key: str) -> tuple[str, ...]:
        """Parameter names of module ``key`` (ValueError for an unknown key)."""
        self._check([key])
        return self._params[key]

    def key_of(self, param_name: str) -> str:
        """The module of trainable parameter ``param_name`` (ValueError if the model has no such parameter)."""
        if param_name not in self._key_of:
            raise ValueError(f"{param_name!r} is not a trainable parameter of this model")
        return self._key_of[param_name]

    def nbytes(self, key: str) -> int:
        """Bytes of the module's tensors: Σ numel × element size over its parameters."""
        self._check([key])
        return self._nbytes[key]

    def held(self, modalities: Iterable[str], tasks: Iterable[str]) -> frozenset[str]:
        """Modules of a holder with these modalities and tasks: their encoders, prompts and heads, and every
        shared module (lora/*, adapter/*, moe/*).

        A known name the model has no module for (a modality without an
        encoder, a task without a head) adds nothing.

        Raises:
            ValueError: names that are neither a known modality/task nor one of the model's (naming them).
        """
        modalities, tasks = list(modalities), list(tasks)
        bad_m = sorted(set(modalities) - set(MODALITIES) - set(self.modalities))
        bad_t = sorted(set(tasks) - set(ALL_TASKS) - set(self.tasks))
        if bad_m or bad_t:
            raise ValueError(f"unknown modalities {bad_m} / tasks {bad_t}; known: {list(MODALITIES)} / {list(ALL_TASKS)}")
        wanted = {f"encoder/{m}" for m in modalities} | {f"{kind}/{t}" for t in tasks for kind in ("prompt", "head")}
        return frozenset(k for k in self.keys if k in wanted or k.startswith(SHARED_PREFIXES))

    def select(self, state: dict[str, torch.Tensor], modules: Iterable[str]) -> dict[str, torch.Tensor]:
        """The entries of ``state`` that belong to ``modules`` (in ``state``'s order; ValueError for unknown keys)."""
        keep = set(self._check(modules))
        return {name: t for name, t in state.items() if self._key_of.get(name) in keep}

    def modules_of(self, state: dict[str, torch.Tensor]) -> tuple[str, ...]:
        """Modules with at least one parameter in ``state``, in registry order."""
        present = {self._key_of.get(name) for name in state}
        return tuple(k for k in self.keys if k in present)
