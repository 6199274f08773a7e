"""Batched multi-client training (models.batched) against training each client alone (models.train.local_train)."""

from __future__ import annotations

import pytest
import torch

from models.batched import ClientJob, _BatchedNet, _LoRALinear, _SplitHeads, _Stacked, batch_key, batched_local_train
from models.data import MODALITIES, make_m3t_dataset
from models.net import ModelConfig, build_model, load_trainable_state, trainable_state
from models.train import _loss, local_train, task_loss


def jobs_for(model: torch.nn.Module, n_clients: int, samples: int = 24, drop: tuple[str, ...] = ()) -> list[ClientJob]:
    """Clients with their own data, generator and (perturbed) start state."""
    base = trainable_state(model)
    jobs = []
    for c in range(n_clients):
        g = torch.Generator().manual_seed(100 + c)
        state = {name: t + 0.01 * torch.randn(t.shape, generator=g) for name, t in base.items()}
        data = make_m3t_dataset(samples, seed=c).without(drop)
        jobs.append(ClientJob(state, data, torch.Generator().manual_seed(c)))
    return jobs


def one_by_one(model, jobs, **kwargs):
    return [local_train(model, j.state, j.data, generator=torch.Generator().manual_seed(c), **kwargs)
            for c, j in enumerate(jobs)]  # fmt: skip


def assert_close(batched, alone) -> None:
    """Same losses, weights and (but for Adam's noise on near-zero gradients) parameters.

    AdamW divides by √v, so an element whose gradient is ~1e-9 moves by up to
    lr either way on float noise alone; such elements do not change the
    outputs (their gradient is ~0), which :func:`assert_same_outputs` checks.
    """
    for b, a in zip(batched, alone, strict=True):
        assert b.state.keys() == a.state.keys()
        close = [torch.isclose(b.state[n], a.state[n], rtol=1e-4, atol=2e-5) for n in a.state]
        assert float(torch.cat([c.flatten() for c in close]).float().mean()) > 0.999
        assert b.mean_loss == pytest.approx(a.mean_loss, rel=1e-5)
        assert b.n_samples == a.n_samples and b.steps == a.steps
        assert b.module_weights == pytest.approx(a.module_weights, rel=1e-9)


def assert_same_outputs(model, batched, alone, jobs) -> None:
    for b, a, job in zip(batched, alone, jobs):
        outputs = []
        for result in (b, a):
            load_trainable_state(model, {**job.state, **result.state})
            with torch.no_grad():
                outputs.append(model(make_m3t_dataset(32, seed=99).without(set(MODALITIES) - set(job.data.modalities)).inputs()))
        for task in outputs[0]:
            torch.testing.assert_close(outputs[0][task], outputs[1][task], rtol=1e-3, atol=1e-4)


def test_one_batched_step_gives_each_client_its_own_gradient() -> None:
    model = build_model(ModelConfig(adapters=("lora", "bottleneck")), seed=2)
    jobs = jobs_for(model, 4)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = _Stacked(model, jobs, set(names))
    outputs, aux, _ = _BatchedNet(model, params, len(jobs))({m: torch.stack([j.data.inputs(slice(0, 8))[m] for j in jobs])
                                                           for m in ("image", "text", "sensor")})  # fmt: skip
    losses = torch.stack([sum(task_loss(t, outputs[t][c], j.data.labels[t][:8]) for t in outputs) for c, j in
                          enumerate(jobs)]) + 0.01 * aux  # fmt: skip
    losses.sum().backward()
    for c, job in enumerate(jobs):
        load_trainable_state(model, job.state)
        model.zero_grad()
        loss = _loss(model, job.data.inputs(slice(0, 8)), {t: job.data.labels[t][:8] for t in outputs}, list(outputs))
        loss.backward()
        assert float(losses[c].detach()) == pytest.approx(float(loss.detach()), rel=1e-5)
        for name, p in model.named_parameters():
            if p.requires_grad and p.grad is not None:
                torch.testing.assert_close(_grad(params, name, c), p.grad, rtol=1e-3, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    ("config", "kwargs", "drop"),
    [
        (ModelConfig(adapters=("lora", "bottleneck")), {"expert_weighting": True}, ()),
        (ModelConfig(moe_experts=0), {"modules": ["encoder/text", "lora/layer1", "head/vqa"], "tasks": ["vqa"]},
         ("image",)),
        (ModelConfig(tasks=("shape", "size"), moe_experts=3, moe_top_k=1), {}, ("text",)),
    ],
    ids=["lora-adapters-moe", "some-modules-one-task-no-image", "regression-top1"],
)
def test_batched_training_equals_training_each_client_alone(config, kwargs, drop) -> None:
    model = build_model(config, seed=1)
    jobs = jobs_for(model, 5, drop=drop)
    alone = one_by_one(model, jobs, steps=4, batch_size=8, lr=3e-3, **kwargs)
    after_alone = trainable_state(model)
    fresh = [ClientJob(j.state, j.data, torch.Generator().manual_seed(c)) for c, j in enumerate(jobs)]
    batched = batched_local_train(model, fresh, steps=4, batch_size=8, lr=3e-3, **kwargs)
    assert_close(batched, alone)
    assert_same_outputs(model, batched, alone, jobs)
    moved = [name for name in alone[0].state if not torch.equal(alone[0].state[name], jobs[0].state[name])]
    assert moved  # training changed something
    for name, value in trainable_state(model).items():  # the model holds the last client's result, as before
        torch.testing.assert_close(value, after_alone[name], rtol=1e-4, atol=2e-5)


def test_fused_lora_linear_and_head_split_have_exact_gradients() -> None:
    """The hand-written backwards against finite differences (float64), and the forwards against plain formulas."""
    g = torch.Generator().manual_seed(0)
    x, a, b = (torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
               for shape in ((3, 5, 4), (3, 2, 4), (3, 2, 6)))  # fmt: skip
    weight, bias = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    expected = x @ weight.T + bias + (x @ a.transpose(1, 2)) @ b
    torch.testing.assert_close(_LoRALinear.apply(x, weight, bias, a, b), expected)
    assert torch.autograd.gradcheck(lambda x, a, b: _LoRALinear.apply(x, weight, bias, a, b), (x, a, b))
    qkv = torch.randn(2, 6, 3 * 4, generator=g, dtype=torch.float64, requires_grad=True)  # 2 clients, 2 samples of 3
    q, k, v = _SplitHeads.apply(qkv, 3, 2)  # 2 heads of width 2
    torch.testing.assert_close(k[1, 1], qkv[0, 3:6, 4:8].reshape(3, 2, 2)[:, 1])  # client 0, sample 1, head 1
    assert torch.autograd.gradcheck(lambda t: torch.cat([p.flatten() for p in _SplitHeads.apply(t, 3, 2)]) ** 2, (qkv,))


def test_clients_that_cannot_share_a_batch_are_refused() -> None:
    model = build_model(ModelConfig(), seed=0)
    jobs = jobs_for(model, 2) + jobs_for(model, 1, drop=("sensor",))
    assert len({batch_key(j, 8) for j in jobs}) == 2
    with pytest.raises(ValueError, match="batch_key"):
        batched_local_train(model, jobs, steps=1, batch_size=8, lr=1e-3)


def _grad(params: _Stacked, name: str, client: int) -> torch.Tensor:
    return params.fixed[name].grad[client]
