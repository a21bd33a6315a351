"""Stage contracts declared once (hivelm.contracts): dvc.yaml, MLflow params and artifact paths follow from them."""

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run
from hivelm import dvcfile, paths
from hivelm.config import ConfigError, load_config
from hivelm.contracts import CONTRACTS, STAGES
from hivelm.declared import UndeclaredParamError, declared

SRC = REPO / "src" / "hivelm"


def test_committed_dvc_yaml_is_the_render_of_the_contracts():
    assert (REPO / "dvc.yaml").read_text() == dvcfile.render(), "run `hivelm dvc-yaml` and commit dvc.yaml"


def test_import_closure_follows_imports_inside_functions_and_nothing_else():
    generate = set(dvcfile.code_deps(STAGES["generate"]))
    # models and the progress bar are imported inside main(); generation, rng and filters at the top
    assert {"src/hivelm/models.py", "src/hivelm/progress.py", "src/hivelm/generation.py", "src/hivelm/rng.py",
            "src/hivelm/filters.py", "src/hivelm/stages/generate.py", "src/hivelm/__init__.py"} <= generate
    summarize = set(dvcfile.code_deps(STAGES["summarize"]))
    assert "src/hivelm/survey/scoring.py" in summarize and "src/hivelm/metrics.py" in summarize
    assert not {"src/hivelm/models.py", "src/hivelm/generation.py"} & summarize  # scoring only, no model code
    assert all(d.startswith("src/hivelm/") for c in CONTRACTS for d in dvcfile.code_deps(c))


def test_no_stage_depends_on_an_empty_file():
    """DVC warns "'src/hivelm/stages/__init__.py' is empty." at every hash of an empty dependency, about ten
    times a run: users read it as a fault (issue 30)."""
    deps = {d for c in CONTRACTS for d in dvcfile.code_deps(c)}
    assert not [d for d in sorted(deps) if (REPO / d).stat().st_size == 0]


def test_every_artifact_path_is_spelled_out_in_paths_py_only():
    literals = {str(value) for value in vars(paths).values() if isinstance(value, Path)}
    assert {"data/prepared", "data/generated", "reports/metrics.json", "models/adapters"} <= literals
    for file in SRC.rglob("*.py"):
        if file.name == "paths.py":
            continue
        text = file.read_text()
        found = [p for p in literals if re.search(rf"(?<![\w/.]){re.escape(p)}(?![\w])", text)]
        assert not found, f"{file.relative_to(REPO)} spells out {found}: use hivelm.paths"


def test_a_stage_cannot_read_a_param_it_does_not_declare():
    cfg = load_config(REPO / "params.yaml")
    tune = declared(cfg, "tune", STAGES["tune"].params, "keto")
    assert tune.tune.lora_r == cfg.tune.lora_r and tune.base_model.device == cfg.base_model.device
    assert tune.tracking.experiment == cfg.tracking.experiment  # logging settings are free to read
    with pytest.raises(UndeclaredParamError, match=r"stage tune reads param 'base_model.source'"):
        _ = tune.base_model.source
    with pytest.raises(UndeclaredParamError, match=r"'generate'"):
        _ = tune.generate
    instruct = declared(cfg, "instruct", STAGES["instruct"].params, "keto")
    assert instruct.community("keto").name == cfg.communities["keto"].name
    with pytest.raises(UndeclaredParamError, match=r"'communities.running'"):
        instruct.community("running")


def test_survey_decoding_is_validated_like_generates():
    for section in ("generate", "survey"):
        with pytest.raises(ConfigError, match=rf"{section}.decoding.top_k: must be >= 0"):
            load_config(REPO / "params.yaml", [f"{section}.decoding.top_k=-1"])
        with pytest.raises(ConfigError, match=rf"{section}.decoding.repetition_penalty: must be > 0"):
            load_config(REPO / "params.yaml", [f"{section}.decoding.repetition_penalty=0"])
        with pytest.raises(ConfigError, match=rf"{section}.in_context.words: must be >= 1"):
            load_config(REPO / "params.yaml", [f"{section}.in_context.words=0"])
    with pytest.raises(ConfigError, match=r"survey.top_k"):  # the old flat key names its path too
        load_config(REPO / "params.yaml", ["survey.top_k=-1"])


# ------------------------------------------------------------------------------------------ real DVC status

