import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hivelm.cli import STAGES, build_parser

REPO = Path(__file__).resolve().parents[1]


def test_help_is_fast_because_it_imports_no_heavy_library():
    code = ("import sys; from hivelm.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'mlflow', 'pandas', 'omegaconf') if m in sys.modules]\n"
            "print('heavy:' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "heavy:"


def test_every_dvc_stage_has_a_subcommand_and_back():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(stages) == [name for name, stage in STAGES.items() if stage.in_dvc]
    for name, stage in stages.items():
        cmd = (stage.get("do") or stage)["cmd"]
        assert cmd.split()[:2] == ["hivelm", name]
        assert ("foreach" in stage) == STAGES[name].per_community


def test_parser_takes_overrides_and_community():
    args = build_parser().parse_args(["instruct", "--community", "keto", "instruct.seed=3"])
    assert args.community == "keto" and args.overrides == ["instruct.seed=3"]


def test_params_may_follow_the_subcommand_too():
    parser = build_parser()
    assert parser.parse_args(["run", "--params", "mine.yaml"]).params == "mine.yaml"
    assert parser.parse_args(["--params", "mine.yaml", "run"]).params == "mine.yaml"
    assert parser.parse_args(["prepare", "--params", "mine.yaml", "prepare.seed=1"]).params == "mine.yaml"
    assert parser.parse_args(["instruct", "--all"]).params == "params.yaml"
    assert parser.parse_args(["run", "--", "--force"]).dvc_args == ["--", "--force"]


def test_version_comes_from_the_installed_package(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"hivelm {version('hivelm')}"


def test_every_subcommand_help_has_a_description_and_its_defaults():
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert sub.description, f"hivelm {name} --help has no description"
        text = sub.format_help()
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS) \
                    and action.dest != "help":
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)


def test_check_metrics_through_a_pipe_keeps_long_metric_names_whole(tmp_path):
    long = "a_community_with_a_rather_long_name_indeed"
    metric = {"fidelity": {"communities": {long: {"finetuned": {"fid": 0.1}}}}}
    (tmp_path / "base.json").write_text(json.dumps(metric))
    (tmp_path / "metrics.json").write_text(json.dumps(metric))
    (tmp_path / "rules.yaml").write_text(
        'rules:\n  - {metric: "fidelity.communities.*.finetuned.fid", direction: lower, tolerance: 0.05}\n')
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-m", "hivelm", "check-metrics", "base.json", "--rules", "rules.yaml",
                          "--metrics", "metrics.json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert f"fidelity.communities.{long}.finetuned.fid" in out


class OperationalError(Exception):
    """Stands for sqlite3's and SQLAlchemy's OperationalError (matched by name)."""


def raise_wrapped(error):
    def run_stage(*args):
        try:
            try:
                raise error
            except Exception as inner:
                raise OperationalError("(raised as a result of Query-invoked autoflush)") from inner
        except OperationalError as wrapped:  # as MlflowException wraps SQLAlchemy's
            raise RuntimeError("API request to the tracking store failed") from wrapped
    return run_stage


def test_a_full_disk_or_read_only_folder_is_the_line_the_user_sees(monkeypatch, capsys):
    """MLflow and SQLAlchemy wrap the OSError: users saw "Query-invoked autoflush" and a traceback."""
    import errno

    import hivelm.cli as cli
    import hivelm.config

    monkeypatch.setattr(hivelm.config, "load_config", lambda *args: None)
    cases = {OSError(errno.ENOSPC, "No space left on device", "mlflow.db"): "mlflow.db: the disk is full",
             OSError(errno.EROFS, "Read-only file system", "data/prepared"):
                 "data/prepared: the file system is read-only",
             OperationalError("database or disk is full"): "the MLflow store: the disk is full"}
    for error, line in cases.items():
        monkeypatch.setattr(cli, "run_stage", raise_wrapped(error))
        assert cli.main(["prepare"]) == 2
        assert capsys.readouterr().err == f"hivelm prepare: error: {line}\n"
    monkeypatch.setattr(cli, "run_stage", raise_wrapped(ZeroDivisionError()))
    with pytest.raises(RuntimeError):  # anything else is a bug: its traceback stays
        cli.main(["prepare"])


def test_attribute_takes_an_existing_file_with_an_equals_sign_as_its_file(tmp_path, monkeypatch):
    """Issue 31, point 9: `hivelm attribute my=posts.csv` read the file name as an override (exit 2)."""
    from hivelm import cli
    from hivelm.stages import attribute

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("communities:\n  keto: {label: keto, name: keto}\n")
    (tmp_path / "my=posts.csv").write_text("text\na post\n")
    calls = []
    monkeypatch.setattr(attribute, "attribute_file", lambda cfg, path, out: calls.append(
        (path, out, cfg.attribute.temperature)) or "written")
    assert cli.main(["attribute", "my=posts.csv", "attribute.temperature=0.5", "--out", "o.jsonl"]) == 0
    assert calls == [("my=posts.csv", "o.jsonl", 0.5)]
    assert cli._post_files(["posts.csv", "attribute.temperature=2", "my=posts.csv"]) == ["posts.csv", "my=posts.csv"]


def test_survey_score_on_absurdly_nested_answers_is_exit_2_with_one_line(tmp_path, monkeypatch, capsys):
    """Issue 31, point 10: 100,000-deep answers were a RecursionError traceback with exit 1. (YAML answers
    take the same path; PyYAML needs 1.5 s to reach the recursion limit, so test_gate tests that once.)"""
    from hivelm import cli

    name = "deep.json"
    (tmp_path / name).write_text("[" * 100_000 + "]" * 100_000)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert cli.main(["survey-score", str(tmp_path / name)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"hivelm survey-score: error: {tmp_path / name}: not a valid answers file: nested too deeply"]


def test_the_forked_stage_runs_its_command_without_asking_dvc_or_the_server(monkeypatch):
    """Issue 24.3: the stage server's child called cli.main(argv, forked=True), one entry telling its callers
    apart with a flag; it has its own (cli.forked_main), which neither waits on DVC nor forks again."""
    import inspect

    from hivelm import cli, processes

    def refuse(*args):
        raise AssertionError("a forked stage asked DVC or the server")

    ran = []
    monkeypatch.setenv("DVC_STAGE", "prepare")  # the client's environment, which the child takes over
    monkeypatch.setattr(processes, "end_with_dvc", refuse)
    monkeypatch.setattr(processes, "delegate", refuse)
    monkeypatch.setattr(cli, "execute", lambda args: ran.append(args.command) or 0)
    assert cli.forked_main(["prepare"]) == 0 and ran == ["prepare"]
    assert list(inspect.signature(cli.main).parameters) == ["argv"]


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_stages_start_with_openmp_threads_that_sleep_unless_the_user_says_otherwise(given, expected):
    """cli.STAGE_ENV is set before torch loads its OpenMP runtime, and DVC, the stage server and its forks inherit
    it; a value in the user's environment wins."""
    code = ("import os; from hivelm.cli import main\n"
            "main(['dvc-yaml', '--check'])\n"
            "print('policy:' + os.environ.get('OMP_WAIT_POLICY', ''))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env=env).stdout
    assert out.strip().splitlines()[-1] == f"policy:{expected}"
