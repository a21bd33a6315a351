"""External corpora: declared and validated in params, every input checked before evaluate loads a model,
strict JSON out, and the dvc.yaml render that follows the params (no models, no DVC run here: fast tier)."""

import json
import math

import pytest
import yaml

from conftest import REPO, strict_json
from hivelm import corpora, dvcfile
from hivelm.config import ConfigError, load_config
from hivelm.io import write_json

PER_FILE = {"name": "llama3", "path": "data/external/llama3/{community}.jsonl", "provenance": "Llama-3-8B, tuned"}
ONE_FILE = {"name": "api", "path": "data/external/api.csv", "columns": {"text": "post", "community": "group"},
            "provenance": "an API model with personas", "filter": True}


def params(tmp_path, external, corpora_=(), **evaluate):
    cfg = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg["communities"] = {k: cfg["communities"][k] for k in ("keto", "running")}
    cfg["evaluate"] |= {"corpora": list(corpora_), "external": external} | evaluate
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.mark.parametrize("external, message", [
    ([PER_FILE | {"name": "finetuned"}], r"evaluate.external\[0\].name: 'finetuned' is a built-in corpus"),
    ([PER_FILE | {"name": "Llama 3"}], r"evaluate.external\[0\].name: must be lowercase letters"),
    ([PER_FILE, ONE_FILE | {"name": "llama3"}], r"evaluate.external: corpus name\(s\) \['llama3'\] declared more"),
    ([PER_FILE | {"path": "data/external/all.csv"}], r"evaluate.external\[0\].path: needs a \{community\} slot"),
    ([ONE_FILE | {"path": "data/{community}.csv"}], r"evaluate.external\[0\].path: needs either a \{community\}"),
    ([{k: v for k, v in PER_FILE.items() if k != "provenance"}], r"evaluate.external\[0\].provenance"),
    ([], r"evaluate.corpora: name a built-in corpus or declare one under evaluate.external"),
])
def test_external_corpora_are_validated_naming_the_key(tmp_path, external, message):
    with pytest.raises(ConfigError, match=message):
        load_config(params(tmp_path, external))


def write_prepared(root, communities=("keto", "running"), n=12):
    for c in communities:
        for split in ("train", "heldout"):
            path = root / f"data/prepared/{c}/{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps({"text": f"{c} {split} post number {i} about food and runs"}) + "\n"
                                    for i in range(n)))


def test_every_bad_input_is_listed_at_once_with_file_and_line(tmp_path):
    cfg = load_config(params(tmp_path, [PER_FILE, ONE_FILE], corpora_=["untuned"]))
    write_prepared(tmp_path)
    with (tmp_path / "data/prepared/keto/heldout.jsonl").open("a") as handle:
        handle.write('{"post_id": "x"}\n{"text": 7}\nnot json\n')
    (tmp_path / "data/generated/keto").mkdir(parents=True)
    (tmp_path / "data/generated/keto/untuned.jsonl").write_text('{"text": "fine"}\n')
    (tmp_path / "data/external/llama3").mkdir(parents=True)
    (tmp_path / "data/external/llama3/keto.jsonl").write_text('{"text": "ok"}\n\n{"txt": "typo"}\n')
    (tmp_path / "data/external/api.csv").write_text("group,body\nketo,hello\n")
    with pytest.raises(corpora.InputError) as caught:
        corpora.load(cfg, tmp_path)
    lines = str(caught.value).splitlines()
    assert lines[0] == "7 problem(s) in evaluate's inputs (nothing was computed):"
    assert set(lines[1:]) == {
        f"{tmp_path}/data/prepared/keto/heldout.jsonl:13: missing field 'text'",
        f"{tmp_path}/data/prepared/keto/heldout.jsonl:14: field 'text' holds int, not text",
        f"{tmp_path}/data/prepared/keto/heldout.jsonl:15: not valid JSON (Expecting value)",
        f"{tmp_path}/data/generated/running/untuned.jsonl: file not found (run `hivelm generate --community "
        f"running`, or drop 'untuned' from evaluate.corpora)",
        f"{tmp_path}/data/external/llama3/keto.jsonl:3: missing field 'text'",
        f"{tmp_path}/data/external/llama3/running.jsonl: file not found (evaluate.external[0].path)",
        f"{tmp_path}/data/external/api.csv: no column 'post' (evaluate.external[1].columns.text); "
        f"the file has columns ['group', 'body']",
    }


