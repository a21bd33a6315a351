"""Benchmark: LoRA tuning as time to a fixed eval loss, beside achieved FLOP/s against a matmul peak that is
measured between the training steps, at the model's own matmul shapes and at a large square one.

    .venv/bin/python bench/tune.py [--model models/base] [--community keto] [--batch-size 4] [--max-steps 40]
                                   [--eval-every 5] [--target-drop 0.5 | --target-loss L] [--threads 0]

Data: the community's demo posts (data/demo/posts.csv) as chat demonstrations (`hivelm.tokens.encode`, the stage's
own encoding), 16 held out for the eval loss, the rest trained on in seeded random batches with AdamW at
the demo's learning rate, linear warm-up, LoRA as `tune` configures it. The target is an eval loss fixed
before training (`--target-loss`, else the base model's own eval loss minus `--target-drop` nats: the same
for every lever, since no lever changes the base model or the data). Reported: steps and training seconds
(evaluations excluded) until the eval loss first reaches the target; a faster step that needs more steps is
no gain.

FLOPs per trained token: 2N forward + 2N backward through activations (frozen weights need no weight
gradients; LoRA's own are negligible) = 4N, with N the base model's parameters. The peak is timed after every
training step, so it sees the same machine state as the steps (other jobs on shared cores, frequency), at
three shapes: the attention projection ([tokens, d] @ [d, d]) and MLP up-projection ([tokens, d] @ [d, f])
of a training step, and a 2048 square. Step time, tokens/s and each peak are medians with min, max and
interquartile range. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from hivelm.config import TuneConfig
from hivelm.models import load_causal_lm, set_threads
from hivelm.stages.tune import PadCollator, add_lora
from hivelm.tokens import encode


def spread(values: list[float]) -> dict:
    """Median with min, max and interquartile range."""
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1], "q1": q[0], "q3": q[2],
            "n": len(ordered)}


def matmul_flops(a, b, repeats: int = 3) -> float:
    """Best-of-`repeats` FLOP/s of a @ b (fp32, the threads training uses)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] / best


def demonstrations(posts: list[str], community: str) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "You are a helpful assistant."},
                          {"role": "user", "content": f"You belong to the {community} online community. "
                                                      "What would you post?"},
                          {"role": "assistant", "content": post}]} for post in posts]


def main() -> None:
    import pandas as pd
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--posts", default="data/demo/posts.csv")
    parser.add_argument("--community", default="keto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--target-loss", type=float, default=None)
    parser.add_argument("--target-drop", type=float, default=0.5)
    parser.add_argument("--square", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_threads(args.threads)
    torch.manual_seed(args.seed)

    model, tokenizer = load_causal_lm(args.model)
    n_params = sum(p.numel() for p in model.parameters())
    hidden, ffn = model.config.hidden_size, model.config.intermediate_size
    model = add_lora(model, TuneConfig())
    table = pd.read_csv(args.posts, dtype=str, keep_default_na=False)
    posts = table.loc[table["community"] == args.community, "text"].tolist()
    encoded = [e for e in (encode(r, tokenizer, args.max_length) for r in demonstrations(posts, args.community)) if e]
    held_out, train = encoded[:16], encoded[16:]
    collate = PadCollator(tokenizer.pad_token_id)
    eval_batches = [collate(held_out[i:i + args.batch_size]) for i in range(0, len(held_out), args.batch_size)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate)
    warmup = max(1, args.max_steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed)).tolist()

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            total = [(model(**b).loss.item(), int((b["labels"] != -100).sum())) for b in eval_batches]
        model.train()
        return sum(loss * n for loss, n in total) / sum(n for _, n in total)

    def batch_at(step: int) -> dict:
        picks = [order[(step * args.batch_size + j) % len(order)] for j in range(args.batch_size)]
        return collate([train[i] for i in picks])

    tokens0 = int(batch_at(0)["attention_mask"].sum())
    shapes = {"attention_proj": (tokens0, hidden, hidden), "mlp_up": (tokens0, hidden, ffn),
              f"square_{args.square}": (args.square, args.square, args.square)}
    operands = {name: (torch.randn(m, k), torch.randn(k, n)) for name, (m, k, n) in shapes.items()}
    for a, b in operands.values():  # warm-up
        a @ b

    initial = eval_loss()
    target = args.target_loss if args.target_loss is not None else initial - args.target_drop
    model.train()
    step_s, step_tokens, peaks = [], [], {name: [] for name in shapes}
    curve = [{"step": 0, "train_s": 0.0, "eval_loss": initial}]
    reached = None
    for step in range(args.max_steps):
        batch = batch_at(step)
        started = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        step_s.append(time.perf_counter() - started)
        step_tokens.append(int(batch["attention_mask"].sum()))
        for name, (a, b) in operands.items():  # interleaved: the peak under the same conditions as the step
            peaks[name].append(matmul_flops(a, b))
        if (step + 1) % args.eval_every == 0:
            point = {"step": step + 1, "train_s": sum(step_s), "eval_loss": eval_loss()}
            curve.append(point)
            if reached is None and point["eval_loss"] <= target:
                reached = point
                break

    achieved = [4 * n_params * t / s for t, s in zip(step_tokens, step_s)]
    peak = {name: spread(values) for name, values in peaks.items()}
    achieved_median = statistics.median(achieved)
    result = {
        "bench": "tune", "model": args.model, "community": args.community, "batch_size": args.batch_size,
        "threads": torch.get_num_threads(), "initial_eval_loss": initial, "target_eval_loss": target,
        "steps_to_target": reached["step"] if reached else None,
        "seconds_to_target": reached["train_s"] if reached else None, "eval_curve": curve,
        "seconds_per_step": spread(step_s), "tokens_per_s": spread([t / s for t, s in zip(step_tokens, step_s)]),
        "achieved_flops": spread(achieved), "matmul_peak_flops": peak,
        "fraction_of_peak": {name: achieved_median / p["median"] for name, p in peak.items()},
    }
    if reached:
        print(f"eval loss {initial:.3f} -> {reached['eval_loss']:.3f} (target {target:.3f}) in {reached['step']} "
              f"steps, {reached['train_s']:.1f} s of training")
    else:
        print(f"eval loss {initial:.3f} -> {curve[-1]['eval_loss']:.3f}: target {target:.3f} not reached in "
              f"{args.max_steps} steps")
    s = result["seconds_per_step"]
    print(f"step: median {s['median']:.2f} s [{s['min']:.2f}, {s['max']:.2f}], "
          f"{result['tokens_per_s']['median']:.0f} tokens/s, {achieved_median / 1e9:.1f} GFLOP/s")
    for name, p in peak.items():
        print(f"peak {name} {shapes[name]}: median {p['median'] / 1e9:.1f} GFLOP/s "
              f"[IQR {p['q1'] / 1e9:.1f}-{p['q3'] / 1e9:.1f}, min {p['min'] / 1e9:.1f}, max {p['max'] / 1e9:.1f}]"
              f" -> step at {100 * result['fraction_of_peak'][name]:.0f}%")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
