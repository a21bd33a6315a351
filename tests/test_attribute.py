"""Attribution by adapter likelihood: the gains against a direct per-post computation, the stage's outputs, and
`hivelm attribute FILE` (one distribution per post, bad input refused)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from hivelm.config import StatisticsConfig
from hivelm.stages.attribute import analyse, distributions

COMMUNITIES = {"keto": "keto cooking", "running": "distance running"}
POSTS = ["almond flour fat bombs for breakfast again", "tempo run then hill repeats, legs are done",
         "meal prep eggs salmon and a long run on sunday morning with new shoes", "rest day"]


def test_likelihood_matrix_diagonal_share_and_attribution_from_gains():
    """Pure core on hand-made gains: keto's adapter gains most on keto posts, running's on running posts except
    one post that keto's adapter explains better."""
    gains = {"keto": np.array([[1.0, 0.1], [0.8, 0.2], [0.9, 0.0]]),
             "running": np.array([[0.1, 0.7], [0.0, 0.9], [0.6, 0.2]])}
    result = analyse(gains, {"keto": ["keto", "running", "keto"], "running": ["running"] * 3},
                     StatisticsConfig(bootstrap_resamples=200))
    matrix, summary = result["matrix"], result["summary"]
    assert np.allclose(matrix["gain"], [[0.9, 0.1], [7 / 30, 0.6]])
    assert matrix["argmax"] == ["keto", "running"]
    assert summary["diagonal_share"]["value"] == 1.0
    for row_value, row_low, row_high in zip(matrix["gain"], matrix["low"], matrix["high"]):
        assert all(lo <= v <= hi for v, lo, hi in zip(row_value, row_low, row_high))
    likelihood = result["attribution"]["likelihood"]
    assert likelihood["confusion"] == [[3, 0], [1, 2]]
    assert likelihood["accuracy"]["value"] == pytest.approx(5 / 6)
    assert result["attribution"]["tfidf"]["confusion"] == [[2, 1], [0, 3]]
    for scores in summary["attribution"].values():
        for estimate in scores.values():
            assert estimate["low"] <= estimate["value"] <= estimate["high"]
    assert [r["predicted"] for r in result["confusion_rows"]["likelihood"]] == ["keto"] * 3 + ["running", "running",
                                                                                               "keto"]


def test_distributions_sum_to_one_and_sharpen_with_lower_temperature():
    gains = np.array([[0.5, 0.1, -0.2], [0.0, 0.0, 0.0]])
    warm, cold = distributions(gains, ["a", "b", "c"], 1.0), distributions(gains, ["a", "b", "c"], 0.1)
    for record in warm + cold:
        assert sum(record["probability"].values()) == pytest.approx(1.0)
    assert warm[0]["attributed"] == "a" and cold[0]["probability"]["a"] > warm[0]["probability"]["a"]
    assert warm[1]["probability"] == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def make_adapter(base_dir: Path, out: Path, seed: int) -> None:
    """A LoRA adapter with random (not zero) B matrices, so it really changes the base model's likelihoods."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                      init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(out)


@pytest.fixture
def attribute_project(project, tiny_model_dir) -> Path:
    """The project with two communities, the tiny model as base, two random adapters, prepared posts."""
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["communities"] = {k: {"label": k, "name": v} for k, v in COMMUNITIES.items()}
    params["attribute"]["batch_size"] = 3  # batches of uneven length: padding is exercised
    params["attribute"]["statistics"]["bootstrap_resamples"] = 50
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(tiny_model_dir, project / "models/base")
    for seed, community in enumerate(COMMUNITIES):
        make_adapter(project / "models/base", project / "models/adapters" / community, seed)
    return project


def direct_mean_loglik(model, tokenizer, system: str, user: str, post: str) -> float:
    """One post, one plain forward pass: mean log-probability of the reply's tokens (post + end of turn)."""
    import torch

    messages = [{"role": "system", "content": system}, {"role": "user", "content": user},
                {"role": "assistant", "content": post}]
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + reply_ids])
    with torch.no_grad():
        logprobs = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    positions = range(len(prompt_ids) - 1, ids.shape[1] - 1)  # the logits that predict each reply token
    return float(np.mean([logprobs[p, ids[0, p + 1]].item() for p in positions]))


