"""tune: a community's demonstrations -> a LoRA adapter on the shared base model (paper section 4.2).

    hivelm tune --community keto
    hivelm tune --community keto tune.max_steps=5 tune.lora_r=4
    accelerate launch -m hivelm tune --community keto     # several GPUs, same code

Loss is on the assistant's post only, and labels are built by position (not by pad id), so the end-of-turn
token is learned even though SmolLM2's pad token is its end-of-turn token. Checkpoints go to
`paths.checkpoints(community)`; a killed run resumes from the last complete one when rerun with the same
inputs, and a second trainer on the same folder is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

from hivelm import paths
from hivelm.artifacts import file_lock, lock_beside, staged_outputs
from hivelm.config import HiveConfig, TuneConfig
from hivelm.errors import HiveError
from hivelm.tables import read_jsonl
from hivelm.tokens import IGNORE, encode, special_tokens_removed

log = logging.getLogger(__name__)

class PadCollator:
    """Right-pads a batch; padding gets attention 0 and label IGNORE by position, never by token id."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        batch = {"input_ids": [], "attention_mask": [], "labels": []}
        for f in features:
            pad = width - len(f["input_ids"])
            batch["input_ids"].append(f["input_ids"] + [self.pad_id] * pad)
            batch["attention_mask"].append([1] * len(f["input_ids"]) + [0] * pad)
            batch["labels"].append(f["labels"] + [IGNORE] * pad)
        return {key: torch.tensor(value) for key, value in batch.items()}


def split_eval(records: list, fraction: float, seed: int) -> tuple[list, list]:
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(records))
    n_eval = min(max(1, round(len(records) * fraction)), len(records) - 1)
    return [records[i] for i in sorted(order[n_eval:])], [records[i] for i in sorted(order[:n_eval])]


def eval_sample(records: list, limit: int, seed: int) -> list:
    """At most `limit` of `records` (0 = all), a seeded draw kept in their original order: what the periodic
    evaluations score."""
    import numpy as np

    if limit <= 0 or len(records) <= limit:
        return list(records)
    return [records[i] for i in sorted(np.random.default_rng(seed).choice(len(records), limit, replace=False))]


def final_eval_loss(trainer, evaluation, periodic, global_step: int) -> float:
    """The loss on every held-out demonstration at the end of training. The periodic evaluation at the last
    step already computed it when it scored them all, on the final weights (no best checkpoint reloaded):
    reused rather than run twice (every CI run, whose max_steps is a multiple of eval_steps)."""
    from datasets import Dataset

    last = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    if (len(periodic) == len(evaluation) and last is not None and last.get("step") == global_step
            and not trainer.args.load_best_model_at_end):
        return last["eval_loss"]
    return trainer.evaluate(Dataset.from_list(evaluation))["eval_loss"]


def fingerprint(params: dict, community: str, demonstrations: Path, base_dir: Path) -> str:
    """Identifies a training run's inputs (its declared params, data and base model); checkpoints from other
    inputs are never resumed."""
    from hivelm.errors import ArtifactError

    digest = hashlib.sha256(json.dumps([params, community], sort_keys=True).encode())
    digest.update(demonstrations.read_bytes())
    if not (base_dir / "config.json").is_file():
        raise ArtifactError(base_dir / "config.json", "is missing")
    digest.update((base_dir / "config.json").read_bytes())
    return digest.hexdigest()


def add_lora(model, cfg: TuneConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, lora)


def load_for_training(cfg: HiveConfig, base_dir: Path):
    from hivelm import models

    quantization = None
    if cfg.tune.load_in_4bit:
        import torch
        from transformers import BitsAndBytesConfig  # needs bitsandbytes and a GPU

        quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                          bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True)
    models.set_threads(cfg.base_model.num_threads)
    model, tokenizer = models.load_causal_lm(base_dir, cfg.base_model.device, cfg.base_model.dtype,
                                             cfg.base_model.attn_implementation, quantization)
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model, tokenizer


