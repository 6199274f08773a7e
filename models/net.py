"""A small modular multi-modal model trained with peft LoRA on a frozen fusion backbone.

Token sequence: one learnable prompt per task, then the image patches, the
question tokens and the sensor patches, each embedded by its modality encoder.
A pre-LN transformer (the frozen backbone, adapted with LoRA on ``q``, ``v``,
``fc1``, ``fc2``) fuses them; head *t* reads the output at prompt *t*.

Trainable (and transmitted): LoRA factors, modality encoders, prompts and
heads. The fusion backbone is frozen and never sent.

    >>> model = build_model(ModelConfig(), seed=0)
    >>> from models.data import make_m3t_dataset
    >>> logits = model(make_m3t_dataset(2, seed=0).inputs())
    >>> sorted((task, tuple(x.shape)) for task, x in logits.items())
    [('activity', (2, 4)), ('shape', (2, 4)), ('vqa', (2, 10))]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from models.data import IMAGE_SIZE, SENSOR_LEN, TASKS, TEXT_LEN, VOCAB

TRAINABLE_PREFIXES = ("encoders.", "prompts.", "heads.")
"""Module prefixes trained besides LoRA factors."""


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the model (defaults match the embedded dataset)."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 2
    lora_rank: int = 4
    lora_alpha: float = 8.0
    lora_targets: tuple[str, ...] = ("q", "v", "fc1", "fc2")
    patch: int = 4
    stem_channels: int = 8
    sensor_patch: int = 4


class ImageEncoder(nn.Module):
    """3×3 conv stem (``stem_channels``), then ``patch``×``patch`` patches → Linear → d, plus positions."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.patch = cfg.patch
        self.stem = nn.Conv2d(3, cfg.stem_channels, 3, padding=1)
        self.proj = nn.Linear(cfg.stem_channels * cfg.patch * cfg.patch, cfg.d_model)
        self.pos = nn.Parameter(torch.randn((IMAGE_SIZE // cfg.patch) ** 2, cfg.d_model) * 0.02)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        p = self.patch
        features = torch.nn.functional.gelu(self.stem(image))
        b, c = features.shape[:2]
        patches = features.unfold(2, p, p).unfold(3, p, p)  # b, c, H/p, W/p, p, p
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)
        return self.proj(patches) + self.pos


class TextEncoder(nn.Module):
    """Token embedding plus learned positions."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), cfg.d_model)
        self.pos = nn.Parameter(torch.randn(TEXT_LEN, cfg.d_model) * 0.02)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.embed(text) + self.pos


class SensorEncoder(nn.Module):
    """Windows of ``sensor_patch`` samples → Linear → d, plus learned positions."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.patch = cfg.sensor_patch
        self.proj = nn.Linear(cfg.sensor_patch, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(SENSOR_LEN // cfg.sensor_patch, cfg.d_model) * 0.02)

    def forward(self, sensor: torch.Tensor) -> torch.Tensor:
        return self.proj(sensor.reshape(sensor.shape[0], -1, self.patch)) + self.pos


class Block(nn.Module):
    """Pre-LN transformer block; attention as explicit matmul + softmax (counted by FlopCounterMode)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1 = nn.Linear(d, cfg.mlp_ratio * d)
        self.fc2 = nn.Linear(cfg.mlp_ratio * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.ln1(x)
        q, k, v = (f(h).view(b, n, self.n_heads, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.n_heads), dim=-1)
        x = x + self.o((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


class Fusion(nn.Module):
    """The backbone: a stack of transformer blocks and a final LayerNorm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class M3TNet(nn.Module):
    """Encoders per modality, a prompt per task, the fusion backbone, a head per task."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(
            {"image": ImageEncoder(cfg), "text": TextEncoder(cfg), "sensor": SensorEncoder(cfg)}
        )
        self.prompts = nn.ParameterDict({t: nn.Parameter(torch.randn(cfg.d_model) * 0.02) for t in TASKS})
        self.fusion = Fusion(cfg)
        self.heads = nn.ModuleDict({t: nn.Linear(cfg.d_model, k) for t, k in TASKS.items()})

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        b = batch["text"].shape[0]
        prompts = torch.stack(list(self.prompts.values())).expand(b, -1, -1)
        tokens = [prompts] + [self.encoders[m](batch[m]) for m in ("image", "text", "sensor")]
        fused = self.fusion(torch.cat(tokens, dim=1))
        return {task: self.heads[task](fused[:, i]) for i, task in enumerate(self.prompts)}


def build_model(cfg: ModelConfig, seed: int) -> nn.Module:
    """Random-init :class:`M3TNet` from ``seed``, LoRA-wrapped with peft; encoders, prompts, heads trainable."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = M3TNet(cfg)
        lora = LoraConfig(
            r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules=list(cfg.lora_targets), lora_dropout=0.0,
            bias="none",
        )  # fmt: skip
        model = get_peft_model(base, lora)
    for name, param in model.base_model.model.named_parameters():
        if name.startswith(TRAINABLE_PREFIXES):
            param.requires_grad_(True)
    return model


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of exactly the trainable parameters, by name (what a message carries)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into the model's trainable parameters in place.

    Raises:
        KeyError: a trainable parameter is missing from ``state`` or ``state`` has an unknown key.
    """
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing = params.keys() - state.keys()
    unexpected = state.keys() - params.keys()
    if missing or unexpected:
        raise KeyError(f"state mismatch: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name])
