"""Harm assessment: blinded sampling, annotation validation, kappa against published examples, the proxy's
agreement with hand labels, and the judge's scoring mechanics on a tiny random model."""

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from hivelm import annotation, metrics
from hivelm.annotation import CLASSES, HARMFUL, HarmError
from hivelm.artifacts import rounded
from hivelm.errors import HiveError

FIXTURES = Path(__file__).parent / "fixtures"
COMMUNITIES, CORPORA = ("keto", "running"), ("finetuned", "untuned", "in_context")
SIZES = {"finetuned": 12, "untuned": 3, "in_context": 7}  # untuned has fewer posts than per_corpus


def generated(root: Path) -> Path:
    """Generated corpora whose ids name their community and corpus (as real ones do); texts do not."""
    for community in COMMUNITIES:
        for corpus in CORPORA:
            path = root / community / f"{corpus}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [{"id": f"{community}-{corpus}-{i}", "community": community, "corpus": corpus, "topic": "t",
                     "template_id": "g01", "prompt": f"a {community} prompt", "text": f"post {i} text {len(corpus) * 7 + len(community)}"}
                    for i in range(SIZES[corpus])]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return root


def sample(tmp_path: Path, name: str = "harm", per_corpus: int = 5, seed: int = 0) -> Path:
    annotation.harm_sample(generated(tmp_path / "generated"), COMMUNITIES, CORPORA, tmp_path / name, per_corpus, seed)
    return tmp_path / name


def read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_sample_is_blinded(tmp_path):
    out = sample(tmp_path)
    packet = out / annotation.PACKET
    assert sorted(p.name for p in packet.iterdir()) == [
        "annotation.csv", "instructions.md", "label_studio.json", "label_studio_config.xml"]
    for path in packet.iterdir():
        content = path.read_text("utf-8-sig")
        for secret in (*COMMUNITIES, *CORPORA, "in context", "generation"):
            assert secret not in content, (path.name, secret)
    with open(packet / "annotation.csv", encoding="utf-8-sig", newline="") as handle:
        assert next(csv.reader(handle)) == ["item_id", "text", *CLASSES, "notes"]
    rows = read_rows(packet / "annotation.csv")
    assert all(r[c] == "" for r in rows for c in (*CLASSES, "notes"))  # left for the annotator
    tasks = json.loads((packet / "label_studio.json").read_text("utf-8"))
    assert [t["data"] for t in tasks] == [{"item_id": r["item_id"], "text": r["text"]} for r in rows]
    choices = ET.fromstring((packet / "label_studio_config.xml").read_text("utf-8")).iter("Choice")
    assert [c.get("value") for c in choices] == list(CLASSES)
    assert {"/for_annotators", "/key.csv"} <= set((out / ".gitignore").read_text().splitlines())  # out of git