def _placeholder(path: Path) -> None:
    """Stand-in content for an output: a file, or a folder with one file (by whether the name has a suffix)."""
    target = path if path.suffix else path / "placeholder.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"{path}\n")


@pytest.fixture
def committed_pipeline(tmp_path):
    """The project's dvc.yaml, params, configs and src in a fresh git + DVC repo, every output present as a
    placeholder and recorded in dvc.lock by `dvc commit`, so `dvc status` starts clean without running."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, repo / name)
    for name in ("configs", "src", ".dvc"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "tmp",
                                                                                 "cache"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    _placeholder(repo / params["data"]["path"])
    communities = list(params["communities"])
    for contract in (c for c in CONTRACTS if c.in_dvc):
        for path in (*contract.deps, *contract.outs, *contract.reports, *contract.metrics):
            for community in communities if contract.per_community else [None]:
                if not path.startswith("${"):  # files named in params.yaml (templates) are in configs/
                    _placeholder(repo / path.replace("${key}", community or ""))
    run(["git", "init", "-q"], repo)
    run([str(BIN / "dvc"), "commit", "-f", "-q"], repo)
    assert json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout) == {}
    return repo, communities


@pytest.mark.integration
@pytest.mark.parametrize(("module", "stages"), [
    ("generation.py", ["generate", "survey"]),
    ("metrics.py", ["survey", "evaluate", "attribute", "summarize", "report"]),
    ("models.py", ["base_model", "prepare", "tune", "generate", "survey", "attribute"]),
])
def test_editing_a_module_makes_exactly_the_stages_that_import_it_stale(committed_pipeline, module, stages):
    repo, communities = committed_pipeline
    with open(repo / "src/hivelm" / module, "a") as handle:
        handle.write("# a comment is a change\n")
    stale = set(json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout))
    expected = {f"{s}@{c}" if STAGES[s].per_community else s for s in stages
                for c in (communities if STAGES[s].per_community else [None])}
    assert stale == expected


@pytest.mark.integration
def test_editing_a_file_the_params_name_makes_the_stage_that_reads_it_stale(committed_pipeline):
    """Extra sources (data.extra_sources) are inputs of prepare like data.path: dvc.yaml lists each file."""
    repo, _ = committed_pipeline
    params = yaml.safe_load((repo / "params.yaml").read_text())
    label = next(iter(params["communities"].values()))["label"]
    params["data"]["extra_sources"] = [{"path": "data/more/forum.jsonl", "community": label}]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "data/more").mkdir(parents=True)
    (repo / "data/more/forum.jsonl").write_text('{"text": "a post from the forum"}\n')
    run([str(BIN / "hivelm"), "dvc-yaml"], repo)
    assert "data/more/forum.jsonl" in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["prepare"]["deps"]
    run([str(BIN / "dvc"), "commit", "-f", "-q"], repo)
    assert json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout) == {}

    with open(repo / "data/more/forum.jsonl", "a") as handle:
        handle.write('{"text": "an edit in place"}\n')
    assert set(json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout)) == {"prepare"}


RUNNABLE_PARAMS = ["params.yaml", "configs/ci/params.yaml", "configs/external/params.yaml",
                   "configs/presets/eating-disorder/params.yaml",
                   "configs/planted/params.yaml"]  # reports/*/params.yaml: archives of old runs


@pytest.mark.parametrize("name", RUNNABLE_PARAMS)
def test_every_param_a_stage_declares_is_in_each_runnable_params_file(name):
    """DVC refuses a stage whose declared param is missing from params.yaml ("Parameters 'report.small_rows'
    are missing"), after every earlier stage ran: the CI-sized config (make quick) lost summarize that way."""
    import yaml

    from hivelm import dvcfile
    from hivelm.config import load_config

    path = REPO / name
    raw = yaml.safe_load(path.read_text())
    stages = yaml.safe_load(dvcfile.render(load_config(path)))["stages"]
    missing = set()
    for stage in stages.values():
        for key in (stage.get("do") or stage).get("params", []):
            node = raw
            for part in key.split(".") if isinstance(key, str) else ():
                if part.startswith("${"):
                    break  # a community key: the communities section exists
                if not isinstance(node, dict) or part not in node:
                    missing.add(key)
                    break
                node = node[part]
    assert missing == set(), f"{name} lacks {sorted(missing)}"
