#!/usr/bin/python3
"""PyTorch references for medusa's benchmarks, single-threaded.

Each workload does what the Go benchmark of the same name does, written
as PyTorch users write it (learn2learn and higher batch MAML tasks this
way), and prints its time in Go's benchmark format under the same name,
so that benchstat sets the two side by side:

    benchstat torch.txt medusa.txt

Run with Debian's python3-torch (apt-get install python3-torch):
    /usr/bin/python3 bench/compare/torch_bench.py [-count N] [-bench REGEXP]
"""

import argparse
import math
import re
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(1)


def timeit(name, step, min_time=1.0):
    """Runs step until min_time seconds have passed after a warm-up, and
    prints one Go benchmark line."""
    step()
    step()
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and n >= 3:
            break
    print(f"{name} \t{n}\t{elapsed / n * 1e9:.0f} ns/op", flush=True)


# --- MAML on sinusoids: 25 tasks, K = 10 support and 10 query points,
# 1-40-40-1 ReLU, inner step 0.01, Adam 1e-3, float32; the batch is drawn
# inside the step, as in BenchmarkMAMLSinusoid.

def sinusoid_batch(tasks, k):
    amp = torch.empty(tasks, 1, 1).uniform_(0.1, 5.0)
    phase = torch.empty(tasks, 1, 1).uniform_(0, math.pi)
    x = torch.empty(tasks, 2 * k, 1).uniform_(-5.0, 5.0)
    y = amp * torch.sin(x - phase)
    return x[:, :k], y[:, :k], x[:, k:], y[:, k:]


def mlp_params(sizes):
    ps = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        bound = 1 / math.sqrt(a)
        w = torch.empty(b, a).uniform_(-bound, bound).requires_grad_()
        c = torch.empty(b).uniform_(-bound, bound).requires_grad_()
        ps += [w, c]
    return ps


def batched_mlp(x, ps):
    """x [tasks, n, in]; ps per task: weights [tasks, out, in], biases [tasks, out]."""
    h = x
    for i in range(0, len(ps), 2):
        h = torch.baddbmm(ps[i + 1].unsqueeze(1), h, ps[i].transpose(1, 2))
        if i + 2 < len(ps):
            h = F.relu(h)
    return h


def maml_sinusoid(steps, second_order):
    theta = mlp_params([1, 40, 40, 1])
    opt = torch.optim.Adam(theta, lr=1e-3)
    tasks, k, lr = 25, 10, 0.01

    def step():
        xs, ys, xq, yq = sinusoid_batch(tasks, k)
        fast = [p.unsqueeze(0).expand(tasks, *p.shape) for p in theta]
        for _ in range(steps):
            # Each task's loss depends on its own slice only, so the
            # gradient of the sum is every task's gradient.
            loss = ((batched_mlp(xs, fast) - ys) ** 2).mean(dim=(1, 2)).sum()
            grads = torch.autograd.grad(loss, fast, create_graph=second_order)
            fast = [p - lr * g for p, g in zip(fast, grads)]
        query = ((batched_mlp(xq, fast) - yq) ** 2).mean()
        opt.zero_grad()
        query.backward()
        opt.step()

    return step


# --- Multi-task step: 32 inputs, a 32-128-128 ReLU trunk, two regression
# heads and a binary head, batch 256, Adam, equal weighting (the sum of
# the losses), as in BenchmarkMTLStep/weighting=ew.

def mtl_step():
    trunk = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU())
    heads = torch.nn.ModuleList([torch.nn.Linear(128, 1) for _ in range(3)])
    opt = torch.optim.Adam(list(trunk.parameters()) + list(heads.parameters()), lr=1e-3)
    x = torch.randn(256, 32)
    y1, y2 = torch.randn(256, 1), torch.randn(256, 1)
    y3 = (torch.rand(256, 1) > 0.5).float()

    def step():
        h = trunk(x)
        loss = F.mse_loss(heads[0](h), y1) + F.mse_loss(heads[1](h), y2) + F.binary_cross_entropy_with_logits(heads[2](h), y3)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


