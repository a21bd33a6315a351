"""Prompting and batched sampling shared by the generate and survey stages."""

from __future__ import annotations

from collections.abc import Sequence

from hivelm.chat import render_chat


def truncate_words(text: str, words: int) -> str:
    return " ".join(text.split()[:words])


def in_context_prompt(pool: Sequence[str], cfg, community_name: str, rng) -> tuple[str, list[int]]:
    """The in_context baseline's block: `cfg.k` posts drawn from `pool` without replacement by `rng` (a
    `rng.keyed_rng` for this prompt or respondent), each cut to `cfg.words` words. `cfg` is an
    InContextConfig. Returns the block (empty for an empty pool) and the indices drawn, in draw order."""
    if not pool:
        return "", []
    picks = [int(i) for i in rng.choice(len(pool), size=min(cfg.k, len(pool)), replace=False)]
    lines = "\n".join(f"- {truncate_words(pool[i], cfg.words)}" for i in picks)
    return f"Here are posts written by members of the {community_name} community:\n{lines}\n\n", picks


def sample_texts(model, tokenizer, prompts: list[dict], decoding, seed: int, progress=None,
                 adapter_names: list[str] | None = None) -> tuple[list[str], int]:
    """Batched sampling with left padding, prompts sorted by length (less padding), KV cache on.

    `prompts` are {"system", "prompt"} records; `decoding` is a DecodingConfig. Each batch is seeded from
    `seed` and its index in the length-sorted order, so the same prompts and seed give the same texts.
    Returns the texts in prompt order and the number of generated tokens (`sample_each`: per prompt).

    `adapter_names`: one peft adapter name per prompt (models.BASE for the bare base model), mixed within a
    batch (peft's mixed-adapter batches), so several models' prompts fill batches together. Each text is then a
    draw from the same distribution as when its model samples alone, but not the same draw: the sampler's
    random numbers are taken per batch, and the batches hold other rows (tests/test_generate.py).
    """
    texts, tokens = sample_each(model, tokenizer, prompts, decoding, seed, progress, adapter_names)
    return texts, sum(tokens)


def sample_each(model, tokenizer, prompts: list[dict], decoding, seed: int, progress=None,
                adapter_names: list[str] | None = None) -> tuple[list[str], list[int]]:
    """`sample_texts` with the number of generated tokens of each prompt."""
    import torch

    from hivelm.models import padding

    rendered = [render_chat(tokenizer, p["system"], p["prompt"]) for p in prompts]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in rendered]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    texts: list[str] = [""] * len(prompts)
    new_tokens = [0] * len(prompts)
    with padding(tokenizer, "left") as pad_id:
        for batch_index, start in enumerate(range(0, len(order), decoding.batch_size)):
            chunk = order[start:start + decoding.batch_size]
            batch = tokenizer([rendered[i] for i in chunk], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            torch.manual_seed(seed * 100_003 + batch_index)
            route = {"adapter_names": [adapter_names[i] for i in chunk]} if adapter_names is not None else {}
            with torch.no_grad():
                output = model.generate(**batch, **route, do_sample=True, temperature=decoding.temperature,
                                        top_p=decoding.top_p, top_k=decoding.top_k,
                                        repetition_penalty=decoding.repetition_penalty,
                                        max_new_tokens=decoding.max_new_tokens, use_cache=True, pad_token_id=pad_id)
            generated = output[:, batch["input_ids"].shape[1]:]
            for row, i in enumerate(chunk):
                tokens = generated[row]
                keep = tokens != pad_id  # pad == eos for SmolLM2: stops are dropped, not decoded
                new_tokens[i] = int(keep.sum())
                texts[i] = tokenizer.decode(tokens[keep], skip_special_tokens=True).strip()
            if progress:
                progress(len(chunk))
    return texts, new_tokens
