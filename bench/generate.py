"""Benchmark: batched vs one-at-a-time generation with HiveLM's own sampling code, in one process, against the
compute limit the same run measures.

    .venv/bin/python bench/generate.py [--prompts 16] [--batch-size 16] [--max-new-tokens 32] [--model models/base]
                                       [--dtype float32] [--context-posts 0] [--batched-only] [--mixed]

Prints tokens/s of each mode and their ratio; the last line is JSON. `--context-posts K` puts K made-up posts of
20 words before each prompt, as the in_context corpus does (generate.in_context.k; the preset's 20 make prompts of
about 600 tokens). Needs models/base (`hivelm base_model`).
`--mixed` also times the generate stage's two ways of sampling a finetuned and an untuned corpus from one base
(a random LoRA adapter): one corpus after the other, and both in mixed-adapter batches (`generate.mixed_adapters`).

Compute limit: the best torch.mm rate (GFLOP/s in `--dtype`, the dtype the model runs in) at the model's own shapes, (batch x prompt tokens,
hidden) @ (hidden, hidden | intermediate | vocab), measured in this process beside the generation. A generated
token costs 2 x the matmul parameters (every linear layer and the output head; the embedding lookup is not a
matmul) + 4 x layers x attention width x context FLOPs (scores and weighted values over the context so far;
Kaplan et al. 2020, https://arxiv.org/abs/2001.08361, table 1). `limit_ratio` = batched tokens/s x FLOPs per
token / limit; prompt processing and the rows that already stopped are not counted, so it is a lower bound.
`limit_ratio_with_prompts` also counts the prompts' tokens (unpadded), which the same forward passes process.
`matmul_at_decode_rows` times the same shapes with one row per sequence, as a decoding step multiplies them.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from hivelm.chat import render_chat
from hivelm.config import DecodingConfig, InContextConfig
from hivelm.generation import in_context_prompt, sample_texts
from hivelm.models import load_causal_lm
from hivelm.rng import keyed_rng

TOPICS = ["breakfast", "a hard week", "advice for beginners", "the weekend", "motivation", "something I learned"]


def prompts(n: int, context_posts: int = 0) -> list[dict]:
    """`n` persona prompts; with `context_posts`, each behind the in_context corpus's block of that many made-up
    posts (generation.in_context_prompt, 20 words each, a fresh seeded draw per prompt)."""
    post = ("just finished meal prep for the week and honestly it feels good to have a plan, "
            "eggs and greens and a bit of cheese every morning")  # 23 words, cut to 20 below
    pool = [f"day {j}: {post}" for j in range(2 * context_posts)]
    cfg = InContextConfig(k=max(context_posts, 1), words=20)
    blocks = [in_context_prompt(pool, cfg, "keto cooking", keyed_rng(0, "bench", str(i)))[0] if context_posts else ""
              for i in range(n)]
    return [{"system": "You are a helpful assistant.",
             "prompt": blocks[i] + f"You belong to the keto cooking online community. What would you post about "
                       f"{TOPICS[i % len(TOPICS)]}?" + " Keep it short." * (i % 3)} for i in range(n)]


def timed(model, tokenizer, items, cfg) -> tuple[float, int]:
    started = time.perf_counter()
    _, tokens = sample_texts(model, tokenizer, items, cfg, seed=0)
    return time.perf_counter() - started, tokens


def matmul_gflops(m: int, k: int, n: int, dtype: str = "float32", seconds: float = 0.3) -> float:
    """GFLOP/s of torch.mm for (m, k) @ (k, n) in `dtype`, best of repeated timings over about `seconds`."""
    import torch

    a, b = torch.randn(m, k, dtype=getattr(torch, dtype)), torch.randn(k, n, dtype=getattr(torch, dtype))
    torch.mm(a, b)  # warm-up
    best, spent = float("inf"), 0.0
    while spent < seconds:
        started = time.perf_counter()
        torch.mm(a, b)
        took = time.perf_counter() - started
        best, spent = min(best, took), spent + took
    return 2 * m * k * n / best / 1e9


def compute_limit(config, rows: int, dtype: str = "float32") -> dict:
    """The best matmul rate at the model's shapes with `rows` rows (batch x prompt tokens)."""
    shapes = {"hidden": (config.hidden_size, config.hidden_size),
              "intermediate": (config.hidden_size, config.intermediate_size),
              "vocab": (config.hidden_size, config.vocab_size)}
    rates = {name: matmul_gflops(rows, k, n, dtype) for name, (k, n) in shapes.items()}
    return {"rows": rows, "gflops_by_shape": rates, "limit_gflops": max(rates.values())}


def flops_per_token(model, context: float) -> float:
    """2 x matmul parameters + attention over `context` tokens (module docstring)."""
    import torch

    config = model.config
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 4 * config.num_hidden_layers * config.num_attention_heads * head_dim * context
    return 2 * matmul + attention


