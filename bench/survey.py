"""Benchmark: option log-likelihoods vs sampling-and-parsing (the paper's protocol) for the same survey, in
one process, on the same model, items and personas.

    .venv/bin/python bench/survey.py [--model models/base] [--items Q5,Q6,Q7,Q8,Q9,Q10,Q13] [--personas 2]
                                     [--samples 50] [--max-new-tokens 12] [--batch-size 16] [--threads 0]
                                     [--in-context] [--loglik-only] [--repeats 2] [--card [--probes 1]]

loglik scores every option once per (item, persona); generate samples `--samples` answers per item per
persona (the paper: 50) and parses them. loglik is timed before and after generation and the faster run
kept (best of `--repeats`), since other jobs on shared cores can slow one run several-fold. `--in-context`
gives every respondent k=8 real demo posts of 20 words (the in_context baseline's long prompts);
`--loglik-only` skips the generate mode (the instrument for loglik's own speed). `--card` times one
community's survey stage as the stage runs it (finetuned, untuned and in_context models, each scored and
summarised) without and with the validity card (survey.validity defaults: ballots, probes, twins,
paraphrases, answer modes, the in_context retest, the dose-response on a random LoRA adapter) and prints the
overhead factor. Prints each mode's wall time, their ratio, each mode's unparseable
rate and how often the two modes' majority answers agree; the last line is JSON. Needs models/base
(`hivelm base_model`).
"""

from __future__ import annotations

import argparse
import json
import time

from hivelm.config import DecodingConfig, SurveyConfig, ValidityConfig
from hivelm.models import load_causal_lm, set_threads
from hivelm.survey.answers import administer
from hivelm.survey.instrument import load_instrument, select_items
from hivelm.survey.scoring import distribution_majority, majority_answers
from hivelm.templates import load_templates


def timed(model, tokenizer, instrument, personas, cfg, context=None) -> tuple[float, dict]:
    started = time.perf_counter()
    result = administer(model, tokenizer, instrument, personas, "keto cooking", cfg, context, community="keto")
    return time.perf_counter() - started, result


def stage_like(model, tokenizer, instrument, personas, context, card: bool, probes: int | None = None) -> float:
    """Seconds for one community's survey as stages/survey.py runs it, with or without the validity card."""
    from dataclasses import replace

    from hivelm.config import CommunityConfig, HiveConfig
    from hivelm.models import for_corpus
    from hivelm.stages.survey import community_card, lite_administration, model_card_of
    from hivelm.survey.scoring import summarise

    cfg = HiveConfig()
    cfg.survey = replace(cfg.survey, validity=replace(cfg.survey.validity, enabled=card,
                                                      personas=probes or cfg.survey.validity.personas))
    started = time.perf_counter()
    summaries, raw = {}, {}
    for corpus in ("finetuned", "untuned", "in_context"):
        posts = context if corpus == "in_context" else None
        with for_corpus(model, corpus):
            raw[corpus] = administer(model, tokenizer, instrument, personas, "keto cooking", cfg.survey, posts,
                                     community="keto")
            retest = (lite_administration(model, tokenizer, instrument, personas, "keto cooking", cfg, posts, None,
                                          "keto", cfg.survey.validity.retest_seed) if card and posts else None)
        summaries[corpus] = summarise(instrument, raw[corpus], cfg.survey.statistics)
        if card:
            summaries[corpus]["validity"] = model_card_of(instrument, raw[corpus], cfg, retest, summaries[corpus])
    if card:  # community_card reads the instrument and personas from the config: hand it the bench's
        from unittest import mock

        cfg.communities = {"keto": CommunityConfig(name="keto cooking")}
        with mock.patch("hivelm.stages.survey.load_survey_inputs", return_value=(instrument, personas)):
            community_card(cfg, "keto", model, tokenizer, summaries, raw)
    return time.perf_counter() - started


