"""survey: each community's adapter and both baselines answer a psychometric instrument (paper section 6).

    hivelm survey --community keto
    hivelm survey --community keto survey.mode=generate survey.samples_per_item=50

Models: `finetuned` (base + the community's adapter), `untuned` (adapter off, same personas), `in_context`
(adapter off, k real training posts of the community in every prompt). Answers by option log-likelihood
(default; nothing to parse) or by sampling and parsing (unparseable answers are counted, never mapped to an
option). Scores per persona, bootstrap intervals over personas; community contrasts come in `summarize`.
Raw answers (model text in generate mode) stay in a DVC-cached file; the survey report holds numbers only.
"""

from __future__ import annotations

import logging

from hivelm import paths
from hivelm.artifacts import staged_outputs, write_json
from hivelm.config import ConfigError, HiveConfig
from hivelm.headline import estimate_text
from hivelm.tables import read_jsonl

log = logging.getLogger(__name__)

TIMINGS = ("seconds",)
"""Run-to-run noise: logged to MLflow, kept out of the (DVC-hashed) raw answers file."""


def load_survey_inputs(cfg: HiveConfig):
    from hivelm.survey.instrument import load_instrument, resolve_instrument_path, select_items
    from hivelm.templates import load_templates

    if cfg.survey.instrument is None:
        raise ConfigError("survey.instrument is null: this project declares no instrument, so there is no survey")
    instrument = load_instrument(resolve_instrument_path(cfg.survey.instrument), cfg.survey.instrument_text,
                                 cfg.survey.criterion_params)
    if cfg.survey.items:
        instrument = select_items(instrument, list(cfg.survey.items))
    personas = load_templates(cfg.survey.personas, slots=("community",), minimum=10)
    return instrument, personas


def survey_community(cfg: HiveConfig, community: str, model, tokenizer, progress=None) -> tuple[dict, dict]:
    """Pure-ish core: ({corpus: numbers-only summary}, {corpus: raw administration}) for one community."""
    from hivelm.models import for_corpus
    from hivelm.survey.answers import administer
    from hivelm.survey.instrument import select_items
    from hivelm.survey.scoring import summarise

    instrument, personas = load_survey_inputs(cfg)
    name = cfg.community(community).name
    posts = [p["text"] for p in read_jsonl(paths.train_posts(community))]
    summaries, raw = {}, {}
    card = cfg.survey.mode == "loglik" and cfg.survey.validity.enabled
    for corpus in cfg.survey.corpora:
        context = posts if corpus == "in_context" else None
        with for_corpus(model, corpus):
            administered = administer(model, tokenizer, instrument, personas, name, cfg.survey, context, progress,
                                      community=community)
            rerun = personas[:cfg.survey.validity.rerun_personas]
            retest = (lite_administration(model, tokenizer, select_items(instrument, _primary_items(instrument)),
                                          rerun, name, cfg, context, progress, community,
                                          cfg.survey.validity.retest_seed)
                      if card and context and _primary_items(instrument) else None)
        summaries[corpus] = summarise(instrument, administered, cfg.survey.statistics)
        if card:
            summaries[corpus]["validity"] = model_card_of(instrument, administered, cfg, retest, summaries[corpus])
        raw[corpus] = administered
    return summaries, raw


def lite_administration(model, tokenizer, instrument, personas, name, cfg, context, progress, community, seed,
                        ) -> dict:
    """The headline's ballots (option orders) without paraphrases, twins or sampled answers, under `seed`:
    the retest's second draw and the dose-response's scales. Returns the order-balanced distributions."""
    from dataclasses import replace

    from hivelm.survey.answers import administer

    lite = replace(cfg.survey, validity=replace(cfg.survey.validity, paraphrases=False, twins=False,
                                                answer_mode_items=0))
    return administer(model, tokenizer, instrument, personas, name, lite, context, progress, community=community,
                      seed=seed)["distributions"]


def model_card_of(instrument, administered: dict, cfg: HiveConfig, retest: dict | None, summary: dict) -> dict:
    from dataclasses import replace

    from hivelm.survey.scoring import DEFAULT_DRAWS
    from hivelm.survey.validity import model_card

    stats = cfg.survey.statistics  # the card's many intervals: at most 300 resamples each (its CPU time)
    stats = replace(stats, bootstrap_resamples=min(300, stats.bootstrap_resamples))
    scores = {cid: c["per_persona"] for cid, c in summary["criteria"].items()}  # computed once: not redone
    return model_card(instrument, administered, cfg.survey.validity, stats, DEFAULT_DRAWS, retest, scores)