def mixed_timings(model_dir: str, items: list[dict], cfg) -> dict:
    """Seconds for a finetuned and an untuned corpus of `items`: one after the other vs in mixed batches."""
    import tempfile
    from pathlib import Path

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from hivelm.config import BaseModelConfig, GenerateConfig
    from hivelm.models import load_with_adapter
    from hivelm.stages.generate import sample_corpora

    with tempfile.TemporaryDirectory() as scratch:
        torch.manual_seed(0)
        lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                          init_lora_weights=False)
        get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), lora).save_pretrained(Path(scratch) / "a")
        model, tokenizer = load_with_adapter(BaseModelConfig(), Path(scratch) / "a", model_dir)
    prompts = {"finetuned": items, "untuned": items}
    seconds = {}
    for mixed in (False, True, False, True):  # interleaved, best of 2: the cores are shared
        gen = GenerateConfig(decoding=cfg, mixed_adapters=mixed)
        started = time.perf_counter()
        sample_corpora(model, tokenizer, prompts, gen)
        took = time.perf_counter() - started
        key = "mixed_s" if mixed else "one_corpus_at_a_time_s"
        seconds[key] = min(seconds.get(key, float("inf")), took)
    return seconds | {"mixed_speedup": seconds["one_corpus_at_a_time_s"] / seconds["mixed_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="weights and matmul-limit dtype (base_model.dtype; bfloat16 needs a CPU with bf16 matmul)")
    parser.add_argument("--context-posts", type=int, default=0, help="made-up posts before each prompt (in_context)")
    parser.add_argument("--batched-only", action="store_true", help="skip the one-at-a-time pass (long prompts)")
    parser.add_argument("--mixed", action="store_true", help="also time mixed-adapter batches (random adapter)")
    args = parser.parse_args()
    model, tokenizer = load_causal_lm(args.model, dtype=args.dtype)
    items = prompts(args.prompts, args.context_posts)
    cfg = DecodingConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    timed(model, tokenizer, items[:2], replace(cfg, max_new_tokens=4))  # warm-up
    batched_s, batched_tokens = timed(model, tokenizer, items, cfg)
    single = None if args.batched_only else timed(model, tokenizer, items, replace(cfg, batch_size=1))
    prompt_tokens = [len(tokenizer(render_chat(tokenizer, p["system"], p["prompt"]), add_special_tokens=False)["input_ids"])
                     for p in items]  # as sample_texts encodes them
    per_row = batched_tokens / len(items)
    per_token = flops_per_token(model, sum(prompt_tokens) / len(items) + per_row / 2)
    limit = compute_limit(model.config, min(args.batch_size, len(items)) * max(prompt_tokens), args.dtype)
    # the same shapes with one row per sequence, as each decoding step multiplies: how far below the limit
    # a step's matmuls run by themselves
    decode = compute_limit(model.config, min(args.batch_size, len(items)), args.dtype)
    result = {
        "bench": "generate", "model": args.model, "prompts": args.prompts, "max_new_tokens": args.max_new_tokens,
        "context_posts": args.context_posts,
        "batch_size": args.batch_size, "dtype": args.dtype, "batched_tokens_per_s": batched_tokens / batched_s,
        "single_tokens_per_s": single[1] / single[0] if single else None,
        "gflops_per_token": per_token / 1e9, "matmul_limit": limit, "matmul_at_decode_rows": decode,
    }
    result["speedup"] = result["batched_tokens_per_s"] / result["single_tokens_per_s"] if single else None
    result["achieved_gflops"] = result["batched_tokens_per_s"] * per_token / 1e9
    result["limit_ratio"] = result["achieved_gflops"] / limit["limit_gflops"]
    prompt_gflops = sum(n * flops_per_token(model, n / 2) for n in prompt_tokens) / 1e9
    result["limit_ratio_with_prompts"] = (result["achieved_gflops"] + prompt_gflops / batched_s) / limit["limit_gflops"]
    if args.mixed:
        result["mixed_adapters"] = mixed_timings(args.model, items, cfg)
    print(f"batched (batch {args.batch_size}): {batched_tokens} tokens in {batched_s:.1f} s = "
          f"{result['batched_tokens_per_s']:.1f} tokens/s")
    if single:
        print(f"one at a time: {single[1]} tokens in {single[0]:.1f} s = {result['single_tokens_per_s']:.1f} tokens/s")
        print(f"speedup: {result['speedup']:.2f}x")
    print(f"compute: {result['gflops_per_token']:.3f} GFLOP per token, {result['achieved_gflops']:.1f} GFLOP/s achieved "
          f"batched, matmul limit {limit['limit_gflops']:.1f} GFLOP/s at the model's shapes: "
          f"{100 * result['limit_ratio']:.0f}% of the limit, {100 * result['limit_ratio_with_prompts']:.0f}% with the "
          f"prompts' tokens counted (matmuls of one decoding step alone: {decode['limit_gflops']:.1f} GFLOP/s)")
    if args.mixed:
        mixed = result["mixed_adapters"]
        print(f"finetuned + untuned corpora: one after the other {mixed['one_corpus_at_a_time_s']:.1f} s, mixed-adapter "
              f"batches {mixed['mixed_s']:.1f} s ({mixed['mixed_speedup']:.2f}x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
