"""Local training of many clients at once on the shared frozen backbone (same results as one at a time).

C clients that train the same modules on the same tasks with the same
modalities run each step together: their minibatches are stacked, the frozen
layers (backbone Linear layers, LayerNorms, attention) see all C·b samples in
one call (one large GEMM per layer instead of C small ones), and every
trainable part is applied per client with batched matrix products on
parameters stacked along a leading client axis (C, …):

* the frozen q, k, v as one GEMM of all C·b·n tokens; attention by
  ``F.scaled_dot_product_attention``;
* LoRA (Hu et al. 2021): W x + (α/r)·B_c A_c x, the A_c x by ``bmm`` (one for
  the LoRA layers among q, k, v), the B_c term accumulated in place into the
  GEMM's output by ``baddbmm_``;
* bottleneck adapters, the MoE gate and heads, encoder projections: ``bmm``;
* the image stem: one grouped convolution (``groups = C``);
* token embeddings and learned positions, prompts: indexing per client;
* MoE experts: each client's experts applied densely to its tokens and
  mixed with the top-k routing weights (zero outside the top k); the same
  values as routing tokens to experts one by one, summed in another order.

The loss is the sum of the clients' losses, so each client's parameters get
exactly its own gradient; AdamW is element-wise, so one optimizer over the
stacked parameters takes every client's own step. Minibatches come from each
client's own generator in the order :func:`models.train.local_train` draws
them. Results equal :func:`~models.train.local_train` per client up to float
rounding (tests/test_batched.py).

    >>> from models.data import make_m3t_dataset
    >>> from models.net import ModelConfig, build_model, trainable_state
    >>> model = build_model(ModelConfig(), seed=0)
    >>> jobs = [ClientJob(trainable_state(model), make_m3t_dataset(16, seed=s), torch.Generator().manual_seed(s))
    ...         for s in range(3)]
    >>> [r.n_samples for r in batched_local_train(model, jobs, steps=2, batch_size=8, lr=1e-3)]
    [16, 16, 16]
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from models.data import MODALITIES, TASKS, M3TData
from models.moe import top_k_routing
from models.net import ImageEncoder, M3TNet, SensorEncoder, TextEncoder, base_net, load_trainable_state, prompt_isolation
from models.registry import ModuleRegistry
from models.train import TrainResult, _batches, _modules, _tasks, task_loss


_ENCODERS = {"image": ImageEncoder, "text": TextEncoder, "sensor": SensorEncoder}


@dataclass(frozen=True)
class ClientJob:
    """One client's local training: its start state (every trainable parameter), data and minibatch generator."""

    state: dict[str, torch.Tensor]
    data: M3TData
    generator: torch.Generator


def batch_key(job: ClientJob, batch_size: int) -> tuple[tuple[str, ...], int]:
    """Clients with equal keys can train together: same modalities, same minibatch size."""
    return job.data.modalities, min(batch_size, len(job.data))


class _Stacked:
    """Every trainable parameter over the clients as (C, *shape).

    A trained parameter is one leaf (C, *shape): AdamW is element-wise, so it
    steps each client's slice as :func:`~models.train.local_train` would. MoE
    experts are the exception: an expert that got no token in a step has no
    gradient there when run alone, and AdamW then skips it (no decay, no moment
    update, no step count), so the optimizer steps them as one leaf per client,
    each a view of the stacked tensor's storage (the forward reads the stack,
    the optimizer writes the views, nothing is copied), and a client's idle
    experts get no gradient (:meth:`share_expert_grads`).
    """

    def __init__(self, model: nn.Module, jobs: Sequence[ClientJob], trained: Collection[str]) -> None:
        self.prefix = _prefix(model)
        self.leaves: dict[str, list[torch.Tensor]] = {}
        self.fixed: dict[str, torch.Tensor] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            stacked = torch.stack([job.state[name] for job in jobs]).to(p.dtype)
            self.fixed[name] = stacked.requires_grad_(name in trained)
            if name in trained and name.startswith(f"{self.prefix}moe.experts."):
                self.leaves[name] = [view.requires_grad_() for view in stacked.detach().unbind()]

    def optimized(self, names: Sequence[str]) -> list[torch.Tensor]:
        """The leaf tensors of the parameters ``names``, for the optimizer."""
        return [t for n in names for t in (self.leaves[n] if n in self.leaves else [self.fixed[n]])]

    def client_value(self, name: str, client: int) -> torch.Tensor:
        return self.fixed[name][client].detach().clone()

    def get(self, path: str) -> torch.Tensor | None:
        """The stacked parameter at ``path`` under the base net (e.g. ``"heads.vqa.weight"``), if the model has it."""
        return self.fixed.get(self.prefix + path)

    def __call__(self, path: str) -> torch.Tensor:
        value = self.get(path)
        if value is None:
            raise KeyError(f"no trainable parameter {self.prefix + path}")
        return value

    def share_expert_grads(self, expert_tokens: torch.Tensor) -> None:
        """Each client's slice of the stacked experts' gradients to its own leaves, none where the expert got no
        token this step (as when run alone)."""
        used = (expert_tokens > 0).tolist()
        for name, leaves in self.leaves.items():
            grad = self.fixed[name].grad
            self.fixed[name].grad = None
            j = int(name[len(f"{self.prefix}moe.experts.") :].split(".")[0])
            for c, leaf in enumerate(leaves):
                leaf.grad = grad[c] if grad is not None and used[c][j] else None


