"""Loading causal language models (local folder or hub id) and scoring text under them.

Device, dtype and attention implementation always come from config: library code never picks a device.
`trust_remote_code` is off and weights load as safetensors.
"""

from __future__ import annotations

import math
from typing import Sequence


def load_causal_lm(path: str, device: str = "cpu", dtype: str = "float32", attn_implementation: str | None = None):
    """Return (model, tokenizer) in eval mode on `device`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, dtype), trust_remote_code=False, use_safetensors=True,
        attn_implementation=attn_implementation,
    )
    return model.to(device).eval(), tokenizer


def perplexities(model, tokenizer, texts: Sequence[str], batch_size: int = 16, max_length: int = 128) -> list[float]:
    """Per-text perplexity exp(mean token NLL), batched with right padding and masked by attention."""
    import torch

    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    scores: list[float] = []
    for start in range(0, len(texts), batch_size):
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