def test_sample_adds_to_an_existing_gitignore_instead_of_replacing_it(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/.gitignore").write_text("/prepared\n/instructions\n")  # as DVC keeps it
    annotation.harm_sample(generated(tmp_path / "generated"), COMMUNITIES, CORPORA, tmp_path / "data", 2)
    assert (tmp_path / "data/.gitignore").read_text() == "/prepared\n/instructions\n/for_annotators\n/key.csv\n"


def test_sample_respects_per_corpus_shuffles_and_key_joins_back(tmp_path):
    out = sample(tmp_path, per_corpus=5)
    key = read_rows(out / "key.csv")
    groups = [(k["community"], k["corpus"]) for k in key]
    assert {g: groups.count(g) for g in set(groups)} == {
        (m, c): min(5, SIZES[c]) for m in COMMUNITIES for c in CORPORA}
    assert groups != sorted(groups)  # shuffled across communities and corpora
    texts = {r["item_id"]: r["text"] for r in read_rows(out / annotation.PACKET / "annotation.csv")}
    assert [k["item_id"] for k in key] == list(texts) == [f"h{n:04d}" for n in range(1, len(key) + 1)]
    for k in key:  # the key leads back to the exact generation
        source = {r["id"]: r for r in map(json.loads, (tmp_path / "generated" / k["community"] /
                                                      f"{k['corpus']}.jsonl").read_text().splitlines())}
        assert source[k["generation_id"]]["text"] == texts[k["item_id"]]
        assert k["text_sha256"] == annotation.text_digest(texts[k["item_id"]])


def test_sample_is_seeded_and_keeps_an_existing_key(tmp_path):
    first, again, other = sample(tmp_path, "a", seed=3), sample(tmp_path, "b", seed=3), sample(tmp_path, "c", seed=4)
    for name in ("key.csv", f"{annotation.PACKET}/annotation.csv", f"{annotation.PACKET}/label_studio.json"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
    assert (first / "key.csv").read_bytes() != (other / "key.csv").read_bytes()
    with pytest.raises(HarmError, match="already exists"):
        annotation.harm_sample(tmp_path / "generated", COMMUNITIES, CORPORA, first, 5, 9)
    annotation.harm_sample(tmp_path / "generated", COMMUNITIES, CORPORA, first, 5, 9, overwrite=True)
    assert (first / "key.csv").read_bytes() != (again / "key.csv").read_bytes()


def test_sample_names_a_missing_corpus(tmp_path):
    with pytest.raises(HiveError, match=r"keto/nope\.jsonl: file not found"):
        annotation.harm_sample(generated(tmp_path / "g"), ["keto"], ["nope"], tmp_path / "out")


# ---------------------------------------------------------------- kappa on published examples


def test_cohen_kappa_textbook_table():
    # 50 proposals, two readers: yes/yes 20, yes/no 5, no/yes 10, no/no 15. p_o = .70, p_e = .50 -> kappa .40
    # (the worked example in the Wikipedia article "Cohen's kappa").
    a = [1] * 25 + [0] * 25
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert metrics.cohen_kappa(a, b) == pytest.approx(0.4)
    assert np.isnan(metrics.cohen_kappa([1, 1, 1], [1, 1, 1]))


def test_fleiss_kappa_published_example():
    # 10 subjects, 14 raters, 5 categories: P-bar .378, P-bar_e .213, kappa .210 (the worked example in the
    # Wikipedia article "Fleiss' kappa", computed with Fleiss 1971's formulas).
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert metrics.fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    assert metrics.fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)
    assert np.isnan(metrics.fleiss_kappa([[2, 0], [2, 0]]))
    with pytest.raises(ValueError, match="same number"):
        metrics.fleiss_kappa([[2, 0], [1, 2]])


def test_fleiss_kappa_with_two_raters_is_scotts_pi():
    a = np.array([1] * 25 + [0] * 25)
    b = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15)
    p = (a.mean() + b.mean()) / 2  # Scott (1955): chance agreement from the pooled marginals
    scott = (np.mean(a == b) - (p ** 2 + (1 - p) ** 2)) / (1 - (p ** 2 + (1 - p) ** 2))
    table = np.stack([2 - (a + b), a + b], axis=1)
    assert metrics.fleiss_kappa(table) == pytest.approx(scott)


# ---------------------------------------------------------------- ingest


def annotate(path: Path, key: list[dict], labels: dict[str, list[str]], texts: dict[str, str]) -> Path:
    """Write a filled annotation file: labels maps item_id -> the classes marked 1."""
    rows = [{"item_id": k["item_id"], "text": texts[k["item_id"]]} | {c: "1" for c in labels[k["item_id"]]}
            for k in key]
    annotation.write_csv(path, annotation.ANNOTATION_COLUMNS, rows)
    return path


@pytest.fixture
def sampled(tmp_path):
    """A sample of 2 communities x 3 corpora (26 items) with a known 2x2 harm table: A and B both say
    harmful on 14 items (the first 8 and the last 6), only A on 2, only B on 4, neither on 6."""
    out = sample(tmp_path)
    key = annotation.read_key(out / "key.csv")
    texts = {r["item_id"]: r["text"] for r in read_rows(out / annotation.PACKET / "annotation.csv")}
    a, b = {}, {}
    for n, k in enumerate(key):
        item = k["item_id"]
        both = n < 8 or n >= 20
        a[item] = ["body_image_objectification"] if both or 8 <= n < 10 else ["not_harmful"]
        b[item] = (["body_image_objectification", "self_disclosure"] if both
                   else ["food_and_exercise"] if 10 <= n < 14 else ["not_harmful"])
    paths = [annotate(tmp_path / "a.csv", key, a, texts), annotate(tmp_path / "b.csv", key, b, texts)]
    return {"dir": out, "key": key, "texts": texts, "paths": paths, "labels": (a, b)}


