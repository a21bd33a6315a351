"""Committed numbers do not depend on the CPU: `write_json` writes floats at `artifacts.SIGNIFICANT_DIGITS`, so noise in
the last bits of a float (another CPU kind's kernels, another thread count) leaves the written bytes unchanged."""

from __future__ import annotations

import json

import numpy as np

from hivelm.artifacts import SIGNIFICANT_DIGITS, write_json


def metrics_like(rng) -> dict:
    """A stage's report: estimates with intervals, a matrix, counts, labels, a null and a tiny p-value."""
    return {"n": 120, "ok": True, "label": "keto",
            "diagonal_share": {"value": float(rng.random()), "low": float(rng.random()), "high": float(rng.random())},
            "gain": rng.normal(size=(4, 4)).tolist(), "p_value": 3.3e-17 * float(rng.random()), "missing": None,
            "seconds": 1234.56789 * float(rng.random())}


def perturbed(payload, factor: float):
    if isinstance(payload, float):
        return payload * factor
    if isinstance(payload, dict):
        return {k: perturbed(v, factor) for k, v in payload.items()}
    if isinstance(payload, list):
        return [perturbed(v, factor) for v in payload]
    return payload


def test_last_bit_noise_leaves_the_written_bytes_unchanged(tmp_path):
    rng = np.random.default_rng(7)
    for trial in range(20):
        payload = metrics_like(rng)
        write_json(tmp_path / "a.json", payload)
        write_json(tmp_path / "b.json", perturbed(payload, 1 + 1e-12))
        assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes(), trial
    written = json.loads((tmp_path / "a.json").read_text(), parse_constant=lambda c: pytest_fail(c))
    assert written["n"] == 120 and written["ok"] is True and written["missing"] is None
    for value in np.ravel(written["gain"]):
        assert value == float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    assert 0 < written["p_value"] < 1e-16  # significant digits, not decimals: a tiny number keeps its value


def test_nan_is_still_null_with_a_reason(tmp_path):
    write_json(tmp_path / "a.json", {"value": float("nan"), "low": 0.1234567891})
    assert json.loads((tmp_path / "a.json").read_text()) == {
        "value": None, "low": 0.123457, "reason": "undefined (not a finite number): value"}


def pytest_fail(constant):
    raise AssertionError(f"not strict JSON: {constant}")


def test_a_rerun_within_the_noise_leaves_the_file_and_a_real_change_is_written(tmp_path):
    """What another CPU kind does to a rerun (numbers moved by up to ~1e-6 relative, some across a rounding
    boundary) leaves the committed bytes; a change beyond NOISE_TOLERANCE, a new key or a new string is written.
    Files inside a staged folder (a stage's output directory) are kept the same way."""
    from hivelm.artifacts import NOISE_TOLERANCE, staged_outputs, write_jsonl

    rng = np.random.default_rng(3)
    payload = metrics_like(rng) | {"edge": 0.6460965}  # on a rounding boundary at six significant digits
    report, folder = tmp_path / "reports" / "metrics.json", tmp_path / "reports" / "attribute"

    def run(change: float, extra: dict | None = None) -> None:
        with staged_outputs() as out:
            write_json(out.path(report), perturbed(payload | (extra or {}), change))
            out.dir(folder)
            write_jsonl(out.path(folder / "gains.jsonl"), [{"post_id": "p1", "gain": 0.6460965 * change}])

    run(1.0)
    committed = report.read_bytes(), (folder / "gains.jsonl").read_bytes()
    assert f"{0.6460965 * (1 - 2e-6):.6g}" != f"{0.6460965:.6g}"  # rounding alone would rewrite "edge" ...
    run(1 - 2e-6)
    assert (report.read_bytes(), (folder / "gains.jsonl").read_bytes()) == committed  # ... the noise does not
    run(1 + 10 * NOISE_TOLERANCE)
    assert report.read_bytes() != committed[0] and (folder / "gains.jsonl").read_bytes() != committed[1]
    run(1.0, {"label": "running"})
    assert json.loads(report.read_text())["label"] == "running"


def test_same_within_noise_compares_structure_exactly_and_floats_within_the_tolerance():
    from hivelm.artifacts import NOISE_TOLERANCE, same_within_noise

    assert same_within_noise({"a": [1.0, 2, "x"]}, {"a": [1.0 + NOISE_TOLERANCE / 2, 2, "x"]})
    assert not same_within_noise({"a": [1.0]}, {"a": [1.0 + 2 * NOISE_TOLERANCE]})
    assert not same_within_noise({"a": 1}, {"b": 1}) and not same_within_noise([1, 2], [1, 2, 3])
    assert not same_within_noise({"n": 120}, {"n": 121}) and not same_within_noise(True, 1)
    assert not same_within_noise(None, 0.0) and same_within_noise(None, None)
    assert same_within_noise(0.0181322, 0.0181329) and not same_within_noise(0.018, 0.019)  # absolute below 1
    assert same_within_noise(1234.5, 1234.5 * (1 + NOISE_TOLERANCE / 2)) and not same_within_noise(1234.5, 1234.6)