def _base(layer: nn.Module) -> nn.Module:
    """The frozen Linear of a backbone layer (peft's ``base_layer`` when it has LoRA)."""
    return getattr(layer, "base_layer", layer)


def _prefix(model: nn.Module) -> str:
    """Name prefix of the base net's parameters inside ``model`` (peft wraps it)."""
    net = base_net(model)
    for name, module in model.named_modules():
        if module is net:
            return f"{name}." if name else ""
    raise TypeError("the base net is not a submodule of the model")


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Per-client Linear: x (C, …, in), weight (C, out, in), bias (C, out) → (C, …, out).

    Computed as (W_c x_cᵀ)ᵀ, so the weight's gradient comes out as g_cᵀ x_c in
    the weight's own layout (x W_cᵀ gives it transposed, and accumulating it
    costs a strided copy of every weight per step).
    """
    shape = x.shape
    y = torch.bmm(weight, x.reshape(shape[0], -1, shape[-1]).transpose(1, 2)).transpose(1, 2)
    if bias is not None:
        y = y + bias[:, None, :]
    return y.reshape(*shape[:-1], weight.shape[1])


def _heads(qkv: torch.Tensor, n: int, heads: int) -> tuple[torch.Tensor, ...]:
    """q, k, v (samples, heads, n, d_h) as views of the fused projection's output (C, M, 3·d)."""
    c, m, d3 = qkv.shape
    return qkv.view(c * m // n, n, 3, heads, d3 // (3 * heads)).permute(2, 0, 3, 1, 4).unbind(0)


class _SplitHeads(torch.autograd.Function):
    """:func:`_heads` whose backward writes the three gradients straight into one (C, M, 3·d) tensor.

    Autograd's own backward of the permuted views stacks the gradients and
    then copies the stack into token order: two passes, the second strided
    (measured: the largest single copy of a batched step).
    """

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, n: int, heads: int) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        ctx.shape, ctx.n, ctx.heads = qkv.shape, n, heads
        return tuple(t.detach() for t in _heads(qkv, n, heads))

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        grad = torch.empty(ctx.shape, dtype=next(g for g in grads if g is not None).dtype)
        for part, g in zip(_heads(grad, ctx.n, ctx.heads), grads, strict=True):
            if g is None:
                part.zero_()
            else:
                part.copy_(g)
        return grad, None, None