def leaves(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from leaves(value)
    else:
        yield node


def test_ingest_agreement_and_rates(sampled, tmp_path):
    out = tmp_path / "reports" / "harm.json"
    result = annotation.harm_ingest(sampled["dir"] / "key.csv", sampled["paths"], out, rule="all", resamples=50)
    assert json.loads(out.read_text()) == rounded(result)  # written at artifacts.SIGNIFICANT_DIGITS
    assert all(v is None or isinstance(v, int | float) and not isinstance(v, bool) for v in leaves(result))
    assert len(sampled["key"]) == 26 and result["items"] == 26 and result["annotators"] == 2
    # harmful-vs-not: both 14, A only 2, B only 4, neither 6; A says harmful 16 times, B 18.
    p_o, p_e = 20 / 26, (16 / 26) * (18 / 26) + (10 / 26) * (8 / 26)
    kappa = result["agreement"]["harmful"]
    assert kappa["cohen_kappa"] == pytest.approx((p_o - p_e) / (1 - p_e))
    assert kappa["observed"] == pytest.approx(p_o)
    assert kappa["fleiss_kappa"] == pytest.approx(metrics.fleiss_kappa(
        [[2, 0]] * 6 + [[1, 1]] * 6 + [[0, 2]] * 14))
    assert result["agreement"]["food_and_exercise"]["cohen_kappa"] == pytest.approx(0.0)  # A never marks it
    overall = result["rates_overall"]
    assert (overall["harmful"]["count"], overall["self_disclosure"]["count"]) == (14, 0)  # unanimous only
    assert overall["harmful"]["value"] == pytest.approx(14 / 26)
    assert overall["harmful"]["low"] <= overall["harmful"]["value"] <= overall["harmful"]["high"]
    groups = result["rates"]
    assert sorted(groups) == list(COMMUNITIES) and all(sorted(g) == sorted(CORPORA) for g in groups.values())
    assert sum(g[c]["harmful"]["count"] for g in groups.values() for c in g) == 14
    assert sum(result["rates_by_corpus"][c]["harmful"]["n"] for c in CORPORA) == 26
    anyone = annotation.harm_ingest(sampled["dir"] / "key.csv", sampled["paths"], out, rule="any", resamples=50)
    assert anyone["rates_overall"]["harmful"]["count"] == 20 and anyone["rule_min_share"] == 0.0


def test_ingest_fleiss_with_three_annotators(sampled, tmp_path):
    a, b = sampled["labels"]
    third = annotate(tmp_path / "c.csv", sampled["key"], a, sampled["texts"])
    result = annotation.harm_ingest(sampled["dir"] / "key.csv", [*sampled["paths"], third], tmp_path / "h.json",
                              rule="half", resamples=20)
    as_marks = [{item: {c: int(c in marked) for c in CLASSES} for item, marked in x.items()} for x in (a, b, a)]
    votes = annotation.votes(as_marks, [k["item_id"] for k in sampled["key"]], "harmful")
    expected = metrics.fleiss_kappa(np.stack([3 - votes.sum(1), votes.sum(1)], axis=1))
    assert result["agreement"]["harmful"]["fleiss_kappa"] == pytest.approx(expected)
    assert "cohen_kappa" not in result["agreement"]["harmful"]
    assert result["rates_overall"]["harmful"]["count"] == 16  # two of three (A twice) suffice


def corrupt(path: Path, edit) -> Path:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def set_cell(rows, row, column, value):
    rows[row][rows[0].index(column)] = value


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r.pop(3), r"item\(s\) missing: \['h0003'\]"),
    (lambda r: set_cell(r, 2, "food_and_exercise", "2"), r"row 2 \(item h0002\), column 'food_and_exercise': '2' is not 1, 0 or blank"),
    (lambda r: set_cell(r, 1, "self_disclosure", "yes"), r"row 1 \(item h0001\), column 'self_disclosure'"),
    (lambda r: set_cell(r, 0, "self_disclosure", "self-disclosure"), r"missing \['self_disclosure'\], unknown \['self-disclosure'\]"),
    (lambda r: set_cell(r, 4, "not_harmful", "1"), r"row 4 \(item h0004\), column 'not_harmful': marked together with"),
    (lambda r: [set_cell(r, 5, c, "") for c in CLASSES], r"row 5 \(item h0005\): no class marked"),
    (lambda r: set_cell(r, 6, "item_id", "h9999"), r"row 6: item 'h9999' is not in the key"),
    (lambda r: set_cell(r, 7, "item_id", "h0001"), r"row 7: item 'h0001' appears twice"),
    (lambda r: set_cell(r, 8, "text", "something else"), r"row 8 \(item h0008\), column 'text': differs"),
])
def test_ingest_rejects_malformed_files_and_writes_nothing(sampled, tmp_path, edit, message):
    bad = corrupt(sampled["paths"][1], edit)
    out = tmp_path / "out.json"
    with pytest.raises(HarmError, match=message) as info:
        annotation.harm_ingest(sampled["dir"] / "key.csv", sampled["paths"], out)
    assert str(bad) in str(info.value)
    assert not out.exists()


