"""Asking a model the items of an instrument: prompts, option log-likelihoods, and sampled answers.

Two modes (survey.mode):
  loglik    (default) every option is scored as the assistant's reply, its letter and its text ("b. Slightly
            afraid"); the score is the reply's mean token log-probability (length-normalised, so long option
            texts are not penalised), and a softmax over an item's options gives a full probability
            distribution per (item, persona). Nothing is parsed, so nothing is unparseable (docs/reference/stages.md,
            survey). Numeric items
            are scored over their bins. multi_select items are scored one option at a time, each as its own
            yes/no question ("does this apply to you?"), since options of a multi-select answer are not
            mutually exclusive; the distribution then holds P(chosen) per option, which need not sum to 1.
  generate  the paper's protocol: sample `samples_per_item` answers per item per persona with
            generation.sample_texts and parse them (survey.parse); what cannot be read is UNPARSEABLE.

Both work on a plain model or a peft model: the caller switches adapters on or off around the call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from hivelm.chat import render_chat
from hivelm.config import InContextConfig
from hivelm.generation import in_context_prompt, sample_texts
from hivelm.models import cache_rows
from hivelm.rng import keyed_rng
from hivelm.survey.instrument import Instrument, Item, Option
from hivelm.survey.parse import parse_answer
from hivelm.templates import Template

ANSWER_LINES = {
    "single_choice": "Answer with the letter of one option only.",
    "yes_no": "Answer with the letter of one option only.",
    "numeric": "Answer with the letter of one option, or with a number.",
    "multi_select": 'Answer with the letters of all the options that apply, separated by commas, or with "none".',
}
"""The answer-format line after each item (the paper's: "Respond ... only with the letter at the beginning of
each option or with a number", App. D.4)."""
YES_NO = (("yes", "Yes"), ("no", "No"))


def reply(option: Option) -> str:
    """How an option reads as an answer, in the prompt's listing and as a scored loglik reply."""
    return f"{option.letter}. {option.text}"


def item_block(item: Item) -> str:
    return "\n".join([item.stem, *(reply(o) for o in item.options)])


PLAIN = {"order": 0, "form": 0, "twin": False}
"""The variant every survey asks: the original option order, the instrument's stem."""


def variant_options(item: Item, permutation: Sequence[str]) -> list[Option]:
    """The item's options in displayed order, lettered by their displayed position, so that a letter says
    nothing about the option (each keeps its original letter in `choices`' key, which scoring reads)."""
    return [Option(letter, item.option(key).code, item.option(key).text) for letter, key in
            zip(item.letters, permutation)]


def variant_stem(item: Item, variant: dict) -> str:
    if variant.get("twin"):
        return item.twin
    return item.paraphrases[variant["form"] - 1] if variant.get("form") else item.stem


def build_item_prompts(instrument: Instrument, personas: Sequence[Template], community_name: str,
                       samples_per_item: int = 1, context: Sequence[str] | None = None, *,
                       mode: str = "generate", system_prompt: str = "You are a helpful assistant.",
                       in_context: InContextConfig | None = None, seed: int = 0, community: str = "",
                       variants=None) -> list[dict]:
    """One prompt record per (persona, sample, item), items in instrument order within each respondent.

    `variants(item, persona)` (the validity card, survey.validity) lists the ways a persona is asked an item, each a dict
    {order, form, twin, permutation}: the options in the permutation's order (original letters), relettered
    by position (`variant_options`), the stem's paraphrase `form` (0 = the stem) or its twin. Records then
    carry `order`, `form` and `twin`; a variant other than PLAIN gets an id suffix. Default: PLAIN only.
    Record: {id, item_id, persona_id, sample, option, system, prompt, choices, context_posts}; `choices` are
    the [key, reply] pairs loglik scores; `option` is set on the per-option yes/no records of multi_select
    items in loglik mode. `context` is a pool of real posts: each respondent (persona, sample) sees its own
    draw (`generation.in_context_prompt`, keyed by `seed`, the `community` key, persona and sample), the same
    for all its items, so one respondent answers from one view of the community (the paper's code retrieved
    posts per question from a file that was never committed; arXiv 2408.09366, section 6)."""
    if context and not community:
        # the draw is keyed by the community key: without it every community would see the same positions
        raise ValueError("build_item_prompts: context posts need the `community` key that keys their draw")
    in_context = in_context or InContextConfig()
    records = []
    for persona in personas:
        intro = persona.render(community=community_name)
        for sample in range(samples_per_item):
            block, picks = in_context_prompt(context or [], in_context, community_name,
                                             keyed_rng(seed, community, persona.id, str(sample), "context"))
            base = {"persona_id": persona.id, "sample": sample, "system": system_prompt, "context_posts": picks}
            for item in instrument.items.values():
                rid = f"{instrument.id}-{persona.id}-{sample}-{item.id}"
                if mode == "loglik" and item.type == "multi_select":
                    for option in item.options:
                        question = (f"{item.stem}\nDoes this apply to you: \"{option.text}\"?\n"
                                    f"a. Yes\nb. No\n{ANSWER_LINES['yes_no']}")
                        records.append(base | {
                            "id": f"{rid}-{option.letter}", "item_id": item.id, "option": option.letter,
                            "prompt": f"{block}{intro}\n\n{question}",
                            "choices": [[key, f"{letter}. {text}"] for (key, text), letter in zip(YES_NO, "ab")]})
                    continue
                for variant in (variants(item, persona) if variants and item.type != "multi_select" else [PLAIN]):
                    shown = variant_options(item, variant.get("permutation") or item.letters)
                    stem = variant_stem(item, variant)
                    tag = {k: variant[k] for k in PLAIN}
                    suffix = "" if tag == PLAIN else f"-o{tag['order']}-f{tag['form']}" + ("-t" if tag["twin"] else "")
                    records.append(base | tag | {
                        "id": rid + suffix, "item_id": item.id, "option": None,
                        "prompt": f"{block}{intro}\n\n" + "\n".join([stem, *(reply(o) for o in shown)])
                                  + f"\n{ANSWER_LINES[item.type]}",
                        "choices": [[key, reply(o)] for o, key in
                                    zip(shown, variant.get("permutation") or item.letters)]})
    return records


# ---------------------------------------------------------------------------------------------- loglik

def _encode(tokenizer, records: Sequence[dict]) -> tuple[list[list[int]], list[list[list[int]]]]:
    """Chat-template prefixes (up to the assistant turn) and each choice's reply tokens, tokenised apart so
    every choice is scored after exactly the same prefix tokens."""
    prefixes, replies = [], []
    for r in records:
        text = render_chat(tokenizer, r["system"], r["prompt"])
        prefixes.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        replies.append([tokenizer(c[1], add_special_tokens=False)["input_ids"] for c in r["choices"]])
    return prefixes, replies


def _forward(model, cache, mask, parent, seqs: list[list[int]], pad_id: int):
    """One forward pass that appends `seqs` to the cached rows `parent` (row indices into `cache`; None for
    the first pass), padded on the left so every row ends at the last position, whose logits it returns.

    Rows are repeated from their parent's cache, so one cached prefix serves every continuation of it;
    positions continue from each parent's real length, and the mask keeps padding (wherever it falls, even
    between two passes) out of attention. `cache` itself is left as it was. Returns (logits, cache, mask)."""
    import torch

    device = model.device
    width = max(map(len, seqs))
    pads = [[pad_id] * (width - len(s)) for s in seqs]
    ids = torch.tensor([p + s for s, p in zip(seqs, pads)], device=device)
    new = torch.tensor([[0] * len(p) + [1] * len(s) for s, p in zip(seqs, pads)], device=device)
    start = torch.zeros(len(seqs), 1, dtype=torch.long, device=device)
    if cache is not None:
        cache, mask = cache_rows(cache, parent), mask[parent]
        start = mask.sum(1, keepdim=True)
        new = torch.cat([mask, new], 1)
    positions = start + (new[:, -width:].cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=new, position_ids=positions, cache=cache, use_cache=True,
                    logits_to_keep=1)
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    return out.logits, cache, new


def _later_token_logprobs(model, cache, mask, replies: list[list[list[int]]]) -> list[list[float]]:
    """Per record (row r of `cache`, `mask`) and choice, the summed log-probabilities of the choice's reply
    tokens after the first, in one forward pass that copies no cache: row r holds all of its record's
    choices one after another, each at the positions right after the record's prompt, and a 4D mask lets a
    choice's tokens see the cached prompt and the earlier tokens of their own choice only (tree attention)."""
    import torch

    device = model.device
    rows = [[t for choice in choices for t in choice] for choices in replies]
    width, past = max(map(len, rows)), mask.shape[1]
    lengths = mask.sum(1).tolist()
    ids = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    positions = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    allow = torch.zeros(len(rows), width, past + width, dtype=torch.bool, device=device)
    allow[:, :, :past] = mask.bool()[:, None, :]
    for r, choices in enumerate(replies):
        start = 0
        for choice in choices:
            n = len(choice)
            ids[r, start:start + n] = torch.tensor(choice, device=device)
            positions[r, start:start + n] = lengths[r] + torch.arange(n, device=device)
            allow[r, start:start + n, past + start:past + start + n] = torch.ones(n, n, dtype=torch.bool).tril()
            start += n
    dtype = next(model.parameters()).dtype
    bias = torch.zeros(allow.shape, dtype=dtype, device=device).masked_fill(~allow, torch.finfo(dtype).min)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=bias[:, None], position_ids=positions, cache=cache,
                       use_cache=True).logits
    logprobs = logits.float().log_softmax(-1)
    sums = []
    for r, choices in enumerate(replies):
        start, row = 0, []
        for choice in choices:
            n = len(choice)
            targets = torch.tensor(choice[1:], device=device)
            row.append(float(logprobs[r, start:start + n - 1].gather(1, targets[:, None]).sum()) if n > 1 else 0.0)
            start += n
        sums.append(row)
    return sums


