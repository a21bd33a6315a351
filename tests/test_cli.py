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