def test_external_corpora_are_read_by_community_and_filtered_when_asked(tmp_path):
    cfg = load_config(params(tmp_path, [PER_FILE, ONE_FILE]))
    write_prepared(tmp_path)
    for c in ("keto", "running"):
        path = tmp_path / f"data/external/llama3/{c}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"text": f"{c} generated {i}"}) + "\n" for i in range(3)))
    (tmp_path / "data/external/api.csv").write_text("group,post\nketo,Bacon again\n,a post of nobody\n")
    with pytest.raises(corpora.InputError, match=r"api.csv:row 2: missing field 'group'"):
        corpora.load(cfg, tmp_path)
    (tmp_path / "data/external/api.csv").write_text(
        "group,post\nketo,Bacon and eggs again this morning\n"
        "keto,I can't draft a tweet that promotes restrictive eating.\n"
        "keto,keto train post number 3 about food and runs\n"  # leaks a real training post
        "running,Ten miles in the rain and I loved it\nrunning,\ngardening,Tomatoes at last\n")  # empty: dropped
    inputs = corpora.load(cfg, tmp_path)
    assert inputs.corpora["llama3"]["running"] == [f"running generated {i}" for i in range(3)]
    assert inputs.corpora["api"] == {"keto": ["Bacon and eggs again this morning"],
                                     "running": ["Ten miles in the rain and I loved it"]}
    counts = inputs.sources["api"]["filter_counts"]["keto"]
    assert counts["generated"] == 3 and counts["after_refusal"] == 2 and counts["kept"] == 1
    assert inputs.sources["llama3"] == {"kind": "external", "provenance": "Llama-3-8B, tuned", "filtered": False,
                                        "files": {f"data/external/llama3/{c}.jsonl": corpora.sha256(
                                            tmp_path / f"data/external/llama3/{c}.jsonl") for c in ("keto", "running")}}


def test_json_outputs_are_strict_and_say_why_a_number_is_missing(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"diagonal_share": math.nan, "fid": {"value": math.inf, "low": 1.0, "high": 2.0},
                      "auc": {"value": math.nan, "low": math.nan, "high": math.nan, "reason": "one class"},
                      "matrix": [[0.1, math.nan]]})
    assert strict_json(path.read_text()) == {
        "diagonal_share": None,  # a plain mapping gets no key it never had (evaluate writes its own reasons)
        "fid": {"value": None, "low": 1.0, "high": 2.0, "reason": "undefined (not a finite number): value"},
        "auc": {"value": None, "low": None, "high": None, "reason": "one class"},
        "matrix": [[0.1, None]]}
    with pytest.raises(AssertionError, match="NaN is not JSON"):
        strict_json('{"a": NaN}')


def test_evaluate_only_params_render_a_pipeline_without_model_stages(tmp_path):
    shipped = load_config(REPO / "params.yaml")
    assert dvcfile.render(shipped) == dvcfile.render() == (REPO / "dvc.yaml").read_text()
    cfg = load_config(params(tmp_path, [PER_FILE, ONE_FILE]))
    stages = yaml.safe_load(dvcfile.render(cfg))["stages"]
    assert list(stages) == ["prepare", "evaluate", "summarize", "report"]
    assert [d for d in stages["evaluate"]["deps"] if not d.startswith("src/")] == [
        "data/prepared", "data/external/llama3/keto.jsonl", "data/external/llama3/running.jsonl",
        "data/external/api.csv"]
    assert [d for d in stages["summarize"]["deps"] if not d.startswith("src/")] == [
        "reports/prepare/stats.json", "reports/metrics"]
    assert "models/base" not in stages["prepare"]["deps"]
    ranked = yaml.safe_load(dvcfile.render(load_config(params(tmp_path, [PER_FILE]), ["prepare.cap_strategy=lowest_perplexity"])))
    assert list(ranked["stages"]) == ["base_model", "prepare", "evaluate", "summarize", "report"]
    assert "models/base" in ranked["stages"]["prepare"]["deps"]  # prepare ranks posts with the base model
    both = yaml.safe_load(dvcfile.render(load_config(params(tmp_path, [PER_FILE], corpora_=["finetuned"]))))
    assert "tune" in both["stages"] and "data/external/llama3/keto.jsonl" in both["stages"]["evaluate"]["deps"]


def test_hivelm_run_re_renders_a_rendered_dvc_yaml_and_leaves_a_hand_written_one(tmp_path, monkeypatch):
    from hivelm.pipeline import render_dvc_yaml

    monkeypatch.chdir(tmp_path)
    cfg = load_config(params(tmp_path, [PER_FILE]))
    (tmp_path / "dvc.yaml").write_text(dvcfile.render())
    render_dvc_yaml(cfg)
    assert (tmp_path / "dvc.yaml").read_text() == dvcfile.render(cfg)
    (tmp_path / "dvc.yaml").write_text("stages:\n  sleep:\n    cmd: sleep 1\n")
    render_dvc_yaml(cfg)
    assert (tmp_path / "dvc.yaml").read_text() == "stages:\n  sleep:\n    cmd: sleep 1\n"