def _sort_adapter_config(path: Path) -> None:
    """peft keeps target_modules as a set and writes it in hash order, which changes from process to process:
    sorted, the same training writes the same bytes (and the adapter's hash in dvc.lock stays put)."""
    config = json.loads(path.read_text())
    for key in ("target_modules", "exclude_modules"):  # the fields peft turns into sets
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def train_adapter(cfg: HiveConfig, records: list[dict], out_dir: Path, ckpt_dir: Path, base_dir: Path,
                  run_fingerprint: str, callbacks: list = (), keep_checkpoints: bool = False) -> dict:
    """Pure-ish core: LoRA-tune on `records`, resuming from `ckpt_dir` if it holds checkpoints of the same
    inputs; save the adapter (only) into `out_dir`, in place (`main` stages it). Returns training metrics.
    The checkpoints are removed at the end unless `keep_checkpoints` (`main` removes them once the adapter
    and its record are in place: until then a failure must leave a rerun something to resume).

    Holds the lock of `ckpt_dir` throughout: a second trainer on the same folder (e.g. a rerun while an
    orphaned one still trains) is refused instead of interleaving checkpoints.
    """
    from hivelm.tracking import is_main_process

    if not is_main_process():  # the other ranks of a multi-GPU launch train in step with rank 0
        return _train_adapter(cfg, records, out_dir, ckpt_dir, base_dir, run_fingerprint, callbacks)
    with file_lock(lock_beside(ckpt_dir), f"checkpoint folder {ckpt_dir} (another `hivelm tune`?)", timeout=0):
        stats = _train_adapter(cfg, records, out_dir, ckpt_dir, base_dir, run_fingerprint, callbacks)
        if not keep_checkpoints:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        return stats


def discard_checkpoints(ckpt_dir: Path) -> None:
    """Remove `ckpt_dir` unless a trainer holds it again (it would be resuming from them)."""
    try:
        with file_lock(lock_beside(ckpt_dir), f"checkpoint folder {ckpt_dir}", timeout=0):
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    except HiveError:
        log.info("%s is in use by another trainer: left in place", ckpt_dir)


