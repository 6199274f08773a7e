"""Local training, evaluation and learning: the tasks are learnable and each needs its modality."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models import TASKS, M3TData, ModelConfig, build_model, evaluate, local_train, make_m3t_dataset
from models import trainable_state
from models.train import _batches


def _train(data: M3TData, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state after ``steps`` steps at batch 8 from a fresh model, model and sampling seeded by ``seed``."""
    model = build_model(ModelConfig(), seed=seed)
    return local_train(model, trainable_state(model), data, steps, 8, 3e-3, torch.Generator().manual_seed(seed)).state


@pytest.fixture(scope="module")
def learned() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The default model trained centrally: 300 steps at batch 32 on 2000 samples."""
    model = build_model(ModelConfig(), seed=0)
    data = make_m3t_dataset(2000, seed=1)
    result = local_train(model, trainable_state(model), data, 300, 32, 3e-3, torch.Generator().manual_seed(0))
    return model, result.state


@pytest.fixture(scope="module")
def held_out() -> M3TData:
    return make_m3t_dataset(1000, seed=2)


def test_batches_sample_without_replacement_within_an_epoch() -> None:
    batches = _batches(10, 5, 4, torch.Generator().manual_seed(0))
    assert all(len(b) == 4 for b in batches)
    order = torch.cat(batches)
    assert sorted(order[:10].tolist()) == list(range(10))
    assert _batches(3, 2, 8, torch.Generator().manual_seed(0))[0].sort().values.tolist() == [0, 1, 2]


def test_local_train_result_and_input_state_untouched() -> None:
    model = build_model(ModelConfig(), seed=0)
    start = trainable_state(model)
    copy = {k: v.clone() for k, v in start.items()}
    data = make_m3t_dataset(3, seed=0)  # fewer samples than the batch size
    result = local_train(model, start, data, steps=4, batch_size=8, lr=1e-2, generator=torch.Generator().manual_seed(0))
    assert (result.n_samples, result.steps) == (3, 4) and result.mean_loss > 0
    assert list(result.state) == list(start)
    assert all(torch.equal(start[k], copy[k]) for k in start)
    assert not all(torch.equal(result.state[k], start[k]) for k in start)
    with pytest.raises(ValueError):
        local_train(model, start, data, steps=0, batch_size=8, lr=1e-2, generator=torch.Generator())


def test_same_seed_same_trained_state_other_generator_other_state() -> None:
    data = make_m3t_dataset(40, seed=5)
    a, b = _train(data, 6), _train(data, 6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    model = build_model(ModelConfig(), seed=0)
    c = local_train(model, trainable_state(model), data, 6, 8, 3e-3, torch.Generator().manual_seed(1)).state
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_evaluate_does_not_depend_on_its_batch_size(learned, held_out: M3TData) -> None:
    model, state = learned
    small = held_out.subset(range(100))
    whole, chunked = evaluate(model, state, small), evaluate(model, state, small, batch_size=7)
    assert set(whole) == set(TASKS)
    for task in TASKS:
        assert whole[task][1] == chunked[task][1]
        assert whole[task][0] == pytest.approx(chunked[task][0], rel=1e-5)


def test_central_training_learns_every_task(learned, held_out: M3TData) -> None:
    # chance: 1/4 for shape and activity; vqa's most frequent answer (yes or no) is ~1/6.
    # Measured over 5 seeds: shape >= 0.987, vqa >= 0.838, activity >= 0.932.
    model, state = learned
    accuracy = {task: acc for task, (loss, acc) in evaluate(model, state, held_out).items()}
    assert accuracy["shape"] > 0.9, accuracy
    assert accuracy["activity"] > 0.85, accuracy
    assert accuracy["vqa"] > 0.7, accuracy


@pytest.mark.parametrize(
    ("blanked", "task", "ceiling"),
    [("image", "shape", 0.35), ("sensor", "activity", 0.35), ("text", "vqa", 0.45), ("image", "vqa", 0.45)],
)
def test_tasks_need_their_modality(learned, held_out: M3TData, blanked: str, task: str, ceiling: float) -> None:
    # Without the image the shape is a guess (1/4); without the question or the image, vqa can at best
    # answer the right type of question (~1/3). Measured over 5 seeds: <= 0.267, 0.250, 0.253, 0.360.
    model, state = learned
    blank = dataclasses.replace(held_out, **{blanked: torch.zeros_like(getattr(held_out, blanked))})
    assert evaluate(model, state, blank)[task][1] < ceiling
