import subprocess
import sys
from pathlib import Path

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
