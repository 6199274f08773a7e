"""The module registry: keys, parameter grouping, bytes, holders."""

from __future__ import annotations

import pytest
import torch

from models import ModelConfig, ModuleRegistry, build_model, module_key, state_nbytes, trainable_state

CFG = ModelConfig(adapters=("lora", "bottleneck"), moe_experts=3, moe_top_k=2, tasks=("shape", "vqa", "size"))


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(CFG, seed=0)


@pytest.fixture(scope="module")
def registry(model: torch.nn.Module) -> ModuleRegistry:
    return ModuleRegistry(model)


def test_keys_with_bottleneck_and_moe(registry: ModuleRegistry) -> None:
    assert set(registry.keys) == {
        "encoder/image", "encoder/text", "encoder/sensor",
        "prompt/shape", "prompt/vqa", "prompt/size", "head/shape", "head/vqa", "head/size",
        "lora/layer0", "lora/layer1", "adapter/layer0", "adapter/layer1",
        "moe/gate", "moe/expert/0", "moe/expert/1", "moe/expert/2",
    }  # fmt: skip
    assert len(registry.keys) == len(set(registry.keys))
    assert registry.modalities == ("image", "text", "sensor")
    assert set(registry.tasks) == {"shape", "vqa", "size"}


def test_params_partition_the_trainable_parameters_in_model_order(model, registry: ModuleRegistry) -> None:
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    grouped = [n for k in registry.keys for n in registry.params(k)]
    assert sorted(grouped) == sorted(trainable)
    for key in registry.keys:
        names = registry.params(key)
        assert list(names) == [n for n in trainable if n in names]  # model order within a module
        assert all(module_key(n) == key == registry.key_of(n) for n in names)
    assert registry.params("moe/expert/1") == tuple(
        f"base_model.model.moe.experts.1.{layer}.{p}" for layer in ("w_in", "w_out") for p in ("weight", "bias")
    )
    assert len(registry.params("lora/layer1")) == 2 * len(CFG.lora_targets)  # A and B per target
    assert all("fusion.blocks.1." in n and ".lora_" in n for n in registry.params("lora/layer1"))


def test_nbytes_is_numel_times_element_size(model, registry: ModuleRegistry) -> None:
    params = dict(model.named_parameters())
    for key in registry.keys:
        assert registry.nbytes(key) == sum(params[n].numel() * params[n].element_size() for n in registry.params(key))
    d, m = CFG.d_model, CFG.adapter_dim
    assert registry.nbytes("adapter/layer0") == 4 * (d * m + m + m * d + d)
    assert registry.nbytes("head/size") == 4 * (d + 1)
    assert sum(registry.nbytes(k) for k in registry.keys) == state_nbytes(trainable_state(model))


def test_nbytes_follows_the_dtype() -> None:
    model = build_model(ModelConfig(n_layers=1, moe_experts=0), seed=0).half()
    registry = ModuleRegistry(model)
    assert registry.nbytes("head/vqa") == 2 * (64 * 10 + 10)


def test_held_excludes_encoders_prompts_and_heads_of_absent_modalities_and_tasks(registry: ModuleRegistry) -> None:
    held = registry.held(["image", "text"], ["vqa"])
    shared = {k for k in registry.keys if k.startswith(("lora/", "adapter/", "moe/"))}
    assert held == {"encoder/image", "encoder/text", "prompt/vqa", "head/vqa"} | shared
    assert registry.held([], []) == shared
    assert registry.held(("sensor",), ("activity",)) == {"encoder/sensor"} | shared  # the model has no activity head
    with pytest.raises(ValueError, match="'lidar'"):
        registry.held(["image", "lidar"], ["vqa"])
    with pytest.raises(ValueError, match="'colour'"):
        registry.held(["image"], ["colour"])


def test_select_takes_the_entries_of_the_modules(model, registry: ModuleRegistry) -> None:
    state = trainable_state(model)
    picked = registry.select(state, ["head/vqa", "moe/gate"])
    assert list(picked) == list(registry.params("moe/gate")) + list(registry.params("head/vqa"))  # state order
    assert all(picked[n] is state[n] for n in picked)
    assert registry.select({}, ["head/vqa"]) == {}
    assert registry.modules_of(picked) == ("moe/gate", "head/vqa")
    with pytest.raises(ValueError, match="head/colour"):
        registry.select(state, ["head/colour"])


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("base_model.model.encoders.image.stem.weight", "encoder/image"),
        ("encoders.sensor.pos", "encoder/sensor"),
        ("base_model.model.prompts.vqa", "prompt/vqa"),
        ("heads.size.bias", "head/size"),
        ("base_model.model.fusion.blocks.12.fc2.lora_B.default.weight", "lora/layer12"),
        ("fusion.adapters.3.up.weight", "adapter/layer3"),
        ("moe.gate.bias", "moe/gate"),
        ("moe.experts.10.w_out.weight", "moe/expert/10"),
    ],
)
def test_module_key(name: str, key: str) -> None:
    assert module_key(name) == key


@pytest.mark.parametrize(
    "name",
    [
        "base_model.model.fusion.blocks.0.q.base_layer.weight",  # the frozen backbone
        "fusion.blocks.0.k.weight",
        "fusion.norm.weight",
        "base_model.model.encoders.text.backbone.embeddings.word_embeddings.weight",  # a pretrained backbone
        "prompts",
        "something.else",
    ],
)
def test_module_key_rejects_frozen_and_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a trainable parameter"):
        module_key(name)


def test_registry_of_a_model_without_lora_or_moe() -> None:
    model = build_model(ModelConfig(adapters=("bottleneck",), moe_experts=0, modalities=("sensor",),
                                    tasks=("activity",)), seed=0)  # fmt: skip
    registry = ModuleRegistry(model)
    assert registry.keys == ("encoder/sensor", "prompt/activity", "adapter/layer0", "adapter/layer1", "head/activity")
    assert registry.params("head/activity") == ("heads.activity.weight", "heads.activity.bias")
    with pytest.raises(ValueError, match="unknown modules"):
        registry.nbytes("lora/layer0")
