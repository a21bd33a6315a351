"""The survey on the real embedded SmolLM2-135M-Instruct: a few SWED items, two personas, both modes.

SmolLM2-135M answers near chance, so this checks the machinery on a real tokenizer, chat
template and model, not the answers."""

import json
import math
from pathlib import Path

import pytest

from hivelm.config import DecodingConfig, StatisticsConfig, SurveyConfig, ValidityConfig
from hivelm.survey.answers import administer
from hivelm.survey.instrument import load_instrument, select_items
from hivelm.survey.parse import UNPARSEABLE
from hivelm.survey.scoring import summarise
from hivelm.templates import load_templates

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.integration]
ITEMS = ["Q5", "Q6", "Q8", "Q10", "Q13", "Q17"]


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    from hivelm.models import load_causal_lm
    from hivelm.stages.base_model import build

    folder = tmp_path_factory.mktemp("smollm2") / "base"
    build("embedded:smollm2", folder)
    return load_causal_lm(folder)


@pytest.fixture(scope="module")
def survey():
    instrument = select_items(load_instrument(REPO / "configs/instruments/swed.yaml"), ITEMS)
    personas = load_templates(REPO / "configs/templates/survey_personas.yaml", slots=("community",))[:2]
    return instrument, personas


def test_loglik_survey_on_smollm2(smollm2, survey):
    model, tokenizer = smollm2
    instrument, personas = survey
    cfg = SurveyConfig(statistics=StatisticsConfig(bootstrap_resamples=50), validity=ValidityConfig(enabled=False))
    result = administer(model, tokenizer, instrument, personas, "keto cooking", cfg)
    for persona in ("p01", "p02"):
        for iid in ITEMS:
            probs = result["distributions"][persona][iid]
            assert list(probs) == list(instrument.items[iid].letters)
            assert math.fsum(probs.values()) == pytest.approx(1.0) and min(probs.values()) > 0
    again = administer(model, tokenizer, instrument, personas, "keto cooking", cfg)["distributions"]
    flat = [(p, i, x) for p in again for i in again[p] for x in again[p][i]]
    assert [again[p][i][x] for p, i, x in flat] == pytest.approx(
        [result["distributions"][p][i][x] for p, i, x in flat], abs=1e-6)  # deterministic
    # the shared-prefix scoring on the real tokenizer and chat template equals one forward pass per option
    from hivelm.survey.answers import build_item_prompts, option_logprobs
    from test_survey import naive_logprob

    records = build_item_prompts(instrument, personas, "keto cooking", mode="loglik")
    for record, scores in list(zip(records, option_logprobs(model, tokenizer, records)))[::4]:  # a few: slow path
        assert scores == pytest.approx([naive_logprob(model, tokenizer, record, reply)
                                        for _, reply in record["choices"]], abs=1e-4)
    summary = summarise(instrument, result, cfg.statistics, draws_per_persona=50)
    json.dumps(summary, allow_nan=False)
    assert summary["respondents"] == 2 and summary["unparseable_rate"] == 0.0  # loglik: one per persona
    assert set(summary["criteria"]) == {"C2", "C3", "B4"}
    assert 0.0 <= summary["criteria"]["C3"]["rate"]["value"] <= 1.0


def test_generate_survey_on_smollm2(smollm2, survey):
    model, tokenizer = smollm2
    instrument, personas = survey
    cfg = SurveyConfig(mode="generate", samples_per_item=2, decoding=DecodingConfig(max_new_tokens=10),
                       statistics=StatisticsConfig(bootstrap_resamples=50))
    result = administer(model, tokenizer, instrument, personas, "keto cooking", cfg)
    assert len(result["responses"]) == 2 * 2 * len(ITEMS) and result["new_tokens"] > 0
    answers = [r["answer"] for r in result["responses"]]
    for response in result["responses"]:
        item = instrument.items[response["item_id"]]
        answer = response["answer"]
        assert answer == UNPARSEABLE or answer in item.letters or (
            item.type == "numeric" and item.bin_of(answer) is not None)
    assert any(a != UNPARSEABLE for a in answers)  # SmolLM2 does follow the letter format some of the time
    summary = summarise(instrument, result, cfg.statistics)
    json.dumps(summary, allow_nan=False)
    assert summary["respondents"] == 4
    rates = [summary["items"][iid]["unparseable_rate"] for iid in ITEMS]
    assert summary["unparseable_rate"] == pytest.approx(sum(rates) / len(rates))
