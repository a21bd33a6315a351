"""Every command in the docs runs (issue 24): each `hivelm ... key=value` / `dvc exp run -S key=value` override
and each params snippet (a ```yaml block whose sections are params.yaml's) in README.md, docs/ and the
docstrings of src/hivelm is loaded against the config, so an example naming a key that does not exist fails
here, naming the file, instead of failing the reader."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from hivelm.config import ConfigError, HiveConfig, load_config

REPO = Path(__file__).resolve().parents[1]
SECTIONS = {f.name for f in fields(HiveConfig)}
PLACEHOLDERS = {"section.key"}  # "override one with `hivelm <stage> section.key=value`" names no real key
OVERRIDE = re.compile(r"(?:^|[\s`'\"(])(?:-S\s+)?([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)+)=([^\s`'\")]*)")
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def overrides_in(text: str) -> list[str]:
    """`key=value` overrides on the command lines of `text`: lines that run `hivelm` or `dvc exp run`."""
    found = []
    for line in text.splitlines():
        if re.search(r"\bhivelm\b|dvc exp run", line):
            found += [f"{key}={value}" for key, value in OVERRIDE.findall(line) if key not in PLACEHOLDERS]
    return found


def params_snippets(text: str) -> list[dict]:
    """```yaml blocks whose top-level keys are all params.yaml sections (not dvc.yaml fragments: no `cmd`)."""
    snippets = []
    for block in YAML_BLOCK.findall(text):
        tree = yaml.safe_load(block)
        if isinstance(tree, dict) and tree and set(tree) <= SECTIONS and "cmd:" not in block:
            snippets.append(tree)
    return snippets


def _sources() -> list[tuple[str, str]]:
    """(where, text): README.md, every docs page, and every docstring under src/hivelm."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    found = [(str(p.relative_to(REPO)), p.read_text(encoding="utf-8")) for p in pages]
    for module in sorted((REPO / "src/hivelm").rglob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) \
                    and (doc := ast.get_docstring(node)):
                found.append((f"{module.relative_to(REPO)}:{getattr(node, 'lineno', 1)}", doc))
    return found


def _check_override(override: str) -> None:
    load_config(REPO / "params.yaml", [override])


def _check_snippet(tree: dict, tmp_path: Path) -> None:
    """The snippet merged over the shipped params.yaml (it shows a part of a file, not a whole one)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for section, value in tree.items():
        if isinstance(value, dict) and isinstance(params.get(section), dict) and section != "communities":
            params[section] = {**params[section], **value}
        else:
            params[section] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    load_config(path)


def test_every_documented_override_and_params_snippet_loads(tmp_path):
    problems, overrides, snippets = [], {}, 0
    for where, text in _sources():
        for override in overrides_in(text):
            overrides.setdefault(override, []).append(where)
        for tree in params_snippets(text):
            snippets += 1
            try:
                _check_snippet(tree, tmp_path)
            except ConfigError as err:
                problems.append(f"{where}: params snippet {list(tree)}: {err}")
    for override, places in overrides.items():  # each distinct override once (a config load is 0.1 s)
        try:
            _check_override(override)
        except ConfigError as err:
            problems.append(f"{', '.join(places)}: `{override}`: {err}")
    assert problems == []
    assert len(overrides) > 15 and snippets >= 2  # the extraction finds what the docs hold


PLANTED = '''"""stage: ...

    hivelm evaluate evaluate.bootstrap_resamples=1000
    dvc exp run -S generate.temperature=0.7 -S tune.lora_r=16
"""'''


def test_a_planted_bad_key_fails(tmp_path):
    """The two stale docstring examples this test was written for (evaluate.py and generate.py said these)."""
    assert overrides_in(PLANTED) == ["evaluate.bootstrap_resamples=1000", "generate.temperature=0.7",
                                     "tune.lora_r=16"]
    for bad in ("evaluate.bootstrap_resamples=1000", "generate.temperature=0.7"):
        with pytest.raises(ConfigError, match=bad.split("=")[0].split(".")[-1]):
            _check_override(bad)
    _check_override("tune.lora_r=16")
    snippet = params_snippets("```yaml\nsurvey:\n  in_context_k: 20\n```\n```yaml\ndetect:\n  cmd: x\n```")
    assert snippet == [{"survey": {"in_context_k": 20}}]
    with pytest.raises(ConfigError, match="in_context_k"):
        _check_snippet(snippet[0], tmp_path)
