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
    from hivelm.survey.scoring import summarise

    instrument, personas = load_survey_inputs(cfg)
    name = cfg.community(community).name
    posts = [p["text"] for p in read_jsonl(paths.train_posts(community))]
    summaries, raw = {}, {}
    for corpus in cfg.survey.corpora:
        with for_corpus(model, corpus):
            administered = administer(model, tokenizer, instrument, personas, name, cfg.survey,
                                      posts if corpus == "in_context" else None, progress, community=community)
        summaries[corpus] = summarise(instrument, administered, cfg.survey.statistics)
        raw[corpus] = administered
    return summaries, raw


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


def main(cfg: HiveConfig, run, community: str) -> dict:
    from hivelm import models
    from hivelm.progress import progress_bar

    model, tokenizer = models.load_for_corpora(cfg.base_model, community, cfg.survey.corpora)
    with progress_bar(None, f"survey {community}", unit="prompt") as advance:
        summaries, raw = survey_community(cfg, community, model, tokenizer, advance)
    timings = {corpus: {k: administered.pop(k) for k in TIMINGS if k in administered}
               for corpus, administered in raw.items()}
    with staged_outputs() as out:  # answers, scores and the MLflow record change together or not at all
        write_json(out.path(paths.survey_raw(community)), raw)
        write_json(out.path(paths.survey_report(community)), {"community": community, "corpora": summaries})
        run.log_metrics(mlflow_names(summaries) | {f"survey/{k}/{corpus}": v for corpus, t in timings.items()
                                                   for k, v in t.items()}
                        | {f"survey/prompts/{corpus}": a["prompts"] for corpus, a in raw.items()})
    for corpus, summary in summaries.items():
        primary = summary["criteria"].get(summary["primary"], {}).get("mean", {})
        log.info("%s/%s: %s %s, unparseable %.1f%%", community, corpus, summary["primary"],
                 estimate_text(primary), 100 * summary["unparseable_rate"])
    return summaries
