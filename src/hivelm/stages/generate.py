"""generate: adapter + baselines -> filtered synthetic corpora per community (paper section 5.1).

    hivelm generate --community keto
    hivelm generate --community keto generate.samples_per_topic=2 generate.decoding.temperature=0.7

Three corpora from the same topic-conditioned prompts:
  finetuned   base model + the community's adapter;
  untuned     the base model (adapter switched off) with the same persona prompt;
  in_context  the base model with k real training posts of the community in the prompt, a fresh seeded draw
              per prompt, each cut to w words (the paper's code reused one fixed pool; we do not).
Then post-filters, each counted: empty, exact and near duplicates, refusals, optional perplexity ceiling,
leakage (ROUGE-L against the community's training posts), and a seeded sample of at most N.
Generated text stays in the git-ignored, DVC-cached output; MLflow gets counts, and samples only on request.
"""

from __future__ import annotations

import logging
import time
import zlib

from hivelm import filters, paths
from hivelm.artifacts import staged_outputs, write_json, write_jsonl
from hivelm.chat import neutralize_prompts
from hivelm.config import GenerateConfig, HiveConfig, to_dict
from hivelm.generation import in_context_prompt, sample_texts
from hivelm.rng import keyed_rng
from hivelm.tables import read_jsonl
from hivelm.templates import Template, load_templates

log = logging.getLogger(__name__)

TIMINGS = ("seconds", "tokens_per_s")
"""Run-to-run noise: logged to MLflow, kept out of the git-tracked stats file."""

def build_prompts(cfg: GenerateConfig, templates: list[Template], community: str, community_name: str,
                  corpus: str, train_posts: list[dict]) -> list[dict]:
    """Pure core: one prompt record per (topic, sample). Template draws depend only on the seed, topic and
    sample index, so the three corpora get the same persona prompts and differ only in model and context."""
    prompts = []
    for topic in cfg.topics:
        draws = keyed_rng(cfg.seed, community, topic).integers(len(templates), size=cfg.samples_per_topic)
        for index, draw in enumerate(draws):
            template = templates[draw]
            request = template.render(community=community_name, topic=topic)
            record = {"id": f"{community}-{corpus}-{zlib.crc32(topic.encode()):08x}-{index}",
                      "community": community, "corpus": corpus, "topic": topic, "template_id": template.id,
                      "system": cfg.system_prompt}
            if corpus == "in_context":
                block, picks = in_context_prompt([p["text"] for p in train_posts], cfg.in_context, community_name,
                                                 keyed_rng(cfg.seed, community, topic, str(index), "context"))
                record["context_post_ids"] = [train_posts[i]["post_id"] for i in picks]
                request = block + request
            record["prompt"] = request
            prompts.append(record)
    return prompts


def post_filter(records: list[dict], cfg: GenerateConfig, references: list[str], perplexity=None) -> tuple[list[dict], dict]:
    """Run the post-filters in order (filters.post_filter); mark each record's `filter`."""
    return filters.post_filter(records, cfg.filters, references, cfg.seed, perplexity)


def generate_community(cfg: HiveConfig, community: str, model, tokenizer, progress=None) -> dict:
    """All configured corpora for one community: {corpus: (raw records, kept records, counts)}."""
    gen = cfg.generate
    spec = cfg.community(community)
    from hivelm.models import base_only, perplexities

    templates = load_templates(gen.templates, slots=("community", "topic"))
    train_posts = read_jsonl(paths.train_posts(community))
    references = [p["text"] for p in train_posts]
    decoding = to_dict(gen.decoding) | {"seed": gen.seed}

    def base_perplexity(texts):
        with base_only(model):
            return perplexities(model, tokenizer, texts)

    results, prompts, removed = {}, {}, {}
    for corpus in gen.corpora:
        # the prompts as the model sees them are the ones stored: special-token strings removed, and counted
        prompts[corpus], removed[corpus] = neutralize_prompts(
            tokenizer, build_prompts(gen, templates, community, spec.name, corpus, train_posts))
    sampled = sample_corpora(model, tokenizer, prompts, gen, progress)
    for corpus, (texts, new_tokens, seconds) in sampled.items():
        raw = [p | {"text": t, "decoding": decoding} for p, t in zip(prompts[corpus], texts)]
        kept, counts = post_filter(raw, gen, references, base_perplexity)
        counts.update(special_tokens_removed=removed[corpus], new_tokens=new_tokens, seconds=seconds, tokens_per_s=new_tokens / max(seconds, 1e-9))
        results[corpus] = (raw, kept, counts)
    return results