def _score_records(model, shared_cache, shared_mask, parents, suffixes, replies, pad_id: int) -> list[list[float]]:
    """Mean reply-token log-probabilities of a batch of records whose respondents' shared prefixes are
    cached (`parents[i]`: record i's row there): each record's own rest of the prompt in one pass (its last
    logits score every choice's first token), then all choices' later tokens after it in another."""
    import torch

    device = model.device
    logits, cache, mask = _forward(model, shared_cache, shared_mask, torch.tensor(parents, device=device),
                                   suffixes, pad_id)
    first = logits[:, -1].float().log_softmax(-1)
    later = (_later_token_logprobs(model, cache, mask, replies) if any(len(t) > 1 for c in replies for t in c)
             else [[0.0] * len(choices) for choices in replies])
    return [[(float(first[r, choice[0]]) + rest) / len(choice) for choice, rest in zip(choices, sums)]
            for r, (choices, sums) in enumerate(zip(replies, later))]


def _common_length(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least one of its own (whose logits score the
    first reply token)."""
    first, n = sequences[0], min(map(len, sequences)) - 1
    for seq in sequences[1:]:
        n = next((i for i in range(n) if seq[i] != first[i]), n)
    return n


def respondent_key(record: dict) -> tuple:
    """Records of one respondent (persona and sample, one system prompt) share their prompt up to the item:
    the system turn, the in-context posts and the persona's introduction."""
    return record.get("system"), record.get("persona_id"), record.get("sample")


def option_logprobs(model, tokenizer, records: Sequence[dict], batch_size: int = 16, progress=None) -> list[list[float]]:
    """Per record, the length-normalised log-likelihood of each choice as the assistant's reply.

    Records are grouped by respondent (`respondent_key`); the group's common token prefix (system turn,
    in-context posts, persona) is encoded once, for `batch_size` respondents together; their records then
    continue from the cached keys and values in batches of `batch_size` sorted by length (little padding),
    and each choice's reply continues from its record's. The scores equal one full forward pass per choice,
    to float rounding. Results come back in record order."""
    from hivelm.models import pad_id as pad_of

    pad_id = pad_of(tokenizer) or 0
    prefixes, replies = _encode(tokenizer, records)
    groups: dict[tuple, list[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(respondent_key(record), []).append(i)
    respondents = []  # (records, tokens they share)
    for members in groups.values():
        shared = _common_length([prefixes[i] for i in members])
        # prompts with nothing in common (not ours: a chat template starts them alike) go one by one
        respondents += [(members, shared)] if shared else [([i], len(prefixes[i]) - 1) for i in members]
    results: list[list[float]] = [[] for _ in records]
    for first in range(0, len(respondents), batch_size):
        group = respondents[first:first + batch_size]
        _, cache, mask = _forward(model, None, None, None, [prefixes[m[0]][:n] for m, n in group], pad_id)
        rows = {i: (r, n) for r, (members, n) in enumerate(group) for i in members}
        order = sorted(rows, key=lambda i: len(prefixes[i]) - rows[i][1], reverse=True)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            scores = _score_records(model, cache, mask, [rows[i][0] for i in chunk],
                                    [prefixes[i][rows[i][1]:] for i in chunk], [replies[i] for i in chunk], pad_id)
            for i, score in zip(chunk, scores):
                results[i] = score
            if progress:
                progress(len(chunk))
    return results


def softmax(scores: Sequence[float]) -> list[float]:
    import math

    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    return [w / sum(weights) for w in weights]


def option_probabilities(model, tokenizer, records: Sequence[dict], batch_size: int = 16,
                         progress=None) -> list[list[float]]:
    """Softmax over each record's choices of their mean token log-probabilities."""
    return [softmax(s) for s in option_logprobs(model, tokenizer, records, batch_size, progress)]


def distributions_from(records: Sequence[dict], probabilities: Sequence[Sequence[float]]) -> dict:
    """{persona: {item: {letter: probability}}}; multi_select items hold P(chosen) per option. Letters are
    the keyed (original) ones whatever order the options were shown in."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for record, probs in zip(records, probabilities):
        persona = out.setdefault(record["persona_id"], {})
        if record["option"] is not None:
            persona.setdefault(record["item_id"], {})[record["option"]] = probs[0]  # choices are (yes, no)
        else:
            persona[record["item_id"]] = {key: p for (key, _), p in zip(record["choices"], probs)}
    return out


def variant_key(record: dict) -> tuple[int, int, bool]:
    return record.get("order", 0), record.get("form", 0), record.get("twin", False)


def distributions_by_variant(records: Sequence[dict], probabilities: Sequence[Sequence[float]]) -> dict:
    """{(order, form, twin): distributions_from(those records)}; multi_select items sit under PLAIN only."""
    split: dict[tuple, tuple[list, list]] = {}
    for record, probs in zip(records, probabilities):
        rows = split.setdefault(variant_key(record), ([], []))
        rows[0].append(record)
        rows[1].append(probs)
    return {key: distributions_from(*rows) for key, rows in split.items()}


# ---------------------------------------------------------------------------------------------- administer

def answer_mode_sample(model, tokenizer, instrument: Instrument, personas, community_name: str, cfg,
                       context_posts, community: str, seed: int) -> dict:
    """The validity card's answer modes: a seeded draw of `answer_mode_items` lettered items, also answered by
    sampling and parsing (survey.validity.answer_mode_samples per persona). {persona: {item: [answers]}}."""
    from hivelm.survey.instrument import select_items

    lettered = [iid for iid, item in instrument.items.items() if item.type in ("single_choice", "yes_no")]
    rng = keyed_rng(seed, community, "answer-modes")
    chosen = sorted(rng.choice(lettered, size=min(len(lettered), cfg.validity.answer_mode_items),
                               replace=False).tolist()) if lettered else []
    if not chosen:
        return {}
    subset = select_items(instrument, chosen)
    records = build_item_prompts(subset, personas, community_name, cfg.validity.answer_mode_samples, context_posts,
                                 mode="generate", system_prompt=cfg.system_prompt, in_context=cfg.in_context,
                                 seed=seed, community=community)
    texts, _ = sample_texts(model, tokenizer, records, cfg.decoding, seed)
    out: dict[str, dict[str, list]] = {}
    for record, text in zip(records, texts):
        answer = parse_answer(subset.items[record["item_id"]], text)
        out.setdefault(record["persona_id"], {}).setdefault(record["item_id"], []).append(answer)
    return out


def administer(model, tokenizer, instrument: Instrument, personas: Sequence[Template], community_name: str,
               cfg, context_posts: Sequence[str] | None = None, progress=None, community: str = "",
               seed: int | None = None) -> dict:
    """Survey one model (the caller has switched its adapter on or off) as one community's members.

    `cfg` is a SurveyConfig (mode, samples_per_item, system_prompt, seed, decoding, in_context);
    `context_posts` (real posts) makes it the in_context baseline, drawn per respondent keyed by the
    `community` key; `seed` replaces cfg.seed (the retest's second seed). Returns
    {instrument, mode, community, personas, seconds, prompts} plus, in loglik mode,
    distributions {persona: {item: {letter: p}}} (with the validity card on: averaged over the option orders,
    and the `validity` answers of survey.validity.split_variants beside them); in generate mode, answers {persona: [answer set per
    sample]} and responses [{id, item_id, persona_id, sample, text, answer}] (raw text: keep it out of
    reports)."""
    loglik = cfg.mode == "loglik"
    card = loglik and cfg.validity.enabled
    seed = cfg.seed if seed is None else seed
    if card:
        from hivelm.survey.validity import ballots, item_variants

        orders = {iid: item_variants(item, cfg.validity, seed) for iid, item in instrument.items.items()}
        asked = ballots([p.id for p in personas], cfg.validity)
    records = build_item_prompts(instrument, personas, community_name, 1 if loglik else cfg.samples_per_item,
                                 context_posts, mode=cfg.mode, system_prompt=cfg.system_prompt,
                                 in_context=cfg.in_context, seed=seed, community=community,
                                 variants=(lambda item, persona: asked(orders[item.id], persona.id)) if card else None)
    started = time.perf_counter()
    result = {"instrument": instrument.id, "mode": cfg.mode, "community": community_name,
              "personas": [p.id for p in personas], "prompts": len(records)}
    if card:
        from hivelm.survey.validity import split_variants

        probabilities = option_probabilities(model, tokenizer, records, cfg.decoding.batch_size, progress)
        result |= split_variants(distributions_by_variant(records, probabilities), orders)
        if cfg.validity.answer_mode_items:
            probes = [p for p in personas if asked.probe(p.id)]
            result["validity"]["generated"] = answer_mode_sample(model, tokenizer, instrument, probes,
                                                                 community_name, cfg, context_posts, community, seed)
    elif loglik:
        probabilities = option_probabilities(model, tokenizer, records, cfg.decoding.batch_size, progress)
        result["distributions"] = distributions_from(records, probabilities)
    else:
        texts, new_tokens = sample_texts(model, tokenizer, records, cfg.decoding, cfg.seed, progress)
        answers = {p.id: [{} for _ in range(cfg.samples_per_item)] for p in personas}
        responses = []
        for record, text in zip(records, texts):
            answer = parse_answer(instrument.items[record["item_id"]], text)
            answers[record["persona_id"]][record["sample"]][record["item_id"]] = answer
            responses.append({k: record[k] for k in ("id", "item_id", "persona_id", "sample")}
                             | {"text": text, "answer": answer})
        result.update(answers=answers, responses=responses, new_tokens=new_tokens)
    result["seconds"] = time.perf_counter() - started
    return result
