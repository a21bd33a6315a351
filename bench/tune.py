"""Benchmark: LoRA tuning throughput (tokens/s) and achieved FLOP/s against a matmul peak measured in the
same process on the same machine.

    .venv/bin/python bench/tune.py [--steps 6] [--batch-size 4] [--model models/base]

FLOPs per trained token: 2N forward + 2N backward through activations (frozen weights need no weight
gradients; LoRA's own are negligible) = 4N, with N the base model's parameters. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

from hivelm.config import TuneConfig
from hivelm.models import load_causal_lm
from hivelm.stages.tune import PadCollator, add_lora, encode

POSTS = ["Cauliflower rice fried in butter with garlic is the best keto side for busy weeknights",
         "Long run done: 18 miles at easy pace, legs heavy but the last two felt strong",
         "Wearing the swimsuit I used to hide from. Nobody cared, and I had the best beach day",
         "Ate my fear food with my dietitian today. Shaky, proud, and it tasted like summer"]


def matmul_peak(size: int = 1024, repeats: int = 20) -> float:
    """Best-of fp32 GEMM FLOP/s on this machine (same threads as training)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    peak = matmul_peak()
    model, tokenizer = load_causal_lm(args.model)
    n_params = sum(p.numel() for p in model.parameters())
    model = add_lora(model, TuneConfig())
    model.train()
    records = [{"messages": [{"role": "system", "content": "You are a helpful assistant."},
                             {"role": "user", "content": "You belong to this online community. What would you post?"},
                             {"role": "assistant", "content": POSTS[i % len(POSTS)]}]} for i in range(args.batch_size)]
    batch = PadCollator(tokenizer.pad_token_id)([encode(r, tokenizer, 128) for r in records])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - started) / args.steps
    tokens = int(batch["attention_mask"].sum())
    achieved = 4 * n_params * tokens / seconds
    result = {"bench": "tune", "model": args.model, "batch_size": args.batch_size, "tokens_per_step": tokens,
              "seconds_per_step": seconds, "tokens_per_s": tokens / seconds, "achieved_flops": achieved,
              "matmul_peak_flops": peak, "fraction_of_peak": achieved / peak, "threads": torch.get_num_threads()}
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    print(f"LoRA step: {seconds:.2f} s for {tokens} tokens = {tokens / seconds:.0f} tokens/s, "
          f"{achieved / 1e9:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of peak")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