def sample_corpora(model, tokenizer, prompts: dict[str, list[dict]], gen: GenerateConfig,
                   progress=None) -> dict[str, tuple[list[str], int, float]]:
    """Each corpus's texts, generated tokens and seconds: {corpus: (texts, tokens, seconds)}.

    One corpus after the other (the adapter on for finetuned, off for the baselines), or with
    `generate.mixed_adapters` all corpora in one stream of batches, the adapter's rows beside the base model's
    (peft's mixed-adapter batches; the seconds are then shared out by generated tokens). The texts are the same
    either way: each prompt has its own random stream (generation.sample_texts)."""
    from hivelm.generation import sample_each
    from hivelm.models import BASE, for_corpus

    if not (gen.mixed_adapters and "finetuned" in prompts and len(prompts) > 1):
        sampled = {}
        for corpus, items in prompts.items():
            started = time.perf_counter()
            with for_corpus(model, corpus):
                texts, new_tokens = sample_texts(model, tokenizer, items, gen.decoding, gen.seed, progress)
            sampled[corpus] = (texts, new_tokens, time.perf_counter() - started)
        return sampled
    flat = [p for items in prompts.values() for p in items]
    names = [model.active_adapter if corpus == "finetuned" else BASE for corpus, items in prompts.items() for _ in items]
    started = time.perf_counter()
    texts, tokens = sample_each(model, tokenizer, flat, gen.decoding, gen.seed, progress, names)
    seconds = time.perf_counter() - started
    sampled, start = {}, 0
    for corpus, items in prompts.items():
        share = sum(tokens[start:start + len(items)])
        sampled[corpus] = (texts[start:start + len(items)], share, seconds * share / max(sum(tokens), 1))
        start += len(items)
    return sampled


def main(cfg: HiveConfig, run, community: str) -> dict:
    from hivelm import models
    from hivelm.progress import progress_bar

    model, tokenizer = models.load_for_corpora(cfg.base_model, community, cfg.generate.corpora)
    total = len(cfg.generate.topics) * cfg.generate.samples_per_topic * len(cfg.generate.corpora)
    with progress_bar(total, f"generate {community}") as advance:
        results = generate_community(cfg, community, model, tokenizer, advance)
    stats = {corpus: counts for corpus, (_, _, counts) in results.items()}
    with staged_outputs() as out:  # corpora, counts and the MLflow record change together or not at all
        out.dir(paths.generated(community))
        for corpus, (raw, kept, _) in results.items():
            write_jsonl(out.path(paths.corpus(community, corpus)), kept)
            write_jsonl(out.path(paths.raw_corpus(community, corpus)), raw)
        write_json(out.path(paths.generate_stats(community)),
                   {corpus: {k: v for k, v in counts.items() if k not in TIMINGS} for corpus, counts in stats.items()})
        run.log_metrics(stats)
        if cfg.tracking.log_samples:  # redacted like the report's samples: the store may be shared
            from hivelm.text import redact

            for corpus, (_, kept, _) in results.items():
                run.log_dict([redact(r["text"]) for r in kept[: cfg.tracking.max_logged_samples]],
                             f"samples/{corpus}.json")
    for corpus, counts in stats.items():
        log.info("%s/%s: %d generated, %d kept (refusals %.0f%%, %.1f tokens/s)", community, corpus,
                 counts["generated"], counts["kept"], 100 * counts["refusal_rate"], counts["tokens_per_s"])
    return stats
