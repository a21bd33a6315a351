import json
import subprocess
from pathlib import Path

import pytest

from hivelm import gate
from hivelm.errors import HiveError

REPO = Path(__file__).resolve().parents[1]
RULES = [gate.Rule("fidelity.communities.*.finetuned.fid", "lower", 0.05),
         gate.Rule("fidelity.communities.*.finetuned.attribution", "higher", 0.1)]


def metrics(fid_keto=0.10, fid_run=0.12, attribution=0.6):
    return {"fidelity": {"communities": {
        "keto": {"finetuned": {"fid": fid_keto, "attribution": attribution}, "untuned": {"fid": 0.5}},
        "running": {"finetuned": {"fid": fid_run, "attribution": attribution}}}}}


def test_compare_flags_only_changes_beyond_tolerance_in_the_worse_direction():
    checks = {c.metric: c for c in gate.compare(metrics(), metrics(fid_keto=0.14, fid_run=0.20), RULES)}
    assert set(checks) == {"fidelity.communities.keto.finetuned.fid", "fidelity.communities.running.finetuned.fid",
                           "fidelity.communities.keto.finetuned.attribution",
                           "fidelity.communities.running.finetuned.attribution"}
    assert not checks["fidelity.communities.keto.finetuned.fid"].regressed  # +0.04 within 0.05
    assert checks["fidelity.communities.running.finetuned.fid"].regressed  # +0.08
    better = gate.compare(metrics(), metrics(fid_keto=0.01, attribution=0.9), RULES)
    assert not any(c.regressed for c in better)
    worse = gate.compare(metrics(), metrics(attribution=0.45), RULES)
    assert [c.metric for c in worse if c.regressed] == ["fidelity.communities.keto.finetuned.attribution",
                                                        "fidelity.communities.running.finetuned.attribution"]


def test_a_metric_that_disappears_or_turns_nan_is_a_regression():
    current = metrics()
    del current["fidelity"]["communities"]["running"]
    assert sorted(c.metric for c in gate.compare(metrics(), current, RULES) if c.regressed) == [
        "fidelity.communities.running.finetuned.attribution", "fidelity.communities.running.finetuned.fid"]
    assert any(c.regressed for c in gate.compare(metrics(), metrics(fid_keto=float("nan")), RULES))


def test_check_metrics_against_a_git_revision_exits_non_zero_and_names_the_metric(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    path = tmp_path / "reports/metrics.json"
    path.write_text(json.dumps(metrics()))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base"]):
        subprocess.run(cmd, check=True)
    rules = REPO / "configs/metric_rules.yaml"
    assert gate.main("HEAD", rules) == 0
    path.write_text(json.dumps(metrics(fid_run=0.3)))
    assert gate.main("HEAD", rules) == 1
    out = capsys.readouterr().out
    assert "regression in 1 metric(s): fidelity.communities.running.finetuned.fid" in out
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(metrics(fid_run=0.3)))
    assert gate.main(str(baseline), rules) == 0
    with pytest.raises(HiveError, match="not a file, and git has no"):
        gate.main("no-such-revision", rules)


def test_shipped_rules_load_and_bad_rules_are_named(tmp_path):
    assert len(gate.load_rules(REPO / "configs/metric_rules.yaml")) >= 5
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - {metric: a.b, direction: up, tolerance: 1}\n")
    with pytest.raises(HiveError, match=r"rule #1 \(a.b\): direction must be higher or lower"):
        gate.load_rules(bad)


