"""GPU check: HiveLM's GPU paths run for real on random-weight Llama models built in-process (no downloads).

    .venv/bin/python bench/gpu_check.py --out reports/gpu/h100.json            # on the GPU machine
    .venv/bin/python bench/gpu_check.py --device cpu --sizes tiny --steps 2   # anywhere (tests/test_gpu_check.py)

Per model size (`--sizes`, from SIZES: `tiny` for correctness, `1b` near a billion parameters for throughput)
it saves a random model with the tests' byte-level tokenizer and then runs the project's own code on it:
  - tune: `stages.tune.train_adapter` for `--steps` steps (LoRA; bf16 weights and bf16 mixed precision on
    CUDA; sdpa attention), then again with QLoRA 4-bit when the device is CUDA and bitsandbytes imports (else
    the JSON says why not);
  - generate: `generation.sample_texts`, one batched run with the adapter on;
  - loglik: survey option scores (`survey.answers.option_logprobs`, SWED items x personas) and attribute
    log-likelihoods under the adapter and the base (`stages.attribute.score`, i.e. `models.mean_logliks`);
  - on `tiny`, the same loglik scores recomputed in float32 on the CPU: the largest differences must stay
    within TOLERANCE for the run's dtype;
  - fork safety: `processes.serves` must say no stage server when the device is not the CPU, and no fork
    may happen while CUDA is initialised (a hook on every os.fork in this process counts them).
Reported per size: training, generation and loglik tokens/s and peak memory (torch's peak allocation on
CUDA; on CPU the process's peak RSS so far). Token counts: training counts every input token (the
demonstrations fill `--max-length`, so nothing is padding); generation counts new tokens up to end of turn;
loglik counts every scored sequence whole (prompt + reply), although shared prompts are computed once. The
first training step (kernel warm-up) is left out of the training rate. The last line of stdout is the JSON;
exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Real Llama-family shapes (each model's config.json on the Hugging Face hub); `tiny` is the tests' model.
SIZES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, tie_word_embeddings=True, initializer_range=0.2),
    # HuggingFaceTB/SmolLM2-135M-Instruct: the demo's base model
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0),
    # meta-llama/Llama-3.2-1B (1.24e9 parameters; its llama3 rope scaling only matters past 8k tokens)
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0),
    # meta-llama/Meta-Llama-3-8B: the paper's base model (docs/scaling.md)
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False, rope_theta=500000.0),
}
# Largest |difference| in nats (mean log-probability per token) from float32 on the CPU. float32 on another
# device differs by summation order only. bfloat16 keeps 8 significant bits (relative spacing 2^-7): on `tiny`
# (whose large random weights give large logits), bfloat16 on the CPU differed from float32 by up to 0.067
# nats over 261 survey and 64 attribute sequences (--dtype bfloat16 --personas 3 --posts 32); the tolerance
# leaves twice that for other kernels. float16 has 3 more bits, so an eighth of it.
TOLERANCE = {"float32": 1e-3, "bfloat16": 0.15, "float16": 0.02}
COMPARED_SIZE = "tiny"
FORKS = {"forks": 0, "forks_with_cuda_initialized": 0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda | cuda:N | cpu (default: cuda when available)")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on the CPU")
    parser.add_argument("--sizes", default="tiny,1b", help=f"comma-separated, of {sorted(SIZES)}")
    parser.add_argument("--steps", type=int, default=10, help="training steps per tuning run")
    parser.add_argument("--batch-size", type=int, default=16, help="demonstrations per training step")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per demonstration")
    parser.add_argument("--prompts", type=int, default=64, help="generation prompts")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--gen-batch-size", type=int, default=64)
    parser.add_argument("--items", type=int, default=0, help="SWED items scored (0 = all)")
    parser.add_argument("--personas", type=int, default=2)
    parser.add_argument("--posts", type=int, default=64, help="posts attribute scores")
    parser.add_argument("--loglik-batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--no-qlora", action="store_true", help="skip the QLoRA run")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if unknown := [s for s in args.sizes if s not in SIZES]:
        parser.error(f"--sizes: unknown {unknown}; known: {sorted(SIZES)}")
    return args


# --- fork safety ----------------------------------------------------------------------------------------------

def _before_fork() -> None:
    """Runs in this process before every os.fork (multiprocessing's too). In the child, torch reports CUDA
    as not initialised (it marks a "bad fork" instead), so the parent's state is what must be checked."""
    FORKS["forks"] += 1
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        FORKS["forks_with_cuda_initialized"] += 1


def watch_forks() -> None:
    if not getattr(watch_forks, "done", False):
        os.register_at_fork(before=_before_fork)
        watch_forks.done = True


def fork_safety(cfg, device: str) -> dict:
    from hivelm import pipeline, processes

    serves = processes.serves(pipeline.model_devices(cfg))
    checks = {"stage_server": serves, "forks": FORKS["forks"],
              "forks_with_cuda_initialized": FORKS["forks_with_cuda_initialized"]}
    return checks | {"ok": FORKS["forks_with_cuda_initialized"] == 0 and (device == "cpu" or not serves)}


# --- models and data ------------------------------------------------------------------------------------------

def build_model(size: str, tokenizer, path: Path) -> int:
    """Save a random Llama of shape SIZES[size] with `tokenizer` at `path`; returns its parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    shape = {"vocab_size": len(tokenizer), "max_position_embeddings": 8192} | SIZES[size]
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    dtype = torch.float32 if size == "tiny" else torch.bfloat16  # half the init time and disk for big ones
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def tiny_model():
    """tests/tiny_model.py: its tokenizer (trained in-process, ChatML template) and its training text."""
    sys.path.insert(0, str(REPO / "tests"))
    import tiny_model

    return tiny_model


def words() -> list[str]:
    return sorted({w for line in tiny_model().TRAINING_TEXT for w in line.split()})


def posts(n: int, length: int, seed: int = 0) -> list[str]:
    rng, vocabulary = random.Random(seed), words()
    return [" ".join(rng.choice(vocabulary) for _ in range(length)) for _ in range(n)]


def demonstrations(n: int, length: int) -> list[dict]:
    """Chat demonstrations whose posts are longer than `length` tokens: every one is cut to exactly that."""
    return [{"id": f"d{i}", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "You belong to the keto cooking community. What would you post?"},
        {"role": "assistant", "content": text}]} for i, text in enumerate(posts(n, length))]


def hive_config(args, device: str, dtype: str, load_in_4bit: bool = False):
    """The config the stages would read: every model on `device`, weights in `dtype`, sdpa attention."""
    from hivelm import config as c

    tune = c.TuneConfig(max_steps=args.steps, batch_size=args.batch_size, eval_steps=args.steps,
                        max_length=args.max_length, eval_max_examples=args.batch_size,
                        bf16=dtype == "bfloat16", load_in_4bit=load_in_4bit)
    return c.HiveConfig(communities={"keto": c.CommunityConfig("keto", "keto cooking")},
                        base_model=c.BaseModelConfig(source="random", device=device, dtype=dtype,
                                                     attn_implementation="sdpa", num_threads=args.threads),
                        prepare=c.PrepareConfig(perplexity_device=device),
                        evaluate=c.EvaluateConfig(scorers=c.ScorersConfig(device=device)), tune=tune)


# --- measurement ----------------------------------------------------------------------------------------------

def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextlib.contextmanager
def measured(device: str, into: dict):
    """Wall seconds and peak memory (GiB) of the block, written into `into`."""
    import resource

    import torch

    synchronize(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    yield into
    synchronize(device)
    into["seconds"] = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") \
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    into["peak_memory_gib"] = peak / 2**30


def step_timer(device: str):
    """A TrainerCallback that records (time, input tokens seen) at the start and after every optimizer step."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.marks: list[tuple[float, int]] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    return StepTimer()


def rate(tokens: float, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0


# --- the checks -----------------------------------------------------------------------------------------------

def tune(cfg, base_dir: Path, out_dir: Path, device: str) -> dict:
    from hivelm.stages.tune import train_adapter

    n = math.ceil(cfg.tune.max_steps * cfg.tune.batch_size / (1 - cfg.tune.eval_fraction)) + 2
    timer = step_timer(device)
    with measured(device, {}) as entry:
        stats = train_adapter(cfg, demonstrations(n, cfg.tune.max_length), out_dir, out_dir.with_name("ckpt"),
                              base_dir, "gpu-check", callbacks=[timer])
    marks = timer.marks[1:] if len(timer.marks) > 2 else timer.marks  # the first step warms kernels up
    seconds, tokens = marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]
    return entry | {"steps": stats["steps"], "train_loss": stats["train_loss"], "eval_loss": stats["eval_loss"],
                    "timed_steps": len(marks) - 1, "timed_tokens": tokens, "timed_seconds": seconds,
                    "tokens_per_s": rate(tokens, seconds)}


def qlora(args, base_dir: Path, out_dir: Path, device: str, dtype: str) -> dict:
    import importlib.util

    if args.no_qlora:
        return {"skipped": "--no-qlora"}
    if not device.startswith("cuda"):
        return {"skipped": f"QLoRA (bitsandbytes 4-bit) needs a CUDA device, not {device}"}
    if importlib.util.find_spec("bitsandbytes") is None:
        return {"skipped": "bitsandbytes is not installed"}
    return tune(hive_config(args, device, dtype, load_in_4bit=True), base_dir, out_dir, device)


def generate(model, tokenizer, args, device: str) -> dict:
    from hivelm.config import DecodingConfig
    from hivelm.generation import sample_texts

    prompts = [{"system": "You are a helpful assistant.",
                "prompt": f"You belong to the keto cooking online community. Write post {i} about breakfast."}
               for i in range(args.prompts)]
    decoding = DecodingConfig(max_new_tokens=args.max_new_tokens, batch_size=args.gen_batch_size)
    sample_texts(model, tokenizer, prompts[:1], DecodingConfig(max_new_tokens=2), seed=1)  # warm-up
    with measured(device, {"prompts": len(prompts), "max_new_tokens": args.max_new_tokens}) as entry:
        texts, new_tokens = sample_texts(model, tokenizer, prompts, decoding, seed=0)
    return entry | {"new_tokens": new_tokens, "empty_texts": sum(not t for t in texts),
                    "tokens_per_s": rate(new_tokens, entry["seconds"])}


def survey_records(args) -> list[dict]:
    from hivelm.survey.answers import build_item_prompts
    from hivelm.survey.instrument import load_instrument, select_items
    from hivelm.templates import load_templates

    instrument = load_instrument(REPO / "configs/instruments/swed.yaml")
    if args.items:
        instrument = select_items(instrument, list(instrument.items)[: args.items])
    personas = load_templates(REPO / "configs/templates/survey_personas.yaml", slots=("community",))
    return build_item_prompts(instrument, personas[: args.personas], "keto cooking", mode="loglik")


def loglik_scores(model, tokenizer, args) -> dict:
    """Survey option scores and attribute log-likelihoods (adapter and base), as plain lists."""
    from hivelm.config import InstructConfig
    from hivelm.stages.attribute import score, scoring_template
    from hivelm.survey.answers import option_logprobs

    survey = option_logprobs(model, tokenizer, survey_records(args), args.loglik_batch_size)
    template = scoring_template(REPO / InstructConfig().templates, None)
    attribute = score(model, tokenizer, posts(args.posts, 30, seed=1), {"keto": "keto cooking"},
                      InstructConfig().system_prompt, template, args.max_length, args.loglik_batch_size)
    return {"survey": [s for scores in survey for s in scores],
            "adapter": attribute["adapter"][:, 0].tolist(), "base": attribute["base"][:, 0].tolist()}


def loglik_tokens(tokenizer, args) -> dict:
    from hivelm.config import InstructConfig
    from hivelm.stages.attribute import encode_posts, scoring_records, scoring_template
    from hivelm.survey.answers import _encode

    prefixes, replies = _encode(tokenizer, survey_records(args))
    survey = sum(len(p) + len(r) for p, rs in zip(prefixes, replies) for r in rs)
    template = scoring_template(REPO / InstructConfig().templates, None)
    records = scoring_records(posts(args.posts, 30, seed=1), InstructConfig().system_prompt, template,
                              "keto cooking")
    attribute = 2 * sum(e["length"] for e in encode_posts(tokenizer, records, args.max_length))  # adapter + base
    return {"survey_sequences": sum(len(r) for r in replies), "attribute_sequences": 2 * len(records),
            "tokens": survey + attribute}


def loglik(model, tokenizer, args, device: str) -> tuple[dict, dict]:
    with measured(device, loglik_tokens(tokenizer, args)) as entry:
        scores = loglik_scores(model, tokenizer, args)
    finite = all(math.isfinite(v) for values in scores.values() for v in values)
    return entry | {"finite": finite, "tokens_per_s": rate(entry["tokens"], entry["seconds"])}, scores


def largest_difference(a: list[float], b: list[float]) -> float:
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def compare(scores: dict, reference: dict, dtype: str) -> dict:
    """Device scores against the float32 CPU reference. `adapter_effect_nats` (how far the adapter moved the
    attribute log-likelihoods from the base) says how much of a missing adapter the tolerance could hide."""
    diffs = {key: largest_difference(scores[key], reference[key]) for key in scores}
    tolerance = TOLERANCE[dtype]
    effect = {name: largest_difference(s["adapter"], s["base"]) for name, s in (("device", scores),
                                                                               ("reference", reference))}
    return {"reference": "float32 on the CPU", "dtype": dtype, "tolerance_nats": tolerance,
            "max_abs_diff_nats": diffs, "adapter_effect_nats": effect,
            "ok": all(d <= tolerance for d in diffs.values())}


def check_size(size: str, args, device: str, dtype: str, tokenizer, scratch: Path) -> dict:
    import gc

    import torch

    from hivelm import models

    base_dir, adapter = scratch / "base", scratch / "lora" / "adapter"
    entry = {"parameters": build_model(size, tokenizer, base_dir), "shape": SIZES[size]}
    cfg = hive_config(args, device, dtype)
    entry["tune"] = tune(cfg, base_dir, adapter, device)
    entry["qlora"] = qlora(args, base_dir, scratch / "qlora" / "adapter", device, dtype)
    model, tokenizer = models.load_with_adapters(cfg.base_model, {"keto": adapter}, base_dir)
    entry["attn_implementation"] = model.config._attn_implementation
    entry["generate"] = generate(model, tokenizer, args, device)
    entry["loglik"], scores = loglik(model, tokenizer, args, device)
    del model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    if size == COMPARED_SIZE:
        reference_cfg = hive_config(args, "cpu", "float32")
        model, tokenizer = models.load_with_adapters(reference_cfg.base_model, {"keto": adapter}, base_dir)
        entry["comparison"] = compare(scores, loglik_scores(model, tokenizer, args), dtype)
    return entry


def passed(entry: dict) -> bool:
    trained = all(math.isfinite(entry[k]["train_loss"]) for k in ("tune", "qlora") if "skipped" not in entry[k])
    return (trained and entry["attn_implementation"] == "sdpa" and entry["generate"]["new_tokens"] > 0
            and entry["loglik"]["finite"] and entry.get("comparison", {"ok": True})["ok"])


def environment(device: str, dtype: str) -> dict:
    import importlib.metadata

    import torch

    def version(name):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
        return None

    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor() or "cpu"
    return {"device": device, "device_name": name, "dtype": dtype, "python": platform.python_version(),
            **{p: version(p) for p in ("torch", "transformers", "peft", "accelerate", "bitsandbytes")}}


def main(argv: list[str] | None = None) -> dict:
    import torch

    args = parse_args(argv)
    watch_forks()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    result = {"bench": "gpu_check", **environment(device, dtype), "args": vars(args), "sizes": {}}
    scratch = Path(tempfile.mkdtemp(prefix="hivelm-gpu-check-"))
    try:
        for size in args.sizes:
            result["sizes"][size] = check_size(size, args, device, dtype, tiny_model().build_tokenizer(),
                                               scratch / size)
            result["sizes"][size]["ok"] = passed(result["sizes"][size])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result["fork_safety"] = fork_safety(hive_config(args, device, dtype), device)
    result["ok"] = result["fork_safety"]["ok"] and all(s["ok"] for s in result["sizes"].values())
    text = json.dumps(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
