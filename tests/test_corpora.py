"""External corpora: declared and validated in params, every input checked before evaluate loads a model,
strict JSON out, and the dvc.yaml render that follows the params (no models, no DVC run here: fast tier)."""

import json
import math

import pytest
import yaml

from conftest import REPO, strict_json
from hivelm import corpora, dvcfile
from hivelm.artifacts import write_json
from hivelm.config import ConfigError, load_config

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
    with pytest.raises(corpora.InputError, match=r"api.csv: 1 posts have a value of column 'group' "
                                                 r"\(evaluate.external\[1\].columns.community\) that matches no"):
        corpora.load(cfg, tmp_path)  # an unmatched community value is an error unless skipping is asked for
    cfg = load_config(params(tmp_path, [PER_FILE, ONE_FILE | {"unmatched": "skip"}]))
    inputs = corpora.load(cfg, tmp_path)
    assert inputs.corpora["llama3"]["running"] == [f"running generated {i}" for i in range(3)]
    assert inputs.corpora["api"] == {"keto": ["Bacon and eggs again this morning"],
                                     "running": ["Ten miles in the rain and I loved it"]}
    counts = inputs.sources["api"]["filter_counts"]["keto"]
    assert counts["generated"] == 3 and counts["after_refusal"] == 2 and counts["kept"] == 1
    assert inputs.sources["api"]["dropped"] == {
        "empty_text": {"keto": 0, "running": 1},
        "unmatched_community": {"posts": 1, "values": 1, "shown": {"'gardening'": 1}}}
    assert inputs.sources["llama3"] == {"kind": "external", "provenance": "Llama-3-8B, tuned", "filtered": False,
                                        "files": {f"data/external/llama3/{c}.jsonl": corpora.sha256(
                                            tmp_path / f"data/external/llama3/{c}.jsonl") for c in ("keto", "running")},
                                        "dropped": {"empty_text": {"keto": 0, "running": 0}}}


def labelled(tmp_path, external):
    """Params whose keto community is labelled 'Keto & Diet', prepared posts, and the one-file corpus api.csv."""
    path = params(tmp_path, external)
    cfg = yaml.safe_load(path.read_text())
    cfg["communities"]["keto"]["label"] = "Keto & Diet"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    write_prepared(tmp_path)
    (tmp_path / "data/external").mkdir(parents=True, exist_ok=True)
    rows = ([("Keto and Diet", f"keto post {i} about bacon") for i in range(3)]
            + [(" running ", "ten miles today"), ("Keto & Diet", "fat bombs"), ("Runing", "a typo label post")])
    (tmp_path / "data/external/api.csv").write_text(
        "group,post\n" + "".join(f'"{group}","{post}"\n' for group, post in rows))
    return path


def test_an_unmatched_community_value_is_an_error_listing_each_with_its_count_and_closest_label(tmp_path):
    cfg = load_config(labelled(tmp_path, [ONE_FILE]))
    with pytest.raises(corpora.InputError) as caught:
        corpora.load(cfg, tmp_path)
    message = str(caught.value)
    assert ("4 posts have a value of column 'group' (evaluate.external[0].columns.community) that matches no "
            "declared community: 'Keto and Diet' (3 posts; closest 'Keto & Diet' = keto); 'Runing' (1 posts; "
            "closest 'running' = running). Map each to a community key under evaluate.external[0].labels, or "
            "set evaluate.external[0].unmatched: skip") in message


def test_labels_map_a_corpus_s_community_values_and_are_validated(tmp_path):
    mapped = ONE_FILE | {"labels": {"Keto and Diet": "keto", "Runing": "running"}}
    inputs = corpora.load(load_config(labelled(tmp_path, [mapped])), tmp_path)
    assert {c: len(posts) for c, posts in inputs.corpora["api"].items()} == {"keto": 4, "running": 2}
    assert inputs.sources["api"]["dropped"]["unmatched_community"] == {"posts": 0, "values": 0, "shown": {}}
    with pytest.raises(ConfigError, match=r"evaluate.external\[0\].labels.Runing: 'runing' is not a declared "
                                          r"community key; keys: \['keto', 'running'\]"):
        load_config(params(tmp_path, [ONE_FILE | {"labels": {"Runing": "runing"}}]))
    with pytest.raises(ConfigError, match=r"evaluate.external\[0\].labels: maps values of a community column"):
        load_config(params(tmp_path, [PER_FILE | {"labels": {"Keto and Diet": "keto"}}]))
    with pytest.raises(ConfigError, match=r"evaluate.external\[0\].unmatched: must be error or skip"):
        load_config(params(tmp_path, [ONE_FILE | {"unmatched": "ignore"}]))


