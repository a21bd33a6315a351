"""Benchmark for the text scorers (not a test): batched vs one text at a time, in one process.

    .venv/bin/python bench/evaluate.py [--posts 256] [--batch-size 32] [--threads 0] [--seed 0]

Scores the same seeded synthetic posts (5 to 80 words; benign, emotional and insulting words mixed) with the
embedder (embedded MiniLM), the jigsaw_bilstm toxicity scorer and the NRC emotion scorer, first in batches of
the default size, then one `score([text])` call per post, and checks that both give the same numbers. Prints
texts/s of each and the ratio per scorer; the last line is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from hivelm.config import ScorersConfig
from hivelm.scorers.embed import make_embedder
from hivelm.scorers.emotion import make_emotion_scorer
from hivelm.scorers.toxicity import make_toxicity_scorer

WORDS = ["today", "i", "made", "a", "keto", "dinner", "with", "salmon", "and", "butter", "then", "went",
         "for", "a", "long", "run", "by", "the", "lake", "my", "legs", "feel", "great", "thanks", "everyone",
         "for", "the", "support", "happy", "proud", "grateful", "tired", "sad", "cried", "lonely", "afraid",
         "angry", "hope", "love", "joy", "you", "are", "an", "idiot", "stupid", "pathetic", "shut", "up",
         "worthless", "recipe", "week", "plan", "meal", "therapy", "progress", "the", "of", "to", "and",
         "is", "was", "it", "for", "on", "with"]


def synthetic_posts(n: int, seed: int) -> list[str]:
    """n posts of 5-80 words drawn uniformly from WORDS (seeded), so lengths vary as in real corpora."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 81)))) for _ in range(n)]


def as_matrix(result) -> np.ndarray:
    """Any scorer's output as (n, k), NaN kept (a dict of labels becomes columns)."""
    if isinstance(result, dict):
        return np.column_stack(list(result.values()))
    return np.asarray(result, dtype=np.float64)


def run(name: str, scorer, posts: list[str]) -> dict:
    scorer.score(posts[:4])  # not timed: first-call set-up (thread pools, lazy imports)
    start = time.perf_counter()
    batched = as_matrix(scorer.score(posts))
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    single = np.vstack([as_matrix(scorer.score([text])) for text in posts])
    single_s = time.perf_counter() - start
    same = bool(np.allclose(batched, single, atol=1e-5, equal_nan=True))
    figures = {"batched_texts_per_s": round(len(posts) / batched_s, 1),
               "single_texts_per_s": round(len(posts) / single_s, 1),
               "speedup": round(single_s / batched_s, 2), "same_results": same, "info": scorer.info}
    print(f"{name:9s} batched {figures['batched_texts_per_s']:9.1f} texts/s   one at a time "
          f"{figures['single_texts_per_s']:9.1f} texts/s   ratio {figures['speedup']:6.2f}x   "
          f"results {'identical' if same else 'DIFFER'}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=ScorersConfig().batch_size)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default); on shared "
                        "cores 1 can beat 2 (measured with this script)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)

    cfg = ScorersConfig(batch_size=args.batch_size)
    posts = synthetic_posts(args.posts, args.seed)
    results = {}
    for name, make in (("embedder", make_embedder), ("toxicity", make_toxicity_scorer),
                       ("emotion", make_emotion_scorer)):
        results[name] = run(name, make(cfg), posts)
    print(json.dumps({"posts": len(posts), "batch_size": cfg.batch_size, "device": cfg.device,
                      "mean_words": round(float(np.mean([len(p.split()) for p in posts])), 1),
                      "scorers": results, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                      "python": platform.python_version()}))


if __name__ == "__main__":
    main()
