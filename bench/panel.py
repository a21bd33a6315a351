"""Benchmark: the panel's one question to every model, in mixed-adapter batches vs one model after the other.

    .venv/bin/python bench/panel.py [--params params.yaml] [--samples 3] [--max-new-tokens 48] [--rounds 2]

Loads the panel as `hivelm panel` does (hivelm.panel.load_panel: the project's base model with every community's
adapter attached; run `make repro` first) and asks it one free question with `--samples` answers per model,
interleaving the two ways `Panel.sample` can answer: every column's prompts in one stream of mixed-adapter
batches (the panel's default) and one column after the other. The answers must be equal (each prompt keeps its
own random stream); prints the best wall time of each over `--rounds` and their ratio, the last line JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

QUESTION = "What would you tell someone who is new here?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--samples", type=int, default=3, help="answers per model (the page's default: "
                                                                "generate.samples_per_topic)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from hivelm.config import load_config
    from hivelm.panel import load_panel

    board = load_panel(load_config(args.params))
    settings = replace(board.defaults(""), samples=args.samples, max_new_tokens=args.max_new_tokens)
    seconds: dict[str, list[float]] = {"mixed": [], "one_model_at_a_time": []}
    answers = {}
    for _ in range(args.rounds):
        for mode in seconds:  # interleaved: the cores may be shared
            board.mixed = mode == "mixed"
            started = time.perf_counter()
            answers[mode] = [a.answers for a in board.ask(QUESTION, "", settings)]
            seconds[mode].append(time.perf_counter() - started)
    if answers["mixed"] != answers["one_model_at_a_time"]:
        raise SystemExit("mixed-adapter batches gave other answers than one model at a time")
    best = {mode: min(times) for mode, times in seconds.items()}
    result = {"models": len(board.present) + 1, "samples_per_model": args.samples,
              "max_new_tokens": args.max_new_tokens, "batch_size": board.cfg.generate.decoding.batch_size,
              "seconds": best, "speedup": best["one_model_at_a_time"] / best["mixed"], "answers_equal": True}
    print(f"{result['models']} models x {args.samples} answers: one model at a time "
          f"{best['one_model_at_a_time']:.1f} s, mixed-adapter batches {best['mixed']:.1f} s "
          f"({result['speedup']:.2f}x), answers equal")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
