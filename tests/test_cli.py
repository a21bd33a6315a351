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
