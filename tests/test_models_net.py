"""The LoRA multi-modal model: structure, what is trainable, state transfer, FLOP counting."""

from __future__ import annotations

import ast
import pathlib

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import models
from models import MODALITIES, TASKS, ModelConfig, build_model, load_trainable_state, state_nbytes, train_step_flops
from models import trainable_state
from models.data import make_m3t_dataset

BASE = "base_model.model."


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return build_model(ModelConfig(), seed=0)


def test_forward_gives_logits_for_every_task(model: torch.nn.Module) -> None:
    out = model(make_m3t_dataset(5, seed=0).inputs())
    assert {task: tuple(x.shape) for task, x in out.items()} == {task: (5, k) for task, k in TASKS.items()}


def test_submodule_names() -> None:
    net = build_model(ModelConfig(), seed=0).get_base_model()
    names = dict(net.named_modules())
    for name in ("encoders.image", "encoders.text", "encoders.sensor", "fusion.blocks.0", "fusion.blocks.1"):
        assert name in names, name
    for layer in ("q", "k", "v", "o", "fc1", "fc2"):
        assert f"fusion.blocks.1.{layer}" in names, layer
    assert set(net.prompts) == set(TASKS) and set(net.heads) == set(TASKS)


def test_only_lora_encoders_prompts_and_heads_are_trainable(model: torch.nn.Module) -> None:
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    for name in trainable:
        assert "lora_" in name or name.startswith(tuple(BASE + p for p in ("encoders.", "prompts.", "heads.", "moe."))), name
    for name in frozen:
        assert name.startswith(BASE + "fusion.") and "lora_" not in name, name
    lora = {n.split(".lora_")[0].removeprefix(BASE) for n in trainable if "lora_" in n}
    blocks = range(ModelConfig().n_layers)
    assert lora == {f"fusion.blocks.{i}.{t}" for i in blocks for t in ("q", "v", "fc1", "fc2")}
    assert BASE + "encoders.image.proj.weight" in trainable and BASE + "encoders.text.embed.weight" in trainable
    assert BASE + "encoders.sensor.proj.weight" in trainable and BASE + "prompts.vqa" in trainable
    assert BASE + "fusion.blocks.0.q.base_layer.weight" in frozen and BASE + "fusion.blocks.0.k.weight" in frozen


def test_trainable_state_is_exactly_the_trainable_parameters_in_order(model: torch.nn.Module) -> None:
    state = trainable_state(model)
    assert list(state) == [n for n, p in model.named_parameters() if p.requires_grad]
    params = dict(model.named_parameters())
    for name, tensor in state.items():
        assert torch.equal(tensor, params[name]) and tensor.data_ptr() != params[name].data_ptr()
        assert not tensor.requires_grad
    assert state_nbytes(state) == 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_state_round_trip_and_errors() -> None:
    model = build_model(ModelConfig(), seed=0)
    changed = {k: v + 1.0 for k, v in trainable_state(model).items()}
    load_trainable_state(model, changed)
    assert all(torch.equal(a, changed[k]) for k, a in trainable_state(model).items())
    key = next(iter(changed))
    with pytest.raises(KeyError, match="bogus"):
        load_trainable_state(model, {**changed, "bogus": torch.zeros(1)})
    missing = dict(changed)
    del missing[key]
    with pytest.raises(KeyError, match="missing"):
        load_trainable_state(model, missing)
    with pytest.raises(ValueError, match="shape"):
        load_trainable_state(model, {**changed, key: torch.zeros(1)})