def last_complete_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest checkpoint that was fully saved and reads back; the others after it (a kill during a save,
    a file truncated since) are removed, with one line saying which file and where training resumes.

    The Trainer writes trainer_state.json last, after the weights, optimizer and RNG states.
    """
    steps = {int(p.name.removeprefix("checkpoint-")): p for p in ckpt_dir.glob("checkpoint-*")
             if p.name.removeprefix("checkpoint-").isdigit()}
    for _, checkpoint in sorted(steps.items(), reverse=True):
        problem = _unreadable(checkpoint)
        if problem is None:
            return str(checkpoint)
        older = [p for step, p in steps.items() if p != checkpoint and step < int(checkpoint.name.split("-")[1])]
        fallback = f"resuming from {max(older, key=lambda p: int(p.name.split('-')[1])).name}" if older \
            else "starting from step 0"
        log.warning("removing incomplete checkpoint %s: %s; %s", checkpoint, problem, fallback)
        shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def _unreadable(checkpoint: Path) -> str | None:
    """What keeps `checkpoint` from loading (no trainer_state.json or weights, a truncated file), or None."""
    from hivelm.models import first_unreadable

    if not (checkpoint / "trainer_state.json").is_file():
        return "no trainer_state.json"
    if not any((checkpoint / name).is_file() for name in ("adapter_model.safetensors", "adapter_model.bin")):
        return "no adapter weights"
    broken = first_unreadable(checkpoint)
    return f"{broken.name} is unreadable (truncated?)" if broken else None


def show_training_lines(trainer, terminal: bool) -> None:
    """transformers prints each training record as a raw dict (PrinterCallback without a terminal, the tqdm
    bar's on_log on one): show it as one formatted line instead (`training_lines`)."""
    from transformers import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(training_lines(terminal))


def training_lines(terminal: bool):
    """A transformers callback showing each training record as hivelm.progress.training_line: under the tqdm
    bar on a terminal, else through logging (one line per record, rounded)."""
    from transformers import ProgressCallback, TrainerCallback

    from hivelm.progress import training_line

    class BarLines(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and self.training_bar is not None and logs:
                self.training_bar.write(training_line(logs, state.global_step, state.max_steps))

    class LogLines(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                log.info("%s", training_line(logs, state.global_step, state.max_steps))

    return BarLines() if terminal else LogLines()


def _train_adapter(cfg: HiveConfig, records: list[dict], out_dir: Path, ckpt_dir: Path, base_dir: Path,
                   run_fingerprint: str, callbacks: list = ()) -> dict:
    from datasets import Dataset
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments, set_seed

    from hivelm.models import pad_id

    tune = cfg.tune
    model, tokenizer = load_for_training(cfg, base_dir)
    encoded = [e for e in (encode(r, tokenizer, tune.max_length) for r in records) if e is not None]
    removed = special_tokens_removed(tokenizer, records)
    if len(encoded) < 2:
        raise HiveError(f"{out_dir.name}: {len(encoded)} of {len(records)} demonstrations leave room for a reply "
                        f"within tune.max_length={tune.max_length}; at least 2 are needed (raise tune.max_length)")
    train, evaluation = split_eval(encoded, tune.eval_fraction, tune.seed)
    periodic = eval_sample(evaluation, tune.eval_max_examples, tune.seed)
    set_seed(tune.seed)  # LoRA's random init must not depend on whatever ran before in this process
    model = add_lora(model, tune)

    stamp = ckpt_dir / "fingerprint.txt"
    if ckpt_dir.exists() and (not stamp.is_file() or stamp.read_text() != run_fingerprint):
        log.info("discarding checkpoints in %s: they belong to other inputs", ckpt_dir)
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(run_fingerprint)
    resume = last_complete_checkpoint(ckpt_dir)
    if resume:
        log.info("resuming from %s", resume)

    args = TrainingArguments(
        output_dir=str(ckpt_dir), seed=tune.seed, data_seed=tune.seed,
        per_device_train_batch_size=tune.batch_size, per_device_eval_batch_size=tune.batch_size,
        gradient_accumulation_steps=tune.gradient_accumulation_steps, learning_rate=tune.learning_rate,
        weight_decay=tune.weight_decay, lr_scheduler_type="cosine", warmup_steps=tune.warmup_ratio,
        num_train_epochs=tune.epochs, max_steps=tune.max_steps,
        eval_strategy="steps", eval_steps=tune.eval_steps, save_strategy="steps", save_steps=tune.eval_steps,
        save_total_limit=tune.save_total_limit, logging_steps=1, bf16=tune.bf16,
        use_cpu=cfg.base_model.device == "cpu", report_to="none", remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if tune.group_by_length else "random",
        load_best_model_at_end=tune.early_stopping_patience > 0, metric_for_best_model="eval_loss",
        greater_is_better=False, disable_tqdm=not sys.stderr.isatty(), include_num_input_tokens_seen="all",
    )
    extra = list(callbacks)
    if tune.early_stopping_patience > 0:
        extra.append(EarlyStoppingCallback(early_stopping_patience=tune.early_stopping_patience))
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(train),
                      eval_dataset=Dataset.from_list(periodic), data_collator=PadCollator(pad_id(tokenizer)),
                      callbacks=extra)
    show_training_lines(trainer, sys.stderr.isatty())
    result = trainer.train(resume_from_checkpoint=resume)
    eval_loss = final_eval_loss(trainer, evaluation, periodic, result.global_step)
    if trainer.is_world_process_zero():  # under `accelerate launch` every rank gets here with the same weights
        # written in place: `main` hands in a staged folder, swapped in with the run's record
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)  # adapter weights and config only: never a merged full copy
        tokenizer.save_pretrained(out_dir)
        _sort_adapter_config(out_dir / "adapter_config.json")
    return {
        "train_loss": result.training_loss, "eval_loss": eval_loss,
        "steps": result.global_step, "train_demonstrations": len(train), "eval_demonstrations": len(evaluation),
        "periodic_eval_demonstrations": len(periodic),
        "skipped_prompt_too_long": len(records) - len(encoded), "special_tokens_removed": removed,
        "tokens_seen": trainer.state.num_input_tokens_seen, "resumed": bool(resume),
        "train_runtime_s": result.metrics.get("train_runtime", 0.0),
    }


def main(cfg: HiveConfig, run, community: str) -> dict:
    from hivelm import tracking

    demonstrations = paths.instructions(community)
    records = read_jsonl(demonstrations)
    run_fingerprint = fingerprint(run.params, community, demonstrations, paths.BASE_MODEL)
    if not tracking.is_main_process():  # other ranks of a launch train in step with rank 0 and write nothing
        return train_adapter(cfg, records, paths.adapter(community), paths.checkpoints(community),
                             paths.BASE_MODEL, run_fingerprint)
    with staged_outputs() as out:  # the adapter and its MLflow record change together or not at all
        adapter = out.dir(paths.adapter(community))
        stats = train_adapter(cfg, records, adapter, paths.checkpoints(community), paths.BASE_MODEL,
                              run_fingerprint, callbacks=[tracking.loss_callback()], keep_checkpoints=True)
        run.log_metrics({k: v for k, v in stats.items() if k != "resumed"})
        provenance = paths.base_provenance()  # the base model's source, as base_model recorded it
        source = json.loads(provenance.read_text()).get("source") if provenance.is_file() else str(paths.BASE_MODEL)
        run.set_tags({"resumed": str(stats["resumed"]).lower(), "base_model": source})
        if cfg.tracking.log_adapters:
            run.log_artifact(adapter, "adapter")
            run.register_model(f"hivelm-{community}", "adapter")
        else:  # the weights stay local; their digest still ties this run to the files
            weights = out.path(paths.adapter_weights(community)).read_bytes()
            run.set_tags({"adapter_sha256": hashlib.sha256(weights).hexdigest()})
    discard_checkpoints(paths.checkpoints(community))  # only now: a failure above leaves a rerun its resume point
    log.info("%s: adapter in %s (eval loss %.3f)", community, paths.adapter(community), stats["eval_loss"])
    return stats
