"""Benchmark: batched vs one-at-a-time generation with HiveLM's own sampling code, in one process.

    .venv/bin/python bench/generate.py [--prompts 16] [--batch-size 16] [--max-new-tokens 32] [--model models/base]

Prints tokens/s of each mode and their ratio; the last line is JSON. Needs models/base (`hivelm base_model`).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from hivelm.config import DecodingConfig
from hivelm.generation import sample_texts
from hivelm.models import load_causal_lm

TOPICS = ["breakfast", "a hard week", "advice for beginners", "the weekend", "motivation", "something I learned"]


def prompts(n: int) -> list[dict]:
    return [{"system": "You are a helpful assistant.",
             "prompt": f"You belong to the keto cooking online community. What would you post about "
                       f"{TOPICS[i % len(TOPICS)]}?" + " Keep it short." * (i % 3)} for i in range(n)]


def timed(model, tokenizer, items, cfg) -> tuple[float, int]:
    started = time.perf_counter()
    _, tokens = sample_texts(model, tokenizer, items, cfg, seed=0)
    return time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    model, tokenizer = load_causal_lm(args.model)
    items = prompts(args.prompts)
    cfg = DecodingConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    timed(model, tokenizer, items[:2], replace(cfg, max_new_tokens=4))  # warm-up
    batched_s, batched_tokens = timed(model, tokenizer, items, cfg)
    single_s, single_tokens = timed(model, tokenizer, items, replace(cfg, batch_size=1))
    result = {
        "bench": "generate", "model": args.model, "prompts": args.prompts, "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "batched_tokens_per_s": batched_tokens / batched_s,
        "single_tokens_per_s": single_tokens / single_s,
    }
    result["speedup"] = result["batched_tokens_per_s"] / result["single_tokens_per_s"]
    print(f"batched (batch {args.batch_size}): {batched_tokens} tokens in {batched_s:.1f} s = "
          f"{result['batched_tokens_per_s']:.1f} tokens/s")
    print(f"one at a time: {single_tokens} tokens in {single_s:.1f} s = {result['single_tokens_per_s']:.1f} tokens/s")
    print(f"speedup: {result['speedup']:.2f}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
