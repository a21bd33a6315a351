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