def test_gains_equal_a_direct_per_post_computation_with_merged_adapters(attribute_project):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hivelm.config import load_config
    from hivelm.stages.attribute import load_scorer, score_texts, scoring_template

    cfg = load_config("params.yaml")
    model, tokenizer = load_scorer(cfg, list(COMMUNITIES))
    scored = score_texts(cfg, model, tokenizer, POSTS, "test")
    template = scoring_template(cfg.instruct.templates, None)
    system = cfg.instruct.system_prompt
    plain_tokenizer = AutoTokenizer.from_pretrained("models/base")
    base = AutoModelForCausalLM.from_pretrained("models/base").eval()
    for column, (community, name) in enumerate(COMMUNITIES.items()):
        merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("models/base"),
                                           f"models/adapters/{community}").merge_and_unload().eval()
        user = template.render(community=name)
        for row, post in enumerate(POSTS):
            adapter_ll = direct_mean_loglik(merged, plain_tokenizer, system, user, post)
            base_ll = direct_mean_loglik(base, plain_tokenizer, system, user, post)
            assert scored["adapter"][row, column] == pytest.approx(adapter_ll, abs=1e-5)
            assert scored["base"][row, column] == pytest.approx(base_ll, abs=1e-5)
            assert scored["gain"][row, column] == pytest.approx(adapter_ll - base_ll, abs=1e-5)
    assert np.abs(scored["gain"]).min() > 1e-3  # the adapters really move the likelihoods
    assert not np.allclose(scored["gain"][:, 0], scored["gain"][:, 1])
    # ... and the fast path really ran: the prompt (system + persona instruction) went through the model once
    from hivelm.models import _shared_prefix
    from hivelm.stages.attribute import encode_posts, scoring_records

    records = scoring_records(POSTS, system, template, COMMUNITIES["keto"])
    prompt = plain_tokenizer.apply_chat_template(records[0]["messages"][:2], tokenize=False, add_generation_prompt=True)
    assert _shared_prefix(encode_posts(tokenizer, records, cfg.attribute.max_length)) >= len(
        plain_tokenizer(prompt, add_special_tokens=False)["input_ids"]) - 1


def write_prepared(root: Path) -> None:
    from conftest import community_posts

    vocabulary = {"keto": "keto", "running": "running"}
    for community, source in vocabulary.items():
        posts = community_posts(source, 12)
        for split, rows in (("train", posts[:8]), ("heldout", posts[8:])):
            path = root / "data/prepared" / community / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_stage_writes_matrix_attribution_plots_and_the_likelihood_section(attribute_project):
    from hivelm.cli import main

    write_prepared(attribute_project)
    assert main(["attribute"]) == 0
    out = attribute_project / "reports/attribute"
    matrix = json.loads((out / "matrix.json").read_text(), parse_constant=pytest.fail)
    assert matrix["rows"] == matrix["columns"] == list(COMMUNITIES) and matrix["n"] == [4, 4]
    assert np.array(matrix["gain"]).shape == (2, 2)
    assert np.allclose(np.array(matrix["adapter_loglik"]) - np.array(matrix["base_loglik"]), matrix["gain"], atol=2e-5)  # each written at 6 digits
    attribution = json.loads((out / "attribution.json").read_text(), parse_constant=pytest.fail)
    for name in ("likelihood", "tfidf"):
        assert np.sum(attribution[name]["confusion"]) == 8
        rows = json.loads((out / f"confusion_{name}.json").read_text())
        assert len(rows) == 8 and set(rows[0]) == {"actual", "predicted"}
    assert "text" not in (out / "matrix.json").read_text()  # numbers only
    # Each held-out post's gains by post_id (hivelm recover joins them to planted labels): the rows of the
    # matrix are their means, and no post's text is in the file.
    gains = [json.loads(line) for line in (out / "heldout.gains.jsonl").read_text().splitlines()]
    heldout = [json.loads(line) for c in COMMUNITIES
               for line in (attribute_project / "data/prepared" / c / "heldout.jsonl").read_text().splitlines()]
    assert [g["post_id"] for g in gains] == [r["post_id"] for r in heldout]
    assert [g["community"] for g in gains] == [r["community"] for r in heldout]
    for row, community in enumerate(COMMUNITIES):
        mean = np.mean([[g["gain"][c] for c in COMMUNITIES] for g in gains if g["community"] == community], axis=0)
        assert np.allclose(mean, matrix["gain"][row], atol=2e-5)
    assert not any(r["text"][:30] in (out / "heldout.gains.jsonl").read_text() for r in heldout)
    import mlflow

    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.stage = 'attribute'",
                              output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert {"diagonal_share", "diagonal_share/low", "likelihood/macro_f1", "tfidf/accuracy"} <= set(runs[0].data.metrics)
    assert runs[0].data.params["attribute.max_length"] == "256" and runs[0].data.tags["template_id"] == "t01"
    assert main(["summarize"]) == 0
    likelihood = json.loads((attribute_project / "reports/metrics.json").read_text())["likelihood"]
    share = likelihood["diagonal_share"]
    assert share["low"] <= share["value"] <= share["high"]
    assert set(likelihood["attribution"]) == {"likelihood", "tfidf"}
    assert {"value", "low", "high"} <= set(likelihood["attribution"]["likelihood"]["macro_f1"])


