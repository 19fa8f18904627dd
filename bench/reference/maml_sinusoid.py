#!/usr/bin/python3
"""MAML on sinusoids in PyTorch, the protocol of medusa's README: the
reference figures beside medusa's.

Finn, Abbeel and Levine (2017), section 5.1: amplitude U[0.1, 5], phase
U[0, π], x U[−5, 5]; a 1-40-40-1 ReLU network; meta-batch 25 tasks of
K = 10 support and 10 query points; one inner SGD step of 0.01 with exact
second-order gradients; Adam 10⁻³; float32. Then 600 fresh tasks of 10
support and 100 query points, adapted with 0, 1 and 10 inner steps,
reported as mean query MSE ± 1.96·s/√n.

Run with Debian's python3-torch (apt-get install python3-torch):
    /usr/bin/python3 bench/reference/maml_sinusoid.py [--iters 70000] [--seed 1]
"""

import argparse
import math
import time

import torch
import torch.nn.functional as F


def sinusoid_batch(tasks, k, q):
    amp = torch.empty(tasks, 1, 1).uniform_(0.1, 5.0)
    phase = torch.empty(tasks, 1, 1).uniform_(0, math.pi)
    x = torch.empty(tasks, k + q, 1).uniform_(-5.0, 5.0)
    y = amp * torch.sin(x - phase)
    return x[:, :k], y[:, :k], x[:, k:], y[:, k:]


def mlp_params(sizes):
    ps = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(a)
        ps += [torch.empty(b, a).uniform_(-bound, bound).requires_grad_(),
               torch.empty(b).uniform_(-bound, bound).requires_grad_()]
    return ps


def batched_mlp(x, ps):
    """x [tasks, n, in]; per-task weights [tasks, out, in], biases [tasks, out]."""
    h = x
    for i in range(0, len(ps), 2):
        h = torch.baddbmm(ps[i + 1].unsqueeze(1), h, ps[i].transpose(1, 2))
        if i + 2 < len(ps):
            h = F.relu(h)
    return h


def adapt(theta, xs, ys, steps, lr, create_graph):
    """Returns each task's parameters after steps inner SGD steps."""
    tasks = xs.shape[0]
    fast = [p.unsqueeze(0).expand(tasks, *p.shape) for p in theta]
    for _ in range(steps):
        # Each task's loss depends on its own slice only: the gradient of
        # the sum is every task's gradient.
        loss = ((batched_mlp(xs, fast) - ys) ** 2).mean(dim=(1, 2)).sum()
        grads = torch.autograd.grad(loss, fast, create_graph=create_graph)
        fast = [p - lr * g for p, g in zip(fast, grads)]
    return fast


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=70000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    theta = mlp_params([1, 40, 40, 1])
    opt = torch.optim.Adam(theta, lr=1e-3)
    start = time.perf_counter()
    for it in range(1, args.iters + 1):
        xs, ys, xq, yq = sinusoid_batch(25, 10, 10)
        fast = adapt(theta, xs, ys, 1, 0.01, True)
        loss = ((batched_mlp(xq, fast) - yq) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % max(1, args.iters // 10) == 0:
            print(f"iter {it}: query MSE {loss.item():.4f}", flush=True)
    print(f"trained {args.iters} iterations in {time.perf_counter() - start:.1f} s")
    xs, ys, xq, yq = sinusoid_batch(600, 10, 100)
    print("test MSE on 600 fresh tasks (K=10 support, 100 query points):")
    for steps in (0, 1, 10):
        fast = adapt(theta, xs, ys, steps, 0.01, False)
        with torch.no_grad():
            per = ((batched_mlp(xq, fast) - yq) ** 2).mean(dim=(1, 2))
        mean, half = per.mean().item(), 1.96 * per.std().item() / math.sqrt(len(per))
        print(f"  {steps:5d}  {mean:8.4f}  ±{half:.4f}")


if __name__ == "__main__":
    main()
