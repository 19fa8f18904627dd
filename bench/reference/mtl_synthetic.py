#!/usr/bin/python3
"""Multi-task learning on medusa's synthetic tables in PyTorch: the
reference beside the README's synthetic table, on the same rows.

Write the rows first (the tables "medusa mtl --seed 1" trains and tests
on), then train the README's setup: a 32-128-128 ReLU trunk, linear heads
for two regressions (MSE) and a binary classification (logistic loss),
equal weighting (the sum of the losses), batch 256 from a reshuffled
epoch, Adam 10⁻³, 2,000 steps, float32:

    go run ./bench/reference/mtldata /tmp/mtl
    /usr/bin/python3 bench/reference/mtl_synthetic.py /tmp/mtl [--seed 1]
"""

import argparse
import csv
import time

import torch
import torch.nn.functional as F


def load(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    header, data = rows[0], torch.tensor([[float(v) for v in r] for r in rows[1:]])
    feats = [i for i, h in enumerate(header) if h.startswith("x")]
    return data[:, feats], data[:, len(feats):], header[len(feats):]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    x, y, names = load(args.dir + "/train.csv")
    xt, yt, _ = load(args.dir + "/test.csv")
    trunk = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU())
    heads = torch.nn.ModuleList([torch.nn.Linear(128, 1) for _ in names])
    opt = torch.optim.Adam(list(trunk.parameters()) + list(heads.parameters()), lr=1e-3)
    binary = [set(torch.unique(y[:, k]).tolist()) <= {0.0, 1.0} for k in range(len(names))]

    def losses(xb, yb):
        h = trunk(xb)
        out = []
        for k, head in enumerate(heads):
            z = head(h)[:, 0]
            out.append(F.binary_cross_entropy_with_logits(z, yb[:, k]) if binary[k] else F.mse_loss(z, yb[:, k]))
        return out

    start, step = time.perf_counter(), 0
    while step < args.steps:
        for idx in torch.randperm(len(x)).split(256):
            if step == args.steps:
                break
            loss = sum(losses(x[idx], y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.1f} s")
    with torch.no_grad():
        h = trunk(xt)
        for k, (name, head) in enumerate(zip(names, heads)):
            z = head(h)[:, 0]
            if binary[k]:
                print(f"  {name}: accuracy {((z > 0).float() == yt[:, k]).float().mean().item():.4f}")
            else:
                print(f"  {name}: MSE {F.mse_loss(z, yt[:, k]).item():.4f}")


if __name__ == "__main__":
    main()