def test_attribute_file_writes_one_distribution_per_post(attribute_project):
    from hivelm.cli import main

    posts = attribute_project / "mine.csv"
    posts.write_text("post_id,text,community\n" + "".join(f'p{i},"{t}",x\n' for i, t in enumerate(POSTS)))
    assert main(["attribute", str(posts), "attribute.temperature=0.5"]) == 0
    records = [json.loads(line) for line in (attribute_project / "mine.attribution.jsonl").read_text().splitlines()]
    assert [r["post_id"] for r in records] == [f"p{i}" for i in range(len(POSTS))]
    for record in records:
        assert set(record["probability"]) == set(COMMUNITIES)
        assert sum(record["probability"].values()) == pytest.approx(1.0)
        assert record["attributed"] == max(record["gain"], key=record["gain"].get)
        assert "text" not in record
    jsonl = attribute_project / "mine.jsonl"
    jsonl.write_text("".join(json.dumps({"post_id": f"j{i}", "text": t}) + "\n" for i, t in enumerate(POSTS[:2])))
    assert main(["attribute", str(jsonl), "--out", "elsewhere/out.jsonl"]) == 0
    assert len((attribute_project / "elsewhere/out.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("content, expected", [
    ('post_id,text\np1,"fine post"\np2,""\np3,"   "\n', "rows 2, 3"),
    ('{"post_id": "p1", "text": "fine"}\n{"post_id": "p2", "text": \n', "line 2"),
    ('post_id,body\np1,"a post"\n', "'text' (data.columns.text) not found"),
])
def test_bad_file_names_file_and_line_exits_2_and_writes_nothing(attribute_project, capsys, content, expected):
    from hivelm.cli import main

    suffix = ".jsonl" if content.startswith("{") else ".csv"
    posts = attribute_project / f"bad{suffix}"
    posts.write_text(content)
    assert main(["attribute", str(posts)]) == 2
    error = capsys.readouterr().err
    assert str(posts) in error and expected in error
    assert not (attribute_project / "bad.attribution.jsonl").exists()
    assert sorted(p.name for p in attribute_project.iterdir() if p.name.startswith("bad")) == [posts.name]


def likelihood_numbers() -> dict:
    estimate = {"value": 0.75, "low": 0.5, "high": 1.0}
    labels = ["keto", "run<ning>"]
    return {"matrix": {"rows": labels, "columns": labels, "gain": [[0.12, -0.03], [0.01, 0.2]],
                       "diagonal_share": {"value": 1.0, "low": 0.5, "high": 1.0}},
            "attribution": {"labels": labels,
                            "likelihood": {"accuracy": estimate, "macro_f1": estimate, "confusion": [[3, 1], [0, 4]]},
                            "tfidf": {"accuracy": estimate, "macro_f1": estimate, "confusion": [[2, 2], [1, 3]]}}}


def test_report_shows_the_gain_heatmap_and_both_confusion_matrices_byte_stably():
    from hivelm.report_page import likelihood_section

    html = likelihood_section(likelihood_numbers())
    assert html.count("<svg") == 3
    assert "1.000 <small>[0.500, 1.000]</small>" in html  # the diagonal share with its interval
    assert "argmax adapter gain" in html and "TF-IDF origin classifier" in html
    assert "run<ning>" not in html.replace("<svg", "")  # labels escaped inside the SVG text
    assert html == likelihood_section(likelihood_numbers())  # dvc.lock's hash of the page stays put
    assert "has not run" in likelihood_section({"matrix": None, "attribution": None})