def test_ingest_refuses_zero_resamples(sampled, tmp_path):
    with pytest.raises(HarmError, match=r"resamples must be >= 1 .*\(got 0\)"):
        annotation.harm_ingest(sampled["dir"] / "key.csv", sampled["paths"], tmp_path / "harm.json", resamples=0)
    assert not (tmp_path / "harm.json").exists()


def test_ingest_needs_two_distinct_annotators(sampled, tmp_path):
    with pytest.raises(HarmError, match="at least two"):
        annotation.harm_ingest(sampled["dir"] / "key.csv", sampled["paths"][:1], tmp_path / "o.json")
    with pytest.raises(HarmError, match="twice"):
        annotation.harm_ingest(sampled["dir"] / "key.csv", [sampled["paths"][0]] * 2, tmp_path / "o.json")


def test_label_studio_export_becomes_annotation_files(sampled, tmp_path):
    a, b = sampled["labels"]
    tasks = json.loads((sampled["dir"] / annotation.PACKET / "label_studio.json").read_text("utf-8"))
    for task in tasks:
        item = task["data"]["item_id"]
        task["annotations"] = [{"completed_by": who, "result": [
            {"from_name": "harm", "to_name": "text", "type": "choices", "value": {"choices": labels[item]}}]}
            for who, labels in ((1, a), (2, b))]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks), "utf-8")
    paths = annotation.label_studio_to_csv(export, tmp_path / "ls")
    assert [p.name for p in paths] == ["annotator_1.csv", "annotator_2.csv"]
    from_ls = annotation.harm_ingest(sampled["dir"] / "key.csv", paths, tmp_path / "x.json", resamples=20)
    from_csv = annotation.harm_ingest(sampled["dir"] / "key.csv", sampled["paths"], tmp_path / "y.json", resamples=20)
    assert from_ls == from_csv


def project_params(tmp_path: Path, corpora, external) -> Path:
    import yaml

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["communities"] = {c: params["communities"][c] for c in COMMUNITIES}
    params["evaluate"] |= {"corpora": list(corpora), "external": external}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path / "params.yaml"


def test_main_functions_use_project_relative_defaults(tmp_path, monkeypatch):
    from hivelm.config import load_config

    monkeypatch.chdir(tmp_path)
    generated(tmp_path / "data" / "generated")
    summary = annotation.main_sample(load_config(project_params(tmp_path, CORPORA, [])), per_corpus=2)
    assert summary["items"] == 12 and (tmp_path / "data/harm/key.csv").exists()


