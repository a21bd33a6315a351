"""Benchmark for `hivelm.leakage.leaked` (not a test): indexed prefilter vs a plain all-pairs loop.

Synthetic short posts (seeded; Zipf-like vocabulary; 10-50 tokens), with some generated posts that copy or
nearly copy a reference so the exact LCS path is exercised too. Usage:

    .venv/bin/python bench/leakage.py [--small 300x1000] [--large 27000x10000] [--threshold 0.7]

Prints human-readable lines, then one JSON line with the figures last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from hivelm import leakage


def synthetic_posts(n: int, rng: np.random.Generator, vocab_size: int = 3000,
                    zipf_s: float = 1.05) -> list[str]:
    """n posts of 10-50 words drawn from a Zipf-like (rank^-s) vocabulary, so "the"-like words repeat."""
    weights = 1.0 / np.arange(1, vocab_size + 1) ** zipf_s
    weights /= weights.sum()
    lengths = rng.integers(10, 51, size=n)
    words = rng.choice(vocab_size, size=int(lengths.sum()), p=weights)
    posts, start = [], 0
    for length in lengths.tolist():
        posts.append(" ".join(f"w{w}" for w in words[start:start + length].tolist()))
        start += length
    return posts


def with_copies(generated: list[str], references: list[str], fraction: float,
                rng: np.random.Generator) -> list[str]:
    """Replace `fraction` of the generated posts by references with 0-3 words changed or a prefix added."""
    generated = list(generated)
    for i in rng.choice(len(generated), size=int(fraction * len(generated)), replace=False).tolist():
        words = references[int(rng.integers(len(references)))].split()
        for _ in range(int(rng.integers(0, 4))):
            words[int(rng.integers(len(words)))] = f"x{int(rng.integers(1000))}"
        if rng.random() < 0.3:
            words = ["so", "today"] + words
        generated[i] = " ".join(words)
    return generated


def all_pairs(generated: list[str], references: list[str], threshold: float) -> list[bool]:
    """The computation `leaked` replaces: ROUGE-L F of every pair, max per generated post."""
    refs = [leakage.rouge_tokens(r) for r in references]
    flags = []
    for text in generated:
        tokens = leakage.rouge_tokens(text)
        flags.append(max(leakage.rouge_l_f(tokens, r) for r in refs) > threshold)
    return flags


def corpus(n_gen: int, n_ref: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    references = synthetic_posts(n_ref, rng)
    generated = with_copies(synthetic_posts(n_gen, rng), references, 0.02, rng)
    return generated, references


def size(text: str) -> tuple[int, int]:
    n_gen, n_ref = text.lower().split("x")
    return int(n_gen), int(n_ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=size, default=(300, 1000))
    parser.add_argument("--large", type=size, default=(27000, 10000))
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t = args.threshold

    leakage.leaked(["warm up"], ["imports of numpy and scipy.sparse"], t)   # not timed: one-off imports
    gen, ref = corpus(*args.small, seed=args.seed)
    start = time.perf_counter()
    indexed = leakage.leaked(gen, ref, t)
    indexed_s = time.perf_counter() - start
    start = time.perf_counter()
    brute = all_pairs(gen, ref, t)
    brute_s = time.perf_counter() - start
    assert indexed == brute, "indexed leaked() disagrees with the all-pairs loop"
    small_pairs = len(gen) * len(ref)
    print(f"small {len(gen)}x{len(ref)}: indexed {indexed_s:.3f}s, all-pairs {brute_s:.2f}s "
          f"({small_pairs / brute_s:,.0f} pairs/s), speed-up {brute_s / indexed_s:.0f}x, "
          f"{sum(indexed)} leaked, results identical")

    gen, ref = corpus(*args.large, seed=args.seed + 1)
    start = time.perf_counter()
    flags = leakage.leaked(gen, ref, t)
    large_s = time.perf_counter() - start
    large_pairs = len(gen) * len(ref)
    estimate_s = large_pairs / (small_pairs / brute_s)
    print(f"large {len(gen)}x{len(ref)}: indexed {large_s:.1f}s, {large_pairs / large_s:,.0f} pairs/s, "
          f"{sum(flags)} leaked; all-pairs at the small rate would take ~{estimate_s:,.0f}s")
    print(json.dumps({
        "threshold": t,
        "small": {"generated": args.small[0], "references": args.small[1], "indexed_s": round(indexed_s, 4),
                  "all_pairs_s": round(brute_s, 3), "speedup": round(brute_s / indexed_s, 1),
                  "identical": True, "leaked": sum(indexed)},
        "large": {"generated": len(gen), "references": len(ref), "indexed_s": round(large_s, 2),
                  "pairs_per_s": round(large_pairs / large_s), "leaked": sum(flags),
                  "all_pairs_estimate_s": round(estimate_s)},
        "cpus": os.cpu_count(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