# --- MAML ConvNet: 5-way 1-shot, 15 query images per class, meta-batch 4,
# 28×28 inputs, four blocks of 3×3 convolution, batch normalisation (batch
# statistics), ReLU and 2×2 max pooling, inner step 0.4, one inner step,
# Adam, as in BenchmarkMAMLConvNet. Tasks run one after another, as in
# learn2learn.

def convnet_params(filters, ways=5, blocks=4, side=28):
    ps, cin = [], 1
    for _ in range(blocks):
        bound = 1 / math.sqrt(cin * 9)
        ps += [torch.empty(filters, cin, 3, 3).uniform_(-bound, bound).requires_grad_(),
               torch.empty(filters).uniform_(-bound, bound).requires_grad_(),
               torch.ones(filters).requires_grad_(), torch.zeros(filters).requires_grad_()]
        cin = filters
        side //= 2
    feats = filters * side * side
    bound = 1 / math.sqrt(feats)
    ps += [torch.empty(ways, feats).uniform_(-bound, bound).requires_grad_(),
           torch.empty(ways).uniform_(-bound, bound).requires_grad_()]
    return ps


def convnet(x, ps, blocks=4):
    h = x
    for b in range(blocks):
        w, c, g, s = ps[4 * b:4 * b + 4]
        h = F.conv2d(h, w, c, padding=1)
        h = F.batch_norm(h, None, None, g, s, training=True)
        h = F.max_pool2d(F.relu(h), 2)
    return F.linear(h.flatten(1), ps[-2], ps[-1])


def maml_convnet(filters, second_order):
    theta = convnet_params(filters)
    opt = torch.optim.Adam(theta, lr=1e-3)
    ways, query, tasks, lr = 5, 15, 4, 0.4
    xs, ys = torch.randn(tasks, ways, 1, 28, 28), torch.arange(ways).repeat(tasks, 1)
    xq, yq = torch.randn(tasks, ways * query, 1, 28, 28), torch.arange(ways).repeat_interleave(query).repeat(tasks, 1)

    def step():
        opt.zero_grad()
        for t in range(tasks):
            loss = F.cross_entropy(convnet(xs[t], theta), ys[t])
            grads = torch.autograd.grad(loss, theta, create_graph=second_order)
            fast = [p - lr * g for p, g in zip(theta, grads)]
            (F.cross_entropy(convnet(xq[t], fast), yq[t]) / tasks).backward()
        opt.step()

    return step


WORKLOADS = [
    ("BenchmarkMAMLSinusoid/order=second/steps=1", lambda: maml_sinusoid(1, True)),
    ("BenchmarkMAMLSinusoid/order=second/steps=5", lambda: maml_sinusoid(5, True)),
    ("BenchmarkMAMLSinusoid/order=first/steps=1", lambda: maml_sinusoid(1, False)),
    ("BenchmarkMAMLSinusoid/order=first/steps=5", lambda: maml_sinusoid(5, False)),
    ("BenchmarkMTLStep/weighting=ew", mtl_step),
    ("BenchmarkMAMLConvNet/filters=32/order=second", lambda: maml_convnet(32, True)),
    ("BenchmarkMAMLConvNet/filters=32/order=first", lambda: maml_convnet(32, False)),
]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-count", type=int, default=1, help="runs of each workload")
    ap.add_argument("-bench", default=".", help="regular expression of the workloads to run")
    ap.add_argument("-time", type=float, default=1.0, help="seconds per run")
    args = ap.parse_args()
    print("goos: linux\ngoarch: amd64\npkg: github.com/medusa-ml/medusa/bench")
    print(f"cpu: {cpu_name()}")  # as Go prints it, so that benchstat pairs the files
    print(f"# PyTorch {torch.__version__}, {torch.get_num_threads()} thread")
    pattern = re.compile(args.bench)
    for name, make in WORKLOADS:
        if not pattern.search(name):
            continue
        step = make()
        for _ in range(args.count):
            timeit(name, step, args.time)


if __name__ == "__main__":
    main()