def test_skipped_values_are_counted_and_logged_without_post_text(tmp_path, caplog):
    """A mis-named community column holds post text: neither the warning nor the outputs carry it whole."""
    path = labelled(tmp_path, [ONE_FILE | {"columns": {"text": "group", "community": "post"}, "unmatched": "skip"}])
    posts = [f"generated post {i} " + "about fasting and weight " * 10 for i in range(180)]
    (tmp_path / "data/external/api.csv").write_text("group,post\n" + "".join(f"keto,{p}\n" for p in posts))
    with caplog.at_level("WARNING", logger="hivelm.corpora"):
        inputs = corpora.load(load_config(path), tmp_path)
    [warning] = [r.getMessage() for r in caplog.records]
    assert len(warning) < 400 and "180 posts skipped (evaluate.external[0].unmatched: skip)" in warning
    assert posts[0] not in warning
    skipped = inputs.sources["api"]["dropped"]["unmatched_community"]
    assert skipped["posts"] == 180 and skipped["values"] == 180 and len(skipped["shown"]) == corpora.SHOWN_VALUES
    assert max(len(value) for value in skipped["shown"]) < 50
    path.write_text(path.read_text().replace("unmatched: skip", "unmatched: error"))
    with pytest.raises(corpora.InputError) as caught:  # the error lists values clipped, and at most 20 of them
        corpora.load(load_config(path), tmp_path)
    assert len(str(caught.value)) < 3000 and "and 160 more values (is that the community column?)" in str(caught.value)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_null_empty_and_blank_texts_follow_one_rule_dropped_and_counted(tmp_path, fmt):
    import pandas as pd

    cfg = load_config(params(tmp_path, [PER_FILE | {"path": f"data/external/llama3/{{community}}.{fmt}"}]))
    write_prepared(tmp_path)
    texts = {"keto": ["bacon and eggs", "", "   ", None, "fat bombs"], "running": ["ten miles", "\t\n"]}
    for c, column in texts.items():
        path = tmp_path / f"data/external/llama3/{c}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame({"text": column, "id": range(len(column))})
        if fmt == "csv":
            frame.to_csv(path, index=False)
        elif fmt == "parquet":
            frame.to_parquet(path)
        else:
            path.write_text("".join(json.dumps({"text": t}) + "\n" for t in column))  # None: a JSON null
    inputs = corpora.load(cfg, tmp_path)
    assert inputs.corpora["llama3"] == {"keto": ["bacon and eggs", "fat bombs"], "running": ["ten miles"]}
    assert inputs.sources["llama3"]["dropped"] == {"empty_text": {"keto": 3, "running": 1}}


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


def test_the_report_shows_what_was_left_out_of_an_external_corpus():
    from hivelm.stages.report import provenance

    dropped = {"empty_text": {"keto": 3, "running": 0},
               "unmatched_community": {"posts": 5, "values": 2, "shown": {"'Keto and Diet'": 4, "'Runing'": 1}}}
    summary = {"sources": {"api": {"kind": "external", "provenance": "an API model", "files": {}, "filtered": False,
                                   "dropped": dropped}}}
    rows = dict(provenance(load_config(REPO / "params.yaml"), summary))
    assert rows["corpus api"].endswith(
        "not filtered; dropped 3 empty texts (keto 3); skipped 5 posts of 2 community values matching no declared "
        "community ('Keto and Diet' 4, 'Runing' 1)")


def test_hivelm_run_names_the_key_of_a_missing_input_file_before_dvc_runs(tmp_path, monkeypatch, capsys):
    from hivelm.cli import main

    path = params(tmp_path, [PER_FILE, ONE_FILE])
    (tmp_path / "data/external/llama3").mkdir(parents=True)
    (tmp_path / "data/external/llama3/keto.jsonl").write_text('{"text": "ok"}\n')
    monkeypatch.chdir(tmp_path)
    assert main(["--params", str(path), "run"]) == 2
    assert capsys.readouterr().err == (
        "hivelm run: error: 2 input file(s) named in the params are missing, nothing was run: "
        "evaluate.external[0].path ({community} = running): data/external/llama3/running.jsonl: file not found; "
        "evaluate.external[1].path: data/external/api.csv: file not found\n")
    assert not (tmp_path / "dvc.yaml").exists() and not (tmp_path / "mlflow.db").exists()