def test_harm_sample_draws_from_external_corpora_as_evaluate_reads_them(tmp_path, monkeypatch):
    from hivelm.cli import main

    monkeypatch.chdir(tmp_path)
    external = [{"name": "llama3", "path": "data/external/llama3/{community}.jsonl", "provenance": "a paper"},
                {"name": "api", "path": "data/external/api.csv", "provenance": "an API model",
                 "columns": {"text": "post", "community": "group"}, "labels": {"Running Club": "running"}}]
    project_params(tmp_path, [], external)
    for community in COMMUNITIES:
        path = tmp_path / f"data/external/llama3/{community}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"text": f"{community} post {i}" if i else " "}) + "\n" for i in range(4)))
    (tmp_path / "data/external/api.csv").write_text("group,post\nketo,bacon again\nRunning Club,ten miles\n")
    assert main(["harm-sample", "--per-corpus", "5"]) == 0
    key = read_rows(tmp_path / "data/harm/key.csv")
    assert sorted((r["community"], r["corpus"]) for r in key) == sorted(
        [(c, "llama3") for c in COMMUNITIES for _ in range(3)] + [("keto", "api"), ("running", "api")])
    assert {r["generation_id"] for r in key if r["corpus"] == "api"} == {"data/external/api.csv:row 1",
                                                                         "data/external/api.csv:row 2"}
    assert "data/external/llama3/keto.jsonl:2" in {r["generation_id"] for r in key}  # line 1 is blank: dropped


# ---------------------------------------------------------------- automatic scorers


def handlabelled() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "harm_handlabelled.jsonl").read_text("utf-8").splitlines()]


def test_handlabelled_fixture_is_well_formed():
    rows = handlabelled()
    assert 35 <= len(rows) <= 50 and len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert row["labels"] and set(row["labels"]) <= set(CLASSES)
        assert row["labels"] == ["not_harmful"] or "not_harmful" not in row["labels"]
        assert not any(ch.isdigit() for ch in row["text"])  # no numbers anywhere in the fixture
    harmful = sum(r["labels"] != ["not_harmful"] for r in rows)
    assert 0.35 < harmful / len(rows) < 0.65
    assert all(sum(c in r["labels"] for r in rows) >= 8 for c in HARMFUL)


@pytest.fixture(scope="module")
def embedder():
    from hivelm.scorers.embed import Embedder

    return Embedder()


class FakeToxicity:
    info = {"backend": "fake"}

    def score(self, texts):
        return {"toxicity": np.array([0.9 if "disgusting" in t else 0.0 for t in texts])}


def test_proxy_is_labelled_as_a_proxy(embedder):
    from hivelm.scorers.harm import ProxyHarmScorer

    scorer = ProxyHarmScorer(embedder)
    texts = ["Made soup with friends tonight.", "I look disgusting in every photo."]
    assert scorer.info["backend"] == "proxy" and scorer.info["proxy"] is True
    assert scorer.info["embedder"] == embedder.info and scorer.info["toxicity"] is None
    scores, labels = scorer.score(texts), scorer.predict(texts)
    assert scores["proxy"] is True and labels["proxy"] is True
    assert set(labels) == {"proxy", "harmful", *CLASSES}
    assert np.array_equal(labels["not_harmful"], 1 - labels["harmful"])
    assert scorer.score([])["harmful"].shape == (0,)
    toxic = ProxyHarmScorer(embedder, FakeToxicity(), toxicity_weight=0.5).score(texts)
    assert toxic["proxy"] is True and list(toxic["toxicity"]) == [0.0, 0.9]
    for c in HARMFUL:
        assert toxic[c] == pytest.approx(scores[c] + 0.5 * toxic["toxicity"])


def test_proxy_rejects_incomplete_prototypes(embedder):
    from hivelm.scorers.harm import HarmScorerError, ProxyHarmScorer

    with pytest.raises(HarmScorerError, match="exactly the classes"):
        ProxyHarmScorer(embedder, prototypes={"not_harmful": ["fine"]})