def test_gate_checks_the_likelihood_metrics_and_passes_a_baseline_that_lacks_them(tmp_path):
    """A baseline made before the attribute stage (the committed CI baseline without its `likelihood` section)
    shows the new metrics as new, never as a failure; once in a baseline, a drop beyond the tolerance fails."""
    from hivelm import gate

    repo = Path(__file__).resolve().parents[1]
    baseline = json.loads((repo / "reports/ci-baseline/metrics.json").read_text())
    baseline.pop("likelihood", None)
    before = tmp_path / "before-attribute.json"
    before.write_text(json.dumps(baseline))
    section = {"diagonal_share": {"value": 1.0, "low": 0.5, "high": 1.0},
               "attribution": {"likelihood": {"macro_f1": {"value": 0.8, "low": 0.6, "high": 0.9}}}}
    current = tmp_path / "metrics.json"
    current.write_text(json.dumps(baseline | {"likelihood": section}))
    rules = repo / "configs/metric_rules.yaml"
    assert gate.main(str(before), rules, current) == 0
    checks = {c.metric: c for c in gate.compare(baseline, json.loads(current.read_text()), gate.load_rules(rules))}
    for name in ("likelihood.diagonal_share.value", "likelihood.attribution.likelihood.macro_f1.value"):
        assert checks[name].base is None and not checks[name].regressed
    worse = json.loads(json.dumps(section))
    worse["attribution"]["likelihood"]["macro_f1"]["value"] = 0.5
    old = tmp_path / "baseline.json"
    old.write_text(json.dumps(baseline | {"likelihood": section}))
    current.write_text(json.dumps(baseline | {"likelihood": worse}))
    assert gate.main(str(old), rules, current) == 1


def test_column_mean_intervals_are_paired_seeded_and_enclose_the_mean():
    from hivelm import metrics
    from hivelm.rng import keyed_rng

    values = np.column_stack([np.arange(20.0), np.arange(20.0), np.arange(20.0) ** 2])
    first = metrics.bootstrap_column_means(values, 200, 0.9, keyed_rng(0, "gain", "keto"))
    again = metrics.bootstrap_column_means(values, 200, 0.9, keyed_rng(0, "gain", "keto"))
    assert first == again and first["value"][:2] == [9.5, 9.5]
    assert first["low"][0] == first["low"][1] and first["high"][0] == first["high"][1]  # rows drawn together
    assert all(lo < v < hi for v, lo, hi in zip(first["value"], first["low"], first["high"]))
    assert metrics.enclosing({"value": 0.75, "low": 0.8, "high": 1.0}) == {"value": 0.75, "low": 0.75, "high": 1.0}



def test_mixed_adapter_batches_score_as_one_adapter_at_a_time(attribute_project):
    """peft's mixed-adapter batches (an adapter's rows and the base model's rows in one forward pass, with and
    without the shared prompt cache) give the one-adapter-at-a-time log-likelihoods to 1e-5."""
    from hivelm.config import load_config
    from hivelm.stages.attribute import load_scorer, score, scoring_template

    cfg = load_config("params.yaml")
    model, tokenizer = load_scorer(cfg, list(COMMUNITIES))
    template = scoring_template(cfg.instruct.templates, None)
    args = (model, tokenizer, POSTS, COMMUNITIES, cfg.instruct.system_prompt, template, 256, 3)
    alone = score(*args)
    for share_prefix in (True, False):
        mixed = score(*args, share_prefix=share_prefix, mixed=True)
        for key in ("adapter", "base", "gain"):
            assert np.abs(mixed[key] - alone[key]).max() <= 1e-5, (key, share_prefix)
    assert np.abs(alone["gain"]).min() > 1e-3  # the adapters really move the likelihoods


def test_a_capped_community_is_scored_on_a_seeded_sample_in_file_order():
    """attribute.max_posts_per_community: at most that many held-out posts per community, the same ones for
    the same seed, in the file's order; a community with fewer keeps them all."""
    from hivelm.stages.attribute import sample_posts

    posts = [{"post_id": str(i)} for i in range(50)]
    sample = sample_posts(posts, 10, 0, "keto")
    assert len(sample) == 10 and sample == sorted(sample, key=lambda r: int(r["post_id"]))
    assert sample == sample_posts(posts, 10, 0, "keto")
    assert sample != sample_posts(posts, 10, 1, "keto") and sample != sample_posts(posts, 10, 0, "running")
    assert sample_posts(posts, None, 0, "keto") == posts == sample_posts(posts, 50, 0, "keto")