def refused(tmp_path, monkeypatch, capsys, baseline: str, error: str) -> str:
    """Gate the demo metrics against `baseline`: the core raises naming the file and `error`, and
    `hivelm check-metrics` exits 2. Returns what the command printed on stderr."""
    from hivelm import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/metrics.json").write_text(json.dumps(metrics()))
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n" + "".join(f"  - {{metric: '{r.pattern}', direction: {r.direction}, "
                                         f"tolerance: {r.tolerance}}}\n" for r in RULES))
    (tmp_path / "base.json").write_text(baseline)
    with pytest.raises(HiveError, match=f"baseline base.json: {error}"):
        gate.main("base.json", rules)
    assert cli.main(["check-metrics", "base.json", "--rules", str(rules)]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("baseline, error", [
    ("{}", "has none of the 4 metrics that .* checks"),
    ("[1, 2]", "expected a JSON object of metrics, got list"),
    ('{"speed": {"tokens_per_s": 12}}', "has none of the 4 metrics"),
    ('{"fidelity": {"communities": ', r"not valid JSON \(line 1: Expecting value\)"),
])
def test_a_baseline_the_gate_cannot_use_is_refused_with_exit_2(tmp_path, monkeypatch, capsys, baseline, error):
    assert "Traceback" not in refused(tmp_path, monkeypatch, capsys, baseline, error)


def test_a_revision_that_looks_like_an_option_never_reaches_git(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/metrics.json").write_text(json.dumps(metrics()))
    with pytest.raises(HiveError, match="a git revision cannot start with '-'"):
        gate.main(f"--output={tmp_path / 'written'}", REPO / "configs/metric_rules.yaml")
    assert not (tmp_path / "written").exists()


def test_rules_name_external_corpora_like_built_in_ones_and_insufficient_is_a_regression():
    """An external corpus sits in the metrics file exactly where a built-in one does (evaluate.external's name
    in place of `finetuned`), so a rule gates it by name; one that became too small to measure (null) regresses."""
    def tree(fid):
        return {"fidelity": {"communities": {"keto": {"llama3_ft": {"fid": fid, "n": 12},
                                                      "finetuned": {"fid": 0.2}}}}}

    rules = [gate.Rule("fidelity.communities.*.llama3_ft.fid", "lower", 0.05)]
    assert [(c.metric, c.regressed) for c in gate.compare(tree(0.1), tree(0.2), rules)] == [
        ("fidelity.communities.keto.llama3_ft.fid", True)]
    assert [c.regressed for c in gate.compare(tree(0.1), tree(None), rules)] == [True]
    every = [gate.Rule("fidelity.communities.*.*.fid", "lower", 0.05)]
    assert {c.metric for c in gate.compare(tree(0.1), tree(0.1), every)} == {
        "fidelity.communities.keto.llama3_ft.fid", "fidelity.communities.keto.finetuned.fid"}


@pytest.mark.parametrize("baseline, error", [
    (json.dumps(metrics(float("nan"), float("nan"), float("nan"))), "none of the 4 metrics .* is a finite number"),
    (json.dumps(metrics(float("inf"), float("-inf"), float("inf"))), "none of the 4 metrics .* is a finite number"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply to be a metrics file"),
    ('{"a": ' * 40 + "1" + "}" * 40, "nested more than 32 levels deep"),
])
def test_a_non_finite_or_absurdly_deep_baseline_is_exit_2_not_a_pass(tmp_path, monkeypatch, capsys, baseline, error):
    """Issue 31, point 10: an all-NaN (or Infinity) baseline said "no regression" (exit 0); 100,000-deep
    JSON was a RecursionError with exit 1, the code of a regression."""
    assert len(refused(tmp_path, monkeypatch, capsys, baseline, error).strip().splitlines()) == 1


@pytest.mark.parametrize("tolerance", [".nan", ".inf", "true", "'1'"])
def test_a_rule_whose_tolerance_is_not_a_finite_number_is_refused(tmp_path, tolerance):
    """Issue 31, point 10: a NaN tolerance let FID get worse by 10 (NaN < 0 is false, and so is x > NaN)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"rules:\n  - {{metric: a.b, direction: lower, tolerance: {tolerance}}}\n")
    with pytest.raises(HiveError, match=r"rule #1 \(a.b\): tolerance must be a finite number >= 0"):
        gate.load_rules(rules)


def test_a_rules_file_nested_too_deeply_is_one_line(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("[" * 5_000 + "]" * 5_000)  # past Python's recursion limit; PyYAML is slow
    with pytest.raises(HiveError, match="rules.yaml: not valid YAML"):
        gate.load_rules(rules)


def test_validity_rules_cover_the_card_and_pass_against_a_baseline_without_it():
    """The shipped rules gate the survey's validity card; the CI baseline, older than the card, has no
    `survey.validity` section, and a run that adds one must not fail on it (new metrics are reported)."""
    base = json.loads((REPO / "reports/ci-baseline/metrics.json").read_text())
    assert "validity" not in base.get("survey", {})
    card = {"checks_passed": 0.5, "order_sensitivity": {"value": 0.3, "low": 0.2, "high": 0.4},
            "majority_survives": {"value": 0.4, "items": 9}, "alpha": {"C1": {"value": 0.1, "low": 0.0, "high": 0.2}},
            "retest_icc": {"C1": {"value": 0.9, "low": 0.8, "high": 1.0}}}
    current = json.loads(json.dumps(base))
    current.setdefault("survey", {})["validity"] = {"communities": {"keto": {"finetuned": card}}}
    checks = gate.compare(base, current, gate.load_rules(REPO / "configs/metric_rules.yaml"))
    gated = {c.metric for c in checks if c.metric.startswith("survey.validity")}
    assert gated == {"survey.validity.communities.keto.finetuned.checks_passed",
                     "survey.validity.communities.keto.finetuned.order_sensitivity.value",
                     "survey.validity.communities.keto.finetuned.majority_survives.value",
                     "survey.validity.communities.keto.finetuned.alpha.C1.value",
                     "survey.validity.communities.keto.finetuned.retest_icc.C1.value"}
    assert not [c.metric for c in checks if c.regressed]
    worse = json.loads(json.dumps(current))
    worse["survey"]["validity"]["communities"]["keto"]["finetuned"]["checks_passed"] = 0.25
    assert [c.metric for c in gate.compare(current, worse, gate.load_rules(REPO / "configs/metric_rules.yaml"))
            if c.regressed] == ["survey.validity.communities.keto.finetuned.checks_passed"]