def community_card(cfg: HiveConfig, community: str, model, tokenizer, summaries: dict, raw: dict,
                   progress=None) -> dict:
    """The card's parts that span a community's models: the variance decomposition (order, paraphrase, persona,
    model) and the finetuned model's dose-response over survey.validity.dose_scales, over the items of the
    primary score and the first survey.validity.rerun_personas personas (s = 1 and s = 0 are the finetuned and untuned models' own answers: peft's scaling at 0
    reproduces the untuned model exactly, tests/test_survey.py)."""
    from hivelm.models import adapter_scale
    from hivelm.survey.instrument import select_items
    from hivelm.survey.scoring import DEFAULT_DRAWS
    from hivelm.survey.validity import dose_response, variance_rows, variance_shares

    cards = {corpus: s["validity"] for corpus, s in summaries.items() if "validity" in s}
    out = {"variance": variance_shares(variance_rows(cards))}
    instrument, personas = load_survey_inputs(cfg)
    scales = cfg.survey.validity.dose_scales
    needed = _primary_items(instrument)
    if not (scales and needed and "finetuned" in raw and "validity" in raw["finetuned"]):
        return out | {"dose": None}
    subset = select_items(instrument, needed)
    surveyed = {1.0: "finetuned", 0.0: "untuned"}  # s = 1 is the finetuned model, s = 0 the untuned one
    by_scale = {}
    for scale in scales:
        if surveyed.get(scale) in raw:  # asked already, in the same ballots (s = 0: tests/test_survey.py)
            by_scale[scale] = {p: {i: d[i] for i in needed} for p, d in raw[surveyed[scale]]["distributions"].items()}
            continue
        with adapter_scale(model, scale):
            by_scale[scale] = lite_administration(model, tokenizer, subset, personas[:cfg.survey.validity.rerun_personas],
                                                  cfg.community(community).name, cfg, None, progress, community,
                                                  cfg.survey.seed)
    return out | {"dose": dose_response(subset, by_scale, cfg.survey.statistics, DEFAULT_DRAWS)}


def _primary_items(instrument) -> list[str]:
    """The items the primary score reads (directly, or through the criteria it is built from)."""
    from hivelm.survey.instrument import reads

    return reads(instrument, instrument.primary) if instrument.primary else []


def mlflow_names(summaries: dict) -> dict[str, float]:
    """Stable names: `survey/WCS/finetuned`, `survey/WCS/finetuned/low`, `survey/unparseable/untuned`, ..."""
    from hivelm.survey.scoring import estimate

    names = {}
    for corpus, summary in summaries.items():
        names[f"survey/unparseable/{corpus}"] = summary["unparseable_rate"]
        for cid, criterion in summary["criteria"].items():
            point = estimate(criterion) or {}
            for part in ("value", "low", "high"):
                if point.get(part) is not None:
                    names[f"survey/{cid}/{corpus}" + ("" if part == "value" else f"/{part}")] = point[part]
    return names


def validity_names(summaries: dict, validity: dict | None) -> dict[str, float]:
    """The card in MLflow: `survey/validity/<corpus>/informative` (1 or 0), `.../checks_passed`, each check's
    value (`.../order_sensitivity`, ...), and `survey/validity/dose_slope` with its interval."""
    names = {}
    for corpus, summary in summaries.items():
        card = summary.get("validity")
        if not card:
            continue
        names[f"survey/validity/{corpus}/informative"] = float(card["verdict"] == "informative")
        names[f"survey/validity/{corpus}/checks_passed"] = card["checks_passed"]
        names |= {f"survey/validity/{corpus}/{name}": check["value"] for name, check in card["checks"].items()
                  if check["value"] is not None}
    slope = ((validity or {}).get("dose") or {}).get("slope") or {}
    names |= {f"survey/validity/dose_slope{'' if k == 'value' else '/' + k}": v for k, v in slope.items()
              if v is not None}
    return names


def main(cfg: HiveConfig, run, community: str) -> dict:
    from hivelm import models
    from hivelm.progress import progress_bar

    model, tokenizer = models.load_for_corpora(cfg.base_model, community, cfg.survey.corpora)
    with progress_bar(None, f"survey {community}", unit="prompt") as advance:
        summaries, raw = survey_community(cfg, community, model, tokenizer, advance)
        validity = (community_card(cfg, community, model, tokenizer, summaries, raw, advance)
                    if any("validity" in s for s in summaries.values()) else None)
    timings = {corpus: {k: administered.pop(k) for k in TIMINGS if k in administered}
               for corpus, administered in raw.items()}
    with staged_outputs() as out:  # answers, scores and the MLflow record change together or not at all
        write_json(out.path(paths.survey_raw(community)), raw)
        write_json(out.path(paths.survey_report(community)), {"community": community, "corpora": summaries}
                   | ({"validity": validity} if validity else {}))
        run.log_metrics(mlflow_names(summaries) | validity_names(summaries, validity) | {f"survey/{k}/{corpus}": v for corpus, t in timings.items()
                                                   for k, v in t.items()}
                        | {f"survey/prompts/{corpus}": a["prompts"] for corpus, a in raw.items()})
    for corpus, summary in summaries.items():
        primary = summary["criteria"].get(summary["primary"], {}).get("mean", {})
        log.info("%s/%s: %s %s, unparseable %.1f%%", community, corpus, summary["primary"],
                 estimate_text(primary), 100 * summary["unparseable_rate"])
    return summaries
