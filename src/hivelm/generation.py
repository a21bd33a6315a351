"""Prompting and batched sampling shared by the generate and survey stages."""

from __future__ import annotations


def truncate_words(text: str, words: int) -> str:
    return " ".join(text.split()[:words])


def in_context_block(posts: list[str], community_name: str) -> str:
    lines = "\n".join(f"- {post}" for post in posts)
    return f"Here are posts written by members of the {community_name} community:\n{lines}\n\n"


def sample_texts(model, tokenizer, prompts: list[dict], cfg, progress=None) -> tuple[list[str], int]:
    """Batched sampling with left padding, prompts sorted by length (less padding), KV cache on.

    `prompts` are {"system", "prompt"} records; `cfg` is any config with temperature, top_p, top_k,
    repetition_penalty, max_new_tokens, batch_size and seed (GenerateConfig, SurveyConfig).
    Each batch is seeded from `cfg.seed` and its index in the length-sorted order, so the same prompts and
    seed give the same texts. Returns the texts in prompt order and the number of generated tokens.
    """
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    rendered = [tokenizer.apply_chat_template([{"role": "system", "content": p["system"]},
                                               {"role": "user", "content": p["prompt"]}],
                                              add_generation_prompt=True, tokenize=False) for p in prompts]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in rendered]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    texts: list[str] = [""] * len(prompts)
    new_tokens = 0
    for batch_index, start in enumerate(range(0, len(order), cfg.batch_size)):
        chunk = order[start:start + cfg.batch_size]
        batch = tokenizer([rendered[i] for i in chunk], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        torch.manual_seed(cfg.seed * 100_003 + batch_index)
        with torch.no_grad():
            output = model.generate(**batch, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p,
                                    top_k=cfg.top_k, repetition_penalty=cfg.repetition_penalty,
                                    max_new_tokens=cfg.max_new_tokens, use_cache=True,
                                    pad_token_id=tokenizer.pad_token_id)
        generated = output[:, batch["input_ids"].shape[1]:]
        for row, i in enumerate(chunk):
            tokens = generated[row]
            keep = tokens != tokenizer.pad_token_id  # pad == eos for SmolLM2: stops are dropped, not decoded
            new_tokens += int(keep.sum())
            texts[i] = tokenizer.decode(tokens[keep], skip_special_tokens=True).strip()
        if progress:
            progress(len(chunk))
    return texts, new_tokens


