#!/usr/bin/env python3
"""PyTorch references for medusa's GPU benchmarks (bench/gpu_test.go,
BenchmarkGPU): the same three workloads, written as a PyTorch user would
write them at their fastest (tasks batched with torch.func.vmap, exact
second-order MAML through torch.func.grad), timed with CUDA events.

    python3 torch_ref.py [--device cuda] [--iters 20]

Prints one line per workload: name, milliseconds per step.
"""
import argparse
import time

import torch
import torch.nn.functional as F
try:
    from torch.func import functional_call, grad, vmap
except ImportError:  # PyTorch before 2.0
    from functorch import grad, vmap
    from torch.nn.utils.stateless import functional_call


def timed(step, iters, device):
    for _ in range(3):  # warm up (allocator, cuBLAS heuristics, kernels)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1000 / iters


class ConvNet(torch.nn.Module):
    """Four blocks of conv 3×3 (padding 1) → batch norm (batch statistics)
    → ReLU → 2×2 max-pool, then a linear head: medusa's nets.ConvNet."""

    def __init__(self, filters=64, out=5, side=28):
        super().__init__()
        chans = [1] + [filters] * 4
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(chans[i], chans[i + 1], 3, padding=1) for i in range(4))
        self.gammas = torch.nn.ParameterList(torch.nn.Parameter(torch.ones(filters)) for _ in range(4))
        self.betas = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(filters)) for _ in range(4))
        s = side
        for _ in range(4):
            s //= 2
        self.head = torch.nn.Linear(filters * s * s, out)

    def forward(self, x):
        for conv, g, b in zip(self.convs, self.gammas, self.betas):
            x = conv(x)
            x = F.batch_norm(x, None, None, g, b, training=True, eps=1e-5)
            x = F.max_pool2d(F.relu(x), 2)
        return self.head(x.flatten(1))


class MLP(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x):
        for i, l in enumerate(self.layers):
            x = l(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def maml_step(model, loss_fn, inner_lr, opt):
    """Returns a function that takes one second-order MAML meta-step on a
    batch of tasks (support x, y, query x, y, each with a leading task axis)."""
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]

    def loss(ps, x, y):
        return loss_fn(functional_call(model, dict(zip(names, ps)), (x,)), y)

    def task_loss(ps, xs, ys, xq, yq):
        g = grad(loss)(ps, xs, ys)  # differentiable: the outer grad goes through it
        adapted = [p - inner_lr * gi for p, gi in zip(ps, g)]
        return loss(adapted, xq, yq)

    def meta_loss(ps, xs, ys, xq, yq):
        return vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(ps, xs, ys, xq, yq).mean()

    def step(batch):
        gs = grad(meta_loss)(params, *batch)
        for p, g in zip(params, gs):
            p.grad = g
        opt.step()

    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--only", default="", help="comma-separated workloads to run")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False  # medusa computes in true float32
    torch.backends.cudnn.allow_tf32 = False
    only = set(filter(None, args.only.split(",")))

    if not only or "maml-convnet" in only:
        tasks, ways, shots, query = 32, 5, 1, 15
        model = ConvNet().to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xs = torch.randn(tasks, ways * shots, 1, 28, 28, device=dev)
        ys = torch.arange(ways, device=dev).repeat_interleave(shots).expand(tasks, -1).contiguous()
        xq = torch.randn(tasks, ways * query, 1, 28, 28, device=dev)
        yq = torch.arange(ways, device=dev).repeat_interleave(query).expand(tasks, -1).contiguous()
        step = maml_step(model, F.cross_entropy, 0.4, opt)
        print(f"maml-convnet {timed(lambda: step((xs, ys, xq, yq)), args.iters, dev):.3f}")

    if not only or "maml-sinusoid" in only:
        tasks, k = 1000, 10
        model = MLP([1, 40, 40, 1]).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        amp = torch.rand(tasks, 1, 1, device=dev) * 4.9 + 0.1
        phase = torch.rand(tasks, 1, 1, device=dev) * torch.pi
        xs = torch.rand(tasks, k, 1, device=dev) * 10 - 5
        xq = torch.rand(tasks, k, 1, device=dev) * 10 - 5
        batch = (xs, amp * torch.sin(xs - phase), xq, amp * torch.sin(xq - phase))
        step = maml_step(model, F.mse_loss, 0.01, opt)
        print(f"maml-sinusoid {timed(lambda: step(batch), args.iters, dev):.3f}")

    if not only or "mtl" in only:
        n = 8192
        trunk = MLP([32, 1024, 1024]).to(dev)
        heads = torch.nn.ModuleList(torch.nn.Linear(1024, 1) for _ in range(3)).to(dev)
        opt = torch.optim.Adam(list(trunk.parameters()) + list(heads.parameters()), lr=1e-3)
        x = torch.randn(n, 32, device=dev)
        y1, y2 = torch.randn(n, 1, device=dev), torch.randn(n, 1, device=dev)
        y3 = torch.randint(0, 2, (n, 1), device=dev).float()

        def mtl_step():
            h = F.relu(trunk(x))  # the trunk's last layer has its ReLU too
            loss = (F.mse_loss(heads[0](h), y1) + F.mse_loss(heads[1](h), y2)
                    + F.binary_cross_entropy_with_logits(heads[2](h), y3))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        print(f"mtl {timed(mtl_step, args.iters, dev):.3f}")


if __name__ == "__main__":
    main()
