"""`hivelm init` (a project of one's own), `hivelm check` (an early no) and surveys that follow the data."""

import csv
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, run

WORDS = {label: words.split() for label, words in (  # noqa: SIM905 (two lists of words, read as text)
    ("birding", "warbler heron kestrel plover finch wren owl egret swift lark marsh dawn lake reed hide scope "
                "flock nest call song migration tide estuary meadow hedge"),
    ("Baking Club", "sourdough rye brioche focaccia bagel crumb crust starter proof oven flour butter yeast dough "
                    "knead loaf rise steam scoring banneton levain glaze tin"))}


def write_posts(path: Path, per_community: int = 30) -> Path:
    """Two harmless communities, distinct posts (no near duplicates), in a Reddit-like export's columns."""
    import random

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "subreddit", "body"])
        for n in range(per_community):
            for label, words in WORDS.items():
                writer.writerow([f"{label[:2]}{n}", label, " ".join(random.Random(n).sample(words, 8))])
    return path


def git_status(repo: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.heavy  # runs dvc (init) in a subprocess
def test_init_makes_a_project_of_its_own_and_run_stops_early_on_a_small_corpus(tmp_path):
    before = git_status(REPO)
    posts = write_posts(tmp_path / "posts.csv")
    made = run([str(BIN / "hivelm"), "init", str(tmp_path / "birds"), "--posts", str(posts)], tmp_path)
    project = tmp_path / "birds"
    assert "text       <- body" in made.stdout and "community  <- subreddit" in made.stdout  # printed to confirm
    assert f"cd {project} && hivelm check && hivelm run" in made.stdout
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["tracking"]["experiment"] == "birds" and params["report"]["title"] == "HiveLM report: birds"
    assert params["report"]["content_warning"] is None and params["survey"]["instrument"] is None
    assert params["communities"] == {"baking_club": {"label": "Baking Club", "name": "Baking Club"},
                                     "birding": {"label": "birding", "name": "birding"}}
    assert params["data"]["path"] == "data/posts.csv" and (project / "data/posts.csv").is_file()
    assert (project / ".git").is_dir() and "analytics = false" in (project / ".dvc/config").read_text()
    template = run([str(BIN / "dvc"), "config", "plots.html_template"], project).stdout.strip()
    assert (project / ".dvc" / template).resolve() == project / "configs/dvc-plots/index.html"  # offline plots
    assert (project / "configs/dvc-plots/vega.min.js").is_file()
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert "survey" not in stages and not any("src/hivelm" in d for s in stages.values()
                                              for d in (s.get("do") or s)["deps"])
    assert not (project / "reports").exists() and not (project / "models").exists()  # no demo outputs
    started = time.monotonic()
    stopped = run([str(BIN / "hivelm"), "run"], project, check=False)
    assert stopped.returncode == 2 and time.monotonic() - started < 30
    assert "6 held-out posts" in stopped.stderr and "evaluate.min_posts=10" in stopped.stderr
    assert stopped.stderr.count("fewer than evaluate.min_posts") == 2  # one line per community
    assert not (project / "mlflow.db").exists() and not (project / "models").exists()  # before any model work
    assert git_status(REPO) == before  # the demo checkout is untouched


def test_init_refuses_a_folder_inside_the_checkout_and_a_missing_column(tmp_path):
    from hivelm.errors import HiveError
    from hivelm.project import infer_columns, init

    with pytest.raises(HiveError, match="inside the hivelm checkout"):
        init(REPO / "my-project", write_posts(tmp_path / "posts.csv"), {})
    assert not (REPO / "my-project").exists()
    with pytest.raises(HiveError, match="--text-column COLUMN"):
        infer_columns(["id", "subreddit", "words"], {})
    assert infer_columns(["id", "subreddit", "words"], {"text": "words"})["text"] == "words"


def small_config(tmp_path, monkeypatch, overrides=(), per_community=30):
    from hivelm.config import load_config
    from hivelm.project import communities, project_params

    (tmp_path / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    write_posts(tmp_path / "data/posts.csv", per_community)
    params = project_params("birds", "data/posts.csv", {"text": "body", "community": "subreddit",
                                                        "post_id": "id", "author_id": None, "timestamp": None},
                            communities(["birding", "Baking Club"]), None, None, None)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return load_config(tmp_path / "params.yaml", list(overrides))


def test_check_names_the_setting_for_every_problem(tmp_path, monkeypatch):
    from hivelm import check

    small = small_config(tmp_path, monkeypatch, ["prepare.min_posts_per_community=40", "generate.topics=[a]",
                                                 "generate.samples_per_topic=3"])
    found = check.problems(small)
    assert len(found) == 3
    assert all("prepare.min_posts_per_community=40" in line for line in found[:2])
    assert "generate.samples_per_topic to 10" in found[2]
    assert check.problems(small_config(tmp_path / "ok", monkeypatch, ["evaluate.min_posts=6"], 30)) == []


def test_check_loads_the_instrument_as_the_survey_would(tmp_path, monkeypatch):
    from hivelm import check

    cfg = small_config(tmp_path, monkeypatch, ["evaluate.min_posts=6", "survey.instrument=missing.yaml"])
    (found,) = check.problems(cfg)
    assert "missing.yaml" in found and "survey.instrument" in found


def test_no_instrument_renders_no_survey_stage_and_the_metrics_say_so(tmp_path, monkeypatch):
    from hivelm import dvcfile
    from hivelm.stages import summarize

    cfg = small_config(tmp_path, monkeypatch)
    stages = yaml.safe_load(dvcfile.render(cfg))["stages"]
    assert "survey" not in stages and "survey" in yaml.safe_load(dvcfile.render())["stages"]
    assert "reports/survey" not in stages["summarize"]["deps"] and "reports/survey" not in stages["report"]["deps"]

    class Run:
        def log_dict(self, *args):
            pass

        def log_metrics(self, *args):
            pass

    assert summarize.main(cfg, Run())["survey"] == summarize.NO_SURVEY == {"administered": False}


def test_run_checks_first_unless_told_not_to(tmp_path, monkeypatch):
    from hivelm import check, cli, pipeline

    small_config(tmp_path, monkeypatch)  # 6 held-out posts per community, evaluate.min_posts 10
    ran = []
    monkeypatch.setattr(pipeline, "run", lambda cfg, dvc_args, name: ran.append(dvc_args) or 0)
    assert cli.main(["run"]) == 2 and ran == []
    monkeypatch.setattr(check, "require", lambda cfg: ran.append("checked"))
    assert cli.main(["run", "--no-check", "--", "prepare"]) == 0 and ran == [["--", "prepare"]]
