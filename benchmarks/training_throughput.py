"""Local-training throughput: clients one at a time vs batched (models.batched), against the GEMM peak.

    .venv/bin/python benchmarks/training_throughput.py [--clients 40] [--steps 6] [--batch-size 8]
        [--threads 1 2] [--preset paper] [--set key=value ...] [--repeats 3]

The preset's model (``--set model.d_model=128 --set model.n_layers=6``: the
issue's reference size; overrides as in ``hffm run --set``); each client has
its own 64 samples, start state and generator. Reports client-steps/s of
``models.train.local_train`` called per client and of
``models.batched.batched_local_train`` for all clients, the counted training
FLOPs per second (``models.train.train_step_flops``: matrix products of
forward and backward, attention included, plus AdamW), and the fp32 GEMM peak
(2048 × 2048 matmul) for the same thread count. Each time is the best of
``--repeats`` runs, with the load average printed beside it (other jobs on the
machine only add time). Host time is a performance figure only.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch

from models.batched import ClientJob, batched_local_train
from models.data import make_m3t_dataset
from models.net import build_model, trainable_state
from models.train import local_train, train_step_flops
from sim.learner import model_config
from sim.scenario import load_scenario


def gemm_peak_flops(n: int = 2048, repeats: int = 10) -> float:
    """fp32 FLOP/s of an n × n matmul, the best of ``repeats`` (2·n³ FLOPs each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    return 2 * n**3 / best_seconds(lambda: a @ b, repeats)


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The shortest host time of ``repeats`` calls of ``run`` (other jobs on the machine only ever add time)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def jobs(model: torch.nn.Module, clients: int, samples: int) -> list[ClientJob]:
    base = trainable_state(model)
    out = []
    for c in range(clients):
        noise = torch.Generator().manual_seed(1000 + c)
        state = {name: t + 0.01 * torch.randn(t.shape, generator=noise) for name, t in base.items()}
        out.append(ClientJob(state, make_m3t_dataset(samples, seed=c), torch.Generator().manual_seed(c)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = build_model(model_config(load_scenario(args.preset, args.overrides)), seed=0)
    work = jobs(model, args.clients, args.samples)
    step_flops = train_step_flops(model, args.batch_size)
    client_steps = args.clients * args.steps
    print(f"{args.clients} clients x {args.steps} steps at batch {args.batch_size}; "
          f"{step_flops / 1e6:.1f} MFLOP per client-step (counted)")  # fmt: skip
    for threads in args.threads:
        torch.set_num_threads(threads)
        peak = gemm_peak_flops()

        def one_at_a_time() -> None:
            for c, job in enumerate(work):
                local_train(model, job.state, job.data, args.steps, args.batch_size, 3e-3, torch.Generator().manual_seed(c))

        def batched() -> None:
            fresh = [ClientJob(j.state, j.data, torch.Generator().manual_seed(c)) for c, j in enumerate(work)]
            batched_local_train(model, fresh, args.steps, args.batch_size, 3e-3)

        alone_s = best_seconds(one_at_a_time, args.repeats)
        batched_s = best_seconds(batched, args.repeats)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"threads {threads}: GEMM peak {peak / 1e9:.0f} GFLOP/s; best of {args.repeats}; load average {load}")
        for name, seconds in (("one client at a time", alone_s), ("batched", batched_s)):
            rate = client_steps / seconds
            flops = rate * step_flops
            print(f"  {name:<22}{rate:8.0f} client-steps/s  {flops / 1e9:6.1f} GFLOP/s ({100 * flops / peak:4.1f} % of peak)")
        print(f"  speed-up {alone_s / batched_s:.2f}x")


if __name__ == "__main__":
    main()