def card_overhead(args, model, tokenizer, instrument, personas, context) -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                             init_lora_weights=False)).eval()  # a stand-in community adapter
    times = {False: [], True: []}
    for _ in range(args.repeats):  # interleaved, best of n: shared cores slow some runs several-fold
        for card in (False, True):
            times[card].append(stage_like(model, tokenizer, instrument, personas, context, card, args.probes))
    plain, card = min(times[False]), min(times[True])
    result = {"bench": "survey-card", "model": args.model, "items": list(instrument.items), "personas": len(personas),
              "probes": args.probes, "in_context": args.in_context, "plain_s": plain, "card_s": card, "overhead": card / plain, "plain_s_all": times[False],
              "card_s_all": times[True]}
    print(f"survey stage (one community, 3 models): {plain:.1f} s without the card, {card:.1f} s with it: "
          f"{card / plain:.2f}x")
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/base")
    parser.add_argument("--instrument", default="configs/instruments/swed.yaml")
    parser.add_argument("--personas-file", default="configs/templates/survey_personas.yaml")
    parser.add_argument("--items", default="Q5,Q6,Q7,Q8,Q9,Q10,Q13", help="comma-separated item ids, or 'all'")
    parser.add_argument("--personas", type=int, default=2)
    parser.add_argument("--samples", type=int, default=50, help="generations per item per persona (paper: 50)")
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--in-context", action="store_true", help="k=8 real demo posts in every prompt")
    parser.add_argument("--loglik-only", action="store_true", help="time loglik only")
    parser.add_argument("--repeats", type=int, default=2, help="loglik timings; the fastest is kept")
    parser.add_argument("--card", action="store_true", help="time the survey stage without and with the validity card")
    parser.add_argument("--probes", type=int, default=None,
                        help="--card: probe personas (survey.validity.personas); keep probes/personas at the demo's "
                             "2/12 when timing fewer personas")
    args = parser.parse_args()
    set_threads(args.threads)
    model, tokenizer = load_causal_lm(args.model)
    instrument = load_instrument(args.instrument)
    if args.items != "all":
        instrument = select_items(instrument, args.items.split(","))
    personas = load_templates(args.personas_file, slots=("community",))[: args.personas]
    decoding = DecodingConfig(repetition_penalty=1.0, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    loglik_cfg = SurveyConfig(mode="loglik", decoding=decoding, validity=ValidityConfig(enabled=False))  # one order
    generate_cfg = SurveyConfig(mode="generate", samples_per_item=args.samples, decoding=decoding)
    context = None
    if args.in_context:
        import pandas as pd

        demo = pd.read_csv("data/demo/posts.csv", dtype=str, keep_default_na=False)
        context = demo.loc[demo["community"] == "keto", "text"].tolist()
    timed(model, tokenizer, select_items(instrument, list(instrument.items)[:1]), personas[:1], loglik_cfg)  # warm-up
    if args.card:
        return card_overhead(args, model, tokenizer, instrument, personas, context)
    loglik_s, loglik = timed(model, tokenizer, instrument, personas, loglik_cfg, context)
    if args.loglik_only:
        times = [loglik_s] + [timed(model, tokenizer, instrument, personas, loglik_cfg, context)[0]
                              for _ in range(args.repeats - 1)]
        result = {"bench": "survey-loglik", "model": args.model, "items": list(instrument.items),
                  "personas": len(personas), "in_context": args.in_context, "prompts": loglik["prompts"],
                  "loglik_s": min(times), "loglik_s_all": times, "prompts_per_s": loglik["prompts"] / min(times)}
        print(f"loglik: {loglik['prompts']} prompts in {min(times):.1f} s (runs: "
              + ", ".join(f"{t:.1f}" for t in times) + f"), {result['prompts_per_s']:.2f} prompts/s")
        print(json.dumps(result))
        return
    generate_s, generated = timed(model, tokenizer, instrument, personas, generate_cfg, context)
    loglik_s = min([loglik_s] + [timed(model, tokenizer, instrument, personas, loglik_cfg, context)[0]
                                 for _ in range(args.repeats - 1)])  # shared cores: best of n
    answers = [r["answer"] for r in generated["responses"]]
    unparseable = sum(a == "UNPARSEABLE" for a in answers) / len(answers)
    by_item = {iid: sum(r["answer"] == "UNPARSEABLE" for r in generated["responses"] if r["item_id"] == iid)
               / sum(r["item_id"] == iid for r in generated["responses"]) for iid in instrument.items}
    vote_l, _ = distribution_majority(instrument, loglik["distributions"])
    vote_g, _ = majority_answers(instrument, [s for sets in generated["answers"].values() for s in sets])
    comparable = [iid for iid in instrument.items if instrument.items[iid].type in ("single_choice", "yes_no")
                  and iid in vote_g]
    result = {
        "bench": "survey", "model": args.model, "items": list(instrument.items), "personas": len(personas),
        "samples_per_item": args.samples, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
        "loglik_s": loglik_s, "generate_s": generate_s, "speedup": generate_s / loglik_s,
        "loglik_prompts": loglik["prompts"], "generate_prompts": generated["prompts"],
        "generate_new_tokens": generated["new_tokens"],
        "loglik_unparseable_rate": 0.0, "generate_unparseable_rate": unparseable,
        "generate_unparseable_by_item": by_item,
        "majority_agreement": (sum(vote_l[i] == vote_g[i] for i in comparable) / len(comparable)) if comparable else None,
    }
    print(f"loglik: {loglik['prompts']} prompts in {loglik_s:.1f} s, unparseable 0 by construction")
    print(f"generate: {generated['prompts']} samples ({generated['new_tokens']} tokens) in {generate_s:.1f} s, "
          f"unparseable {unparseable:.1%}")
    print("unparseable by item: " + ", ".join(f"{k} {v:.0%}" for k, v in by_item.items()))
    print(f"loglik is {result['speedup']:.1f}x faster; majority answers agree on "
          f"{result['majority_agreement'] if comparable else 'n/a'} of the lettered items")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