class _LoRALinear(torch.autograd.Function):
    """y = x Wᵀ + b + (x A_cᵀ) B'_c per client c: a frozen shared Linear plus LoRA (B'_c = (α/r)·B_cᵀ).

    x (C, M, in), W (out, in), b (out,), A (C, r, in), B' (C, r, out). One
    GEMM over all C·M rows, then the LoRA term accumulated in place into its
    output (``baddbmm_``); the backward likewise adds the LoRA part of x's
    gradient, g B'ᵀ A, into the GEMM's g W in place. Autograd's own graph
    would make each a fresh tensor and add it: two more passes over the
    activations per layer.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        c, m, _ = x.shape
        u = torch.bmm(x, a.transpose(1, 2))
        ctx.save_for_backward(x, weight, a, b, u)
        y = torch.empty(c, m, weight.shape[0], dtype=x.dtype)  # not a view: the caller adds residuals in place
        torch.addmm(bias, x.reshape(c * m, -1), weight.t(), out=y.view(c * m, -1))
        return y.baddbmm_(u, b)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, weight, a, b, u = ctx.saved_tensors
        c, m, _ = x.shape
        g = g.contiguous()
        grad_u = torch.bmm(g, b.transpose(1, 2))
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(g.view(c * m, -1), weight).view(c, m, -1).baddbmm_(grad_u, a)
        grad_a = torch.bmm(grad_u.transpose(1, 2), x) if ctx.needs_input_grad[3] else None
        grad_b = torch.bmm(u.transpose(1, 2), g) if ctx.needs_input_grad[4] else None
        return grad_x, None, None, grad_a, grad_b


class _BatchedNet:
    """The forward of :class:`models.net.M3TNet` for C clients at once (see the module docstring)."""

    def __init__(self, model: nn.Module, params: _Stacked, n_clients: int) -> None:
        self.net: M3TNet = base_net(model)
        self.cfg = self.net.cfg
        self.p = params
        self.c = n_clients
        # the frozen q, k, v of each block as one (3d, d) Linear: one GEMM instead of three
        self.qkv = [tuple(torch.cat([getattr(_base(getattr(block, n)), part) for n in "qkv"]).detach()
                          for part in ("weight", "bias")) for block in self.net.fusion.blocks]  # fmt: skip

    def _backbone_linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         parts: Sequence[tuple[nn.Module, str]]) -> torch.Tensor:  # fmt: skip
        """Frozen shared Linear (weight, bias) on x (C, M, in) plus the per-client LoRA updates of ``parts``.

        ``parts`` are the Linear layers whose outputs are concatenated in
        ``weight`` (q, k, v; or one layer), each with its path. Their LoRA
        factors go to :class:`_LoRALinear` as the stacked A_c and the block
        matrix of the scaled B_cᵀ (zero where a layer has no LoRA).
        """
        lora = [(i, layer, path) for i, (layer, path) in enumerate(parts)
                if self.p.get(f"{path}.lora_A.default.weight") is not None]  # fmt: skip
        if not lora:
            return F.linear(x, weight, bias)
        a = torch.cat([self.p(f"{path}.lora_A.default.weight") for _, _, path in lora], dim=1)  # (C, Σr, in)
        width = weight.shape[0] // len(parts)
        rows = []
        for i, layer, path in lora:
            b = self.p(f"{path}.lora_B.default.weight").transpose(1, 2) * layer.scaling["default"]  # (C, r, out)
            rows.append(F.pad(b, (i * width, (len(parts) - 1 - i) * width)) if len(parts) > 1 else b)
        return _LoRALinear.apply(x, weight, bias, a, torch.cat(rows, dim=1))

    def _layer(self, x: torch.Tensor, block: nn.Module, name: str, path: str) -> torch.Tensor:
        """The block's Linear ``name`` (with its LoRA, if any) on x (C, M, in)."""
        layer = getattr(block, name)
        return self._backbone_linear(x, _base(layer).weight, _base(layer).bias, [(layer, f"{path}.{name}")])

    def _block(self, i: int, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """:class:`models.net.Block` on x (C, b·n, d), sample s's n tokens at rows s·n … s·n + n − 1.

        Attention by ``F.scaled_dot_product_attention``: the Block's softmax(q kᵀ/√d_h + M) v,
        faster here than explicit matmuls. FLOPs are counted on the Block
        (:func:`models.train.train_step_flops`), whose explicit matmuls the counter sees.
        Residual sums are added in place into the fresh layer outputs.
        """
        block = self.net.fusion.blocks[i]
        path = f"fusion.blocks.{i}"
        c, m, d = x.shape
        qkv = self._backbone_linear(block.ln1(x), *self.qkv[i], [(getattr(block, k), f"{path}.{k}") for k in "qkv"])
        q, k, v = _SplitHeads.apply(qkv, allowed.shape[0], block.n_heads)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed).transpose(1, 2).reshape(c, m, d)
        x = self._layer(attn, block, "o", path).add_(x)
        x = self._layer(F.gelu(self._layer(block.ln2(x), block, "fc1", path)), block, "fc2", path).add_(x)
        if self.net.fusion.adapters:
            a = f"fusion.adapters.{i}"
            down = F.gelu(_linear(x, self.p(f"{a}.down.weight"), self.p(f"{a}.down.bias")))
            x = x + _linear(down, self.p(f"{a}.up.weight"), self.p(f"{a}.up.bias"))
        return x

    def _encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """The modality's encoder per client: x (C, b, …) → (C, b, tokens, d)."""
        p, cfg = self.p, self.cfg
        base = f"encoders.{modality}"
        if modality == "image":
            c, b = x.shape[:2]
            weight = p(f"{base}.stem.weight")  # (C, s, 3, 3, 3)
            grouped = x.transpose(0, 1).reshape(b, -1, *x.shape[-2:])  # (b, C·3, H, W)
            features = F.conv2d(grouped, weight.reshape(-1, *weight.shape[2:]), p(f"{base}.stem.bias").reshape(-1),
                                padding=1, groups=c)  # fmt: skip
            features = F.gelu(features).reshape(b, c, -1, *x.shape[-2:]).transpose(0, 1)  # (C, b, s, H, W)
            q = cfg.patch
            patches = features.unfold(3, q, q).unfold(4, q, q).permute(0, 1, 3, 4, 2, 5, 6)
            patches = patches.reshape(c, b, -1, weight.shape[1] * q * q)
            tokens = _linear(patches, p(f"{base}.proj.weight"), p(f"{base}.proj.bias"))
        elif modality == "text":
            table = p(f"{base}.embed.weight")  # (C, V, d)
            tokens = table[torch.arange(self.c)[:, None, None], x]
        else:
            windows = x.reshape(*x.shape[:2], -1, cfg.sensor_patch)
            tokens = _linear(windows, p(f"{base}.proj.weight"), p(f"{base}.proj.bias"))
        return tokens + p(f"{base}.pos")[:, None]

    def _moe(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:class:`models.moe.MoELayer` per client on x (C, N, d) → (output, aux loss (C,), expert tokens (C, E))."""
        moe = self.net.moe
        n_experts = len(moe.experts)
        logits = _linear(x, self.p("moe.gate.weight"), self.p("moe.gate.bias"))  # (C, N, E)
        idx, weight = top_k_routing(logits, moe.top_k)  # (C, N, k)
        probs = torch.softmax(logits, dim=-1)
        counts = F.one_hot(idx.detach(), n_experts).sum(dim=(1, 2))  # (C, E)
        f = counts.to(probs.dtype) / idx[0].numel()
        aux = n_experts * (f * probs.mean(dim=1)).sum(dim=-1)
        mix = torch.zeros(logits.shape, dtype=x.dtype).scatter(-1, idx, weight)  # (C, N, E), 0 outside the top k
        out = x
        for j in range(n_experts):
            e = f"moe.experts.{j}"
            hidden = F.gelu(_linear(x, self.p(f"{e}.w_in.weight"), self.p(f"{e}.w_in.bias")))
            out = out + mix[..., j, None] * _linear(hidden, self.p(f"{e}.w_out.weight"), self.p(f"{e}.w_out.bias"))
        return out, aux, counts

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Stacked inputs (C, b, …) per modality → (task outputs (C, b, …), aux loss (C,), expert tokens (C, E))."""
        net, c = self.net, self.c
        present = [m for m in net.encoders if batch.get(m) is not None]
        b = batch[present[0]].shape[1]
        prompts = torch.stack([self.p(f"prompts.{t}") for t in net.prompts], dim=1)  # (C, T, d)
        tokens = [prompts[:, None].expand(c, b, -1, -1)] + [self._encode(m, batch[m]) for m in present]
        x = torch.cat(tokens, dim=2)
        n = x.shape[2]
        allowed = prompt_isolation(len(net.prompts), n)
        x = x.reshape(c, b * n, -1)
        for i in range(len(net.fusion.blocks)):
            x = self._block(i, x, allowed)
        fused = net.fusion.norm(x.view(c, b, n, -1)[:, :, : len(net.prompts)])
        aux = torch.zeros(c)
        counts = torch.zeros(c, 0, dtype=torch.long)
        if net.moe is not None:
            flat, aux, counts = self._moe(fused.reshape(c, -1, fused.shape[-1]))
            fused = flat.reshape(fused.shape)
        position = {task: i for i, task in enumerate(net.prompts)}
        out = {}
        for task in self.cfg.tasks:
            y = _linear(fused[:, :, position[task]], self.p(f"heads.{task}.weight"), self.p(f"heads.{task}.bias"))
            out[task] = y if task in TASKS else y.squeeze(-1)
        return out, aux, counts


def supports(model: nn.Module) -> bool:
    """Whether the batched forward covers this model (not with a pretrained text backbone)."""
    net = base_net(model)
    return all(type(net.encoders[m]) is _ENCODERS[m] for m in net.encoders)


def batched_local_train(
    model: nn.Module,
    jobs: Sequence[ClientJob],
    steps: int,
    batch_size: int,
    lr: float,
    *,
    modules: Collection[str] | None = None,
    tasks: Collection[str] | None = None,
    expert_weighting: bool = False,
) -> list[TrainResult]:
    """:func:`models.train.local_train` for every job, all clients' steps together; one result per job.

    Every job must give every trainable parameter in its state and have data of
    the same modalities and the same minibatch size (:func:`batch_key`). The
    model is left holding the last job's result, as after the last of the
    one-by-one calls.

    Raises:
        ValueError: no jobs, jobs that cannot share a batch, bad steps/batch size, unknown modules or tasks.
    """
    if not jobs:
        raise ValueError("batched_local_train needs at least one job")
    if steps < 1 or batch_size < 1 or any(len(job.data) < 1 for job in jobs):
        raise ValueError(f"need steps, batch_size and data of at least 1, got {steps}, {batch_size}")
    keys = {batch_key(job, batch_size) for job in jobs}
    if len(keys) > 1:
        raise ValueError(f"jobs differ in (modalities, minibatch size): {sorted(keys)}; group them by batch_key")
    if not supports(model):
        raise ValueError("batched_local_train does not cover a pretrained text backbone; use local_train")
    net = base_net(model)
    registry = ModuleRegistry(model)
    chosen = _modules(registry, modules)
    task_names = [_tasks(net, tasks, job.data) for job in jobs][0]
    trained = [name for key in chosen for name in registry.params(key)]
    params = _Stacked(model, jobs, set(trained))
    forward = _BatchedNet(model, params, len(jobs))
    optimizer = torch.optim.AdamW(params.optimized(trained), lr=lr, weight_decay=0.01, fused=True)
    # every client's samples in one tensor per modality and label: a step's minibatches are one gather
    starts = torch.tensor([0] + [len(job.data) for job in jobs[:-1]]).cumsum(0)
    plans = torch.stack([torch.stack(_batches(len(job.data), steps, batch_size, job.generator)) for job in jobs])
    plans += starts[:, None, None]  # (C, steps, b) rows of the pooled samples
    inputs = {m: torch.cat([getattr(job.data, m) for job in jobs]) for m in MODALITIES if m in jobs[0].data.modalities}
    labels = {t: torch.cat([job.data.labels[t] for job in jobs]) for t in task_names}
    totals = torch.zeros(len(jobs))
    expert_tokens = torch.zeros(len(jobs), net.cfg.moe_experts, dtype=torch.long)
    alpha = net.cfg.moe_aux_weight if net.moe is not None else 0.0
    was_training = model.training
    model.train()
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        rows = plans[:, step].reshape(-1)
        outputs, aux, counts = forward({m: x[rows].view(len(jobs), -1, *x.shape[1:]) for m, x in inputs.items()})
        losses = sum(task_loss(t, outputs[t].flatten(0, 1), labels[t][rows], reduction="none").view(len(jobs), -1)
                     .mean(dim=1) for t in task_names)  # fmt: skip
        if alpha > 0:
            losses = losses + alpha * aux
        if losses.requires_grad:
            losses.sum().backward()
            params.share_expert_grads(counts)
            optimizer.step()
        totals += losses.detach()
        if counts.numel():
            expert_tokens += counts
    model.train(was_training)
    results = []
    for i, job in enumerate(jobs):
        n = len(job.data)
        weights = dict.fromkeys(chosen, float(n))
        if expert_weighting and net.moe is not None:
            share = expert_tokens[i].double() / expert_tokens[i].sum()
            weights.update({f"moe/expert/{j}": float(n * share[j]) for j in range(len(share))
                            if f"moe/expert/{j}" in weights})  # fmt: skip
        state = {name: params.client_value(name, i) for name in trained}
        results.append(TrainResult(state, float(totals[i]) / steps, n, steps, weights))
    load_trainable_state(model, {**jobs[-1].state, **results[-1].state})
    return results
