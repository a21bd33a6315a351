"""Benchmark: attribution by adapter likelihood, the stage's path vs slower equivalent ones, same model, adapters
and posts.

    .venv/bin/python bench/attribute.py [--model models/base] [--communities 4] [--posts 48] [--batch-size 16]
                                        [--threads 0]

Scores every post under every adapter and the base model after each community's prompt (the attribute
stage's `score`: 2 x communities forward passes per post) four ways: the stage's (batches of `--batch-size`
continuing from the community prompt's cached keys and values), the same with each adapter's and the base
model's sequences in mixed-adapter batches (`attribute.mixed_adapters`), batches that recompute the prompt for
every post, and one full post per forward pass. All must agree to 1e-5 (right padding is masked and causal attention
never looks right); prints each wall time and the ratios, the last line JSON. Uses models/base when present (the
embedded SmolLM2 after `hivelm base_model`), else builds the tests' tiny random Llama; the adapters are
random LoRA weights (not zero, so they change the likelihoods), as many as `--communities`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

POSTS = ["Cauliflower rice fried in butter with garlic is the best keto side for busy weeknights",
         "Long run done: 18 miles at easy pace, legs heavy but the last two felt strong",
         "Wearing the swimsuit I used to hide from. Nobody cared, and I had the best beach day",
         "Ate my fear food with my dietitian today. Shaky, proud, and it tasted like summer",
         "Meal prep sunday",
         "Tempo run, then hill repeats, then a very long nap. Marathon training is a lifestyle I did not expect"]
NAMES = ["keto cooking", "distance running", "body positivity", "eating disorder recovery support",
         "gardening", "board games", "birdwatching", "home baking"]


def random_adapter(base: Path, out: Path, seed: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM", init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--communities", type=int, default=4)
    parser.add_argument("--posts", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="hivelm-bench-attribute-"))
    try:
        run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(args, scratch: Path) -> None:
    import numpy as np

    from hivelm.config import BaseModelConfig, InstructConfig
    from hivelm.models import load_with_adapters
    from hivelm.stages.attribute import score, scoring_template

    model_dir = Path(args.model)
    if not (model_dir / "config.json").is_file():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny_model import build_tiny_model

        model_dir = build_tiny_model(scratch / "tiny")
    communities = {f"c{i}": NAMES[i % len(NAMES)] for i in range(args.communities)}
    adapters = {}
    for seed, key in enumerate(communities):
        adapters[key] = scratch / key
        random_adapter(model_dir, adapters[key], seed)
    model, tokenizer = load_with_adapters(BaseModelConfig(num_threads=args.threads), adapters, model_dir)
    instruct = InstructConfig()
    template = scoring_template(instruct.templates, None)
    posts = [POSTS[i % len(POSTS)] + ("" if i < len(POSTS) else f" ({i})") for i in range(args.posts)]

    def timed(batch_size: int, share_prefix: bool, mixed: bool = False) -> tuple[float, dict]:
        started = time.perf_counter()
        scored = score(model, tokenizer, posts, communities, instruct.system_prompt, template, args.max_length,
                       batch_size, share_prefix=share_prefix, mixed=mixed)
        return time.perf_counter() - started, scored

    timed(args.batch_size, True)  # warm-up
    # shared cores: each batched mode best of 2, interleaved
    shared_s, shared = timed(args.batch_size, True)
    mixed_s, mixed = timed(args.batch_size, True, mixed=True)
    full_s, full = timed(args.batch_size, False)
    single_s, single = timed(1, False)
    shared_s = min(shared_s, timed(args.batch_size, True)[0])
    mixed_s = min(mixed_s, timed(args.batch_size, True, mixed=True)[0])
    full_s = min(full_s, timed(args.batch_size, False)[0])
    gap = float(max(np.abs(other[k] - single[k]).max() for other in (shared, mixed, full)
                    for k in ("adapter", "base", "gain")))
    passes = 2 * len(communities) * len(posts)
    result = {"bench": "attribute", "model": str(model_dir), "communities": len(communities), "posts": len(posts),
              "forward_sequences": passes, "batch_size": args.batch_size, "batched_s": shared_s,
              "batched_full_prompt_s": full_s, "one_at_a_time_s": single_s, "mixed_adapter_batches_s": mixed_s,
              "mixed_speedup": shared_s / mixed_s,
              "prefix_speedup": full_s / shared_s, "speedup": single_s / shared_s, "max_abs_difference": gap,
              "same_to_1e-5": gap <= 1e-5, "posts_per_s_batched": len(posts) / shared_s}
    print(f"{len(posts)} posts x {len(communities)} communities ({passes} scored sequences): stage path "
          f"{shared_s:.2f} s, prompt recomputed per post {full_s:.2f} s ({result['prefix_speedup']:.2f}x), one at a "
          f"time {single_s:.2f} s ({result['speedup']:.1f}x), adapter and base in mixed batches {mixed_s:.2f} s "
          f"({result['mixed_speedup']:.2f}x); largest difference {gap:.2e}")
    print(json.dumps(result))
    if gap > 1e-5:
        sys.exit(f"the stage's scores and one-at-a-time ones differ by {gap:.2e} > 1e-5")


if __name__ == "__main__":
    main()
