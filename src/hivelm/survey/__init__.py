"""Psychometric surveys of community models (paper section 6): declarative instruments, prompts and answers
(option log-likelihoods or sampled text), and pure scoring.

    from hivelm.survey import load_instrument, administer, summarise
    instrument = load_instrument(cfg.survey.instrument, cfg.survey.instrument_text, cfg.survey.criterion_params)
    result = administer(model, tokenizer, instrument, personas, "keto cooking", cfg.survey)
    report = summarise(instrument, result, cfg.survey)

Modules: instrument (format, loader, validator), parse (free text -> answer or UNPARSEABLE), answers
(prompts, loglik, generate, administer), scoring (criteria, majority, summaries, contrasts; pure), cli
(`hivelm survey-score`).
"""

from hivelm.survey.answers import administer, build_item_prompts, option_logprobs, option_probabilities
from hivelm.survey.instrument import (
    Instrument,
    InstrumentError,
    Item,
    Option,
    load_instrument,
    resolve_instrument_path,
    select_items,
    with_params,
)
from hivelm.survey.parse import UNPARSEABLE, parse_answer
from hivelm.survey.scoring import (
    contrasts,
    evaluate,
    majority_answers,
    respondents,
    score_answers,
    summarise,
)

__all__ = [
    "UNPARSEABLE", "Instrument", "InstrumentError", "Item", "Option", "administer", "build_item_prompts",
    "contrasts", "evaluate", "load_instrument", "majority_answers", "option_logprobs", "option_probabilities",
    "parse_answer", "resolve_instrument_path", "respondents", "score_answers", "select_items", "summarise",
    "with_params",
]