def test_build_is_seeded_and_leaves_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    a, b, c = (trainable_state(build_model(ModelConfig(), seed=s)) for s in (1, 1, 2))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    frozen = [dict(build_model(ModelConfig(), seed=s).named_parameters()) for s in (1, 1)]
    assert all(torch.equal(p, frozen[1][n]) for n, p in frozen[0].items())


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_heads"):
        ModelConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="patch"):
        ModelConfig(patch=5)
    with pytest.raises(ValueError, match="lora_rank"):
        ModelConfig(lora_rank=0)
    with pytest.raises(ValueError, match=r"ModelConfig\.modalities .*'lidar'"):
        ModelConfig(modalities=("image", "lidar"))
    with pytest.raises(ValueError, match=r"ModelConfig\.modalities"):
        ModelConfig(modalities=())
    with pytest.raises(ValueError, match=r"ModelConfig\.tasks"):
        ModelConfig(tasks=("shape", "shape"))
    with pytest.raises(ValueError, match=r"ModelConfig\.tasks"):
        ModelConfig(tasks=["shape"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ModelConfig\.text_backbone_dir"):
        ModelConfig(text_backbone_dir=" ")
    assert ModelConfig(adapters=()).adapters == ()
    with pytest.raises(ValueError, match=r"ModelConfig\.lora_targets .*'query'"):
        ModelConfig(lora_targets=("q", "query"))


def test_missing_modalities_are_left_out_and_every_task_still_answered() -> None:
    model = build_model(ModelConfig(modalities=("image", "text"), tasks=("vqa", "size", "activity")), seed=0)
    data = make_m3t_dataset(3, seed=0)
    shapes = {"vqa": (3, 10), "size": (3,), "activity": (3, 4)}
    with torch.no_grad():
        full = model(data.inputs())  # the sensor is ignored: the model has no sensor encoder
        for batch in ({"image": data.image}, {"image": None, "text": data.text}, data.without(["text"]).inputs()):
            out = model(batch)
            assert {t: tuple(y.shape) for t, y in out.items()} == shapes
            assert not torch.equal(out["vqa"], full["vqa"])  # fewer tokens, another output
        assert torch.equal(model({**data.inputs(), "sensor": None})["vqa"], full["vqa"])
    with pytest.raises(ValueError, match="none of the model's modalities"):
        model({"sensor": data.sensor})


def test_a_task_output_does_not_depend_on_another_tasks_prompt() -> None:
    model = build_model(ModelConfig(), seed=0)
    batch = make_m3t_dataset(4, seed=3).inputs()
    with torch.no_grad():
        before = model(batch)
        model.get_base_model().prompts["activity"].add_(5.0)
        after = model(batch)
    torch.testing.assert_close(after["shape"], before["shape"], rtol=0, atol=0)
    torch.testing.assert_close(after["vqa"], before["vqa"], rtol=0, atol=0)
    assert not torch.equal(after["activity"], before["activity"])  # the test can fail: its own prompt matters


def test_model_without_lora_has_no_peft_wrapper_and_no_lora_factors() -> None:
    model = build_model(ModelConfig(adapters=("bottleneck",)), seed=0)
    assert not any("lora_" in n for n, _ in model.named_parameters())
    assert {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("fusion.")} == {
        f"fusion.adapters.{i}.{layer}.{p}" for i in (0, 1) for layer in ("down", "up") for p in ("weight", "bias")
    }
    assert train_step_flops(model, 2) > 0


def _forward_matmul_flops(cfg: ModelConfig, b: int, modalities: tuple[str, ...] = MODALITIES) -> int:
    """Hand count of 2·(multiply-adds) of one forward pass at the default sizes, for a batch of ``modalities``."""
    d, r, n_tasks = cfg.d_model, cfg.lora_rank, len(TASKS)
    image_tokens = (cfg.image_size // cfg.patch) ** 2
    tokens = {"image": image_tokens, "text": cfg.text_len, "sensor": cfg.sensor_len // cfg.sensor_patch}
    n = n_tasks + sum(tokens[m] for m in modalities)
    stem = cfg.stem_channels * 3 * 9 * cfg.image_size**2
    encoder = {"image": stem + image_tokens * cfg.stem_channels * cfg.patch**2 * d, "text": 0,
               "sensor": cfg.sensor_len * d}  # fmt: skip
    encoders = sum(encoder[m] for m in modalities)
    linears = n * (4 * d * d + 2 * cfg.mlp_ratio * d * d)
    lora = n * r * (2 * 2 * d + 2 * (d + cfg.mlp_ratio * d))  # q, v: d→r→d; fc1: d→r→2d; fc2: 2d→r→d
    attention = 2 * n * n * d  # q kᵀ and (attn) v over all heads
    heads = d * sum(TASKS.values())
    h = 2 * d  # MoE: on the 3 prompt tokens, the gate (d→E) and k experts (d→h→d) each
    moe = n_tasks * (d * cfg.moe_experts + cfg.moe_top_k * 2 * d * h)
    return 2 * b * (encoders + cfg.n_layers * (linears + lora + attention) + heads + moe)


def test_flop_counter_sees_every_matmul_including_attention(model: torch.nn.Module) -> None:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(make_m3t_dataset(4, seed=0).inputs())
    assert counter.get_total_flops() == _forward_matmul_flops(ModelConfig(), 4)


def test_train_step_flops_positive_and_linear_in_batch(model: torch.nn.Module) -> None:
    f4, f8, f16 = (train_step_flops(model, b) for b in (4, 8, 16))
    assert f8 > 2 * _forward_matmul_flops(ModelConfig(), 8)  # backward costs more than nothing
    assert f16 - f8 == 2 * (f8 - f4)
    assert 1.8 < f16 / f8 < 2.0
    assert all(p.grad is None for p in model.parameters())


def test_flop_counter_sees_fewer_tokens_when_a_modality_is_missing(model: torch.nn.Module) -> None:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(make_m3t_dataset(4, seed=0).without(["sensor"]).inputs())
    assert counter.get_total_flops() == _forward_matmul_flops(ModelConfig(), 4, ("image", "text"))


def test_train_step_flops_of_training_one_head_by_hand(model: torch.nn.Module) -> None:
    # Nothing before the head is trained: no backward through the model, only the head's weight gradient
    # (2·b·d·classes) besides the forward, and 10 AdamW FLOPs per head parameter.
    b, d = 8, ModelConfig().d_model
    flops = train_step_flops(model, b, modules=["head/shape"], tasks=["shape"])
    assert flops == _forward_matmul_flops(ModelConfig(), b) + 2 * b * d * 4 + 10 * (d * 4 + 4)


def test_train_step_flops_shrink_with_fewer_modalities_and_modules(model: torch.nn.Module) -> None:
    full = train_step_flops(model, 8)
    assert train_step_flops(model, 8, modalities=["image", "text", "sensor"]) == full
    no_sensor = train_step_flops(model, 8, modalities=["image", "text"])
    forward_saving = _forward_matmul_flops(ModelConfig(), 8) - _forward_matmul_flops(ModelConfig(), 8, ("image", "text"))
    assert full - no_sensor > 2 * forward_saving  # forward and backward both shrink
    only_heads = train_step_flops(model, 8, modules=["head/shape", "head/vqa", "head/activity"])
    lora_too = train_step_flops(model, 8, modules=["head/shape", "head/vqa", "head/activity", "lora/layer1"])
    assert only_heads < lora_too < full
    with pytest.raises(ValueError, match="lidar"):
        train_step_flops(model, 8, modalities=["lidar"])
    with pytest.raises(ValueError, match="modules"):
        train_step_flops(model, 8, modules=["head/colour"])
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n or ".heads." in n)


def test_models_imports_no_simulator_or_hdf5() -> None:
    for path in pathlib.Path(models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])  # fmt: skip
            for name in names:
                assert name.split(".")[0] not in {"simpy", "h5py", "sim", "traces"}, f"{path.name} imports {name}"