def test_proxy_agreement_with_hand_labels(embedder):
    """Measured on tests/fixtures/harm_handlabelled.jsonl (41 posts we wrote and labelled; the prototypes were
    written before measuring and not tuned on it) at the default threshold 0. Measured: harmful-vs-not kappa
    0.64 (accuracy 0.83), body image 0.64, food and exercise 0.28, self-disclosure 0.69. Asserted with
    margin: clearly better than chance, nothing more. Same author for posts and prototypes: optimistic."""
    from hivelm.scorers.harm import ProxyHarmScorer

    rows = handlabelled()
    scorer = ProxyHarmScorer(embedder)
    texts = [r["text"] for r in rows]
    result = annotation.label_agreement([r["labels"] for r in rows], scorer.predict(texts))
    truth = [int(r["labels"] != ["not_harmful"]) for r in rows]
    result["harmful_auc"] = metrics.auc(truth, scorer.score(texts)["harmful"])
    print("proxy agreement with hand labels:", json.dumps(result))
    assert result["harmful"] > 0.45 and result["harmful_accuracy"] > 0.7 and result["harmful_auc"] > 0.8
    assert result["body_image_objectification"] > 0.4 and result["self_disclosure"] > 0.4
    assert result["food_and_exercise"] > 0.1


@pytest.fixture(scope="module")
def tiny_judge_parts(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def direct_logprob(model, tokenizer, prompt: str, answer: str) -> float:
    """Unbatched reference: sum of log P(answer token | everything before) in one plain forward pass."""
    import torch

    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([p + a])).logits[0].float().log_softmax(-1)
    return float(sum(logits[len(p) - 1 + j, t] for j, t in enumerate(a)))


@pytest.mark.parametrize("answers", [("Yes", "No"), ("e", "s")])  # multi-token and single-token in its vocab
def test_judge_scores_are_probabilities_batching_invariant_and_exact(tiny_judge_parts, answers):
    from hivelm.scorers.harm import JudgeHarmScorer

    model, tokenizer = tiny_judge_parts
    texts = ["ate cake and feel fine", "skipping meals again", "x", "a long post about tempo runs and hills " * 3]
    batched = JudgeHarmScorer(model, tokenizer, answers=answers, batch_size=5).score(texts)
    assert batched["proxy"] is False
    single_token = all(len(tokenizer(a, add_special_tokens=False)["input_ids"]) == 1 for a in answers)
    assert single_token == (answers == ("e", "s"))
    for i, text in enumerate(texts):
        one = JudgeHarmScorer(model, tokenizer, answers=answers, batch_size=1).score([text])
        for c in HARMFUL:
            assert 0.0 <= batched[c][i] <= 1.0
            assert batched[c][i] == pytest.approx(one[c][0], abs=1e-5)
    judge = JudgeHarmScorer(model, tokenizer, answers=answers)
    prompt = judge.render(texts[1], "food_and_exercise")
    yes, no = (direct_logprob(model, tokenizer, prompt, a) for a in answers)
    assert batched["food_and_exercise"][1] == pytest.approx(1 / (1 + np.exp(no - yes)), abs=1e-5)
    assert batched["harmful"] == pytest.approx(np.max([batched[c] for c in HARMFUL], axis=0))
    labels = judge.predict(texts, threshold=0.5)
    assert labels["proxy"] is False and np.array_equal(labels["harmful"], (batched["harmful"] > 0.5).astype(int))


def test_judge_prompt_and_info(tiny_judge_parts):
    from hivelm.scorers.harm import HarmScorerError, JudgeHarmScorer

    model, tokenizer = tiny_judge_parts
    judge = JudgeHarmScorer(model, tokenizer, system_prompt="Be careful.")
    prompt = judge.render("a post", "self_disclosure")
    assert prompt.startswith("<|im_start|>system\nBe careful.") and prompt.endswith("<|im_start|>assistant\n")
    assert annotation.TAXONOMY["self_disclosure"] in prompt and '"""\na post\n"""' in prompt
    assert judge.info["backend"] == "judge" and judge.info["answers"] == ["Yes", "No"]
    with pytest.raises(HarmScorerError, match="slot"):
        JudgeHarmScorer(model, tokenizer, rubric="Is {post} harmful?")
    with pytest.raises(HarmScorerError, match="different tokens"):
        JudgeHarmScorer(model, tokenizer, answers=("Yes", "Yes"))
