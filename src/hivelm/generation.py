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


class CandidateSampler:
    """Temperature, top-k and top-p sampling over the k candidates only, as a transformers logits processor.

    transformers' sampler draws with torch.multinomial over the whole vocabulary (49,152 tokens for SmolLM2) and
    sorts the whole vocabulary for top-p at every step, although top-k has already left k candidates: on 2 cores
    that was a fifth of a batch-48 generation (bench/generate.py). This draws from the same distribution with
    transformers' own rules, in its order (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper with
    min_tokens_to_keep=1: a candidate stays while the mass of the more likely ones before it is below top_p),
    after generate's own processors (repetition penalty); tests/test_generate.py checks the probabilities against
    those warpers. It returns scores that are 0 at the drawn token and -inf elsewhere, so generate runs greedy
    (argmax) on them. The random numbers are fewer, so a seed gives other draws than transformers' sampler.

    `generators`: one torch.Generator per row (`prompt_generators`), so that each row draws from its own stream,
    whatever the other rows of its batch are; without them, torch's global generator."""

    def __init__(self, decoding, generators=None):
        self.temperature, self.top_k, self.top_p = decoding.temperature, decoding.top_k, decoding.top_p
        self.generators = generators

    def probabilities(self, scores):
        """(candidate token ids, their sampling probabilities), both (rows, k), most likely first."""
        import torch

        k = min(self.top_k or scores.shape[-1], scores.shape[-1])  # top_k 0 = off: every token is a candidate
        values, ids = (scores / self.temperature).topk(k, dim=-1)
        probs = values.softmax(dim=-1)
        kept = probs.cumsum(dim=-1) - probs < self.top_p if self.top_p < 1 else torch.ones_like(probs, dtype=torch.bool)
        kept[:, 0] = True
        return ids, values.masked_fill(~kept, -float("inf")).softmax(dim=-1)

    def __call__(self, input_ids, scores):
        import torch

        ids, probs = self.probabilities(scores.float())
        if self.generators is None:
            picks = torch.multinomial(probs, num_samples=1)
        else:
            picks = torch.stack([torch.multinomial(row, 1, generator=g) for row, g in zip(probs, self.generators)])
        drawn = ids.gather(-1, picks)
        return torch.full_like(scores, -float("inf")).scatter_(-1, drawn, 0.0)


def sample_texts(model, tokenizer, prompts: list[dict], decoding, seed: int, progress=None,
                 adapter_names: list[str] | None = None) -> tuple[list[str], int]:
    """Batched sampling with left padding, prompts sorted by length (less padding), KV cache on.

    `prompts` are {"system", "prompt"} records; `decoding` is a DecodingConfig. Each prompt draws from its own
    random stream (`prompt_generators`: keyed by `seed`, the prompt as rendered and its occurrence among equal
    prompts), so its text does not depend on the batch size, on the order of the prompts or on which others share
    its batch, up to the last-bit differences another padding width makes in the logits (tests/test_generate.py).
    Equal prompts given to two models (a finetuned and an untuned corpus) get the same random numbers.
    Returns the texts in prompt order and the number of generated tokens (`sample_each`: per prompt).

    `adapter_names`: one peft adapter name per prompt (models.BASE for the bare base model), mixed within a
    batch (peft's mixed-adapter batches), so several models' prompts fill batches together; each text is the
    one its model writes when it samples alone.
    """
    texts, tokens = sample_each(model, tokenizer, prompts, decoding, seed, progress, adapter_names)
    return texts, sum(tokens)


def prompt_generators(seed: int, rendered: Sequence[str], adapter_names: Sequence[str] | None = None) -> list:
    """One torch.Generator per prompt, seeded by rng.keyed_rng from `seed`, the rendered prompt and how many equal
    prompts for the same model came before it (so repeated prompts, e.g. samples of one item, draw afresh).
    The model's name is not in the key: equal prompts to two models get common random numbers, as they do
    when each model samples alone."""
    import torch

    from hivelm.rng import keyed_rng

    seen: dict[tuple, int] = {}
    generators = []
    for i, text in enumerate(rendered):
        key = (adapter_names[i] if adapter_names is not None else None, text)
        seen[key] = occurrence = seen.get(key, -1) + 1
        stream = int(keyed_rng(seed, "sample", text, str(occurrence)).integers(2**63 - 1))
        generators.append(torch.Generator().manual_seed(stream))
    return generators


def sample_each(model, tokenizer, prompts: list[dict], decoding, seed: int, progress=None,
                adapter_names: list[str] | None = None) -> tuple[list[str], list[int]]:
    """`sample_texts` with the number of generated tokens of each prompt."""
    import torch

    from hivelm.models import padding

    rendered = [render_chat(tokenizer, p["system"], p["prompt"]) for p in prompts]
    generators = prompt_generators(seed, rendered, adapter_names)
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in rendered]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    texts: list[str] = [""] * len(prompts)
    new_tokens = [0] * len(prompts)
    with padding(tokenizer, "left") as pad_id:
        for start in range(0, len(order), decoding.batch_size):
            chunk = order[start:start + decoding.batch_size]
            batch = tokenizer([rendered[i] for i in chunk], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            sampler = CandidateSampler(decoding, [generators[i] for i in chunk])
            route = {"adapter_names": [adapter_names[i] for i in chunk]} if adapter_names is not None else {}
            with torch.no_grad():
                # the draw is made by CandidateSampler; generate's own selection is then an argmax of its one-hot
                output = model.generate(**batch, **route, do_sample=False, temperature=None, top_p=None, top_k=None,
                                        logits_processor=[sampler],
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
