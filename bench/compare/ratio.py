#!/usr/bin/python3
"""Prints a Markdown table of the median time per operation of each
benchmark in two files of Go benchmark lines (PyTorch's, then medusa's)
and their ratio: how many times faster medusa is.

    /usr/bin/python3 bench/compare/ratio.py torch.txt medusa.txt
"""

import re
import statistics
import sys

LINE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:.*?\s([\d.]+) allocs/op)?")


def read(path):
    times, allocs = {}, {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            times.setdefault(m[1], []).append(float(m[2]))
            if m[3]:
                allocs.setdefault(m[1], []).append(float(m[3]))
    return times, allocs


def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main():
    torch, _ = read(sys.argv[1])
    medusa, allocs = read(sys.argv[2])
    print("| workload | medusa | PyTorch | PyTorch / medusa | medusa allocs/op | runs |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in torch:
        if name not in medusa:
            continue
        t, m = statistics.median(torch[name]), statistics.median(medusa[name])
        a = f"{statistics.median(allocs[name]):,.0f}" if name in allocs else ""
        print(f"| {name.removeprefix('Benchmark')} | {fmt(m)} | {fmt(t)} | {t / m:.2f}× | {a} | {min(len(torch[name]), len(medusa[name]))} |")


if __name__ == "__main__":
    main()
