"""The metric-regression gate: `hivelm check-metrics BASE` compares the metrics file with a baseline.

BASE is a git revision (the file as committed there) or a path to a baseline JSON file. A committed rules
file (configs/metric_rules.yaml) names, per metric (a dotted path, `*` matches one level), the direction
that is better and the tolerated change. `dvc metrics diff` has no thresholds, hence this small gate.
"""

from __future__ import annotations

import fnmatch
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hivelm import paths
from hivelm.config import flatten
from hivelm.errors import HiveError

METRICS_PATH = paths.METRICS
RULES_PATH = Path("configs/metric_rules.yaml")


@dataclass(frozen=True)
class Rule:
    pattern: str
    direction: str  # higher | lower: which way is better
    tolerance: float  # absolute change allowed in the worse direction


@dataclass(frozen=True)
class Check:
    metric: str
    base: float | None
    current: float | None
    rule: Rule

    @property
    def regressed(self) -> bool:
        if self.current is None or not math.isfinite(self.current):
            return self.base is not None and math.isfinite(self.base)
        if self.base is None or not math.isfinite(self.base):
            return False
        worse = self.current - self.base if self.rule.direction == "lower" else self.base - self.current
        return worse > self.rule.tolerance + 1e-12


def load_rules(path: str | Path = RULES_PATH) -> list[Rule]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise HiveError(f"{path}: rules file not found")
    try:
        loaded = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, RecursionError) as err:  # PyYAML's composer recurses once per nesting level
        raise HiveError(f"{path}: not valid YAML ({' '.join(str(err).split())[:200] or 'nested too deeply'})") \
            from None
    entries = loaded.get("rules") if isinstance(loaded, dict) else None
    if not isinstance(entries, list) or not entries:
        raise HiveError(f"{path}: needs a non-empty 'rules' list")
    rules = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or set(entry) != {"metric", "direction", "tolerance"}:
            raise HiveError(f"{path}: rule #{number} needs exactly metric, direction and tolerance")
        if entry["direction"] not in {"higher", "lower"}:
            raise HiveError(f"{path}: rule #{number} ({entry['metric']}): direction must be higher or lower")
        tolerance = entry["tolerance"]  # NaN passes `< 0` and would wave any change through
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) \
                or tolerance < 0:
            raise HiveError(f"{path}: rule #{number} ({entry['metric']}): tolerance must be a finite number >= 0 "
                            f"(got {tolerance!r})")
        rules.append(Rule(str(entry["metric"]), entry["direction"], float(entry["tolerance"])))
    return rules


def load_baseline(base: str, metrics_path: Path = METRICS_PATH) -> dict:
    """A baseline file if `base` is a path, else the metrics file as committed at git revision `base`."""
    if Path(base).is_file():
        return parse_metrics(Path(base).read_text(), f"baseline {base}")
    if base.startswith("-"):  # git would take it for an option (--output=FILE writes a file)
        raise HiveError(f"baseline {base!r}: not a file, and a git revision cannot start with '-'")
    shown = subprocess.run(["git", "show", "--end-of-options", f"{base}:{metrics_path.as_posix()}"],
                           capture_output=True, text=True)
    if shown.returncode != 0:
        raise HiveError(f"baseline {base!r}: not a file, and git has no {metrics_path} there "
                        f"({shown.stderr.strip()})")
    return parse_metrics(shown.stdout, f"baseline {metrics_path} at git revision {base}")


MAX_DEPTH = 32
"""Metrics files nest a few levels (section, community, corpus, metric, estimate); deeper is not ours, and
the flattening (and Python's json, at ~1,000 levels) would hit the recursion limit."""


def parse_metrics(text: str, where: str) -> dict:
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as err:
        raise HiveError(f"{where}: not valid JSON (line {err.lineno}: {err.msg})") from None
    except RecursionError:
        raise HiveError(f"{where}: nested too deeply to be a metrics file") from None
    if not isinstance(tree, dict):
        raise HiveError(f"{where}: expected a JSON object of metrics, got {type(tree).__name__}")
    if depth(tree) > MAX_DEPTH:
        raise HiveError(f"{where}: nested more than {MAX_DEPTH} levels deep: not a metrics file")
    return tree


def depth(tree) -> int:
    """How many levels of objects and arrays `tree` nests (iterative: no recursion limit)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def compare(base: dict, current: dict, rules: list[Rule]) -> list[Check]:
    """Pure core: one Check per metric matched by a rule (the first matching rule wins)."""
    flat_base, flat_current = _numbers(base), _numbers(current)
    checks, seen = [], set()
    for rule in rules:
        pattern = rule.pattern.replace(".", "\x00")
        for key in sorted(set(flat_base) | set(flat_current)):
            if key not in seen and fnmatch.fnmatchcase(key.replace(".", "\x00"), pattern):
                seen.add(key)
                checks.append(Check(key, flat_base.get(key), flat_current.get(key), rule))
    return checks


def _numbers(tree: dict) -> dict[str, float]:
    return {k: float(v) for k, v in flatten(tree).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def report(checks: list[Check]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="metric regression check")
    for column in ("metric", "better", "tolerance", "base", "current", "change", "status"):
        table.add_column(column)
    for check in checks:
        change = (check.current - check.base) if None not in (check.current, check.base) else float("nan")
        table.add_row(check.metric, check.rule.direction, f"{check.rule.tolerance:g}", _fmt(check.base),
                      _fmt(check.current), _fmt(change), "[red]REGRESSED" if check.regressed else "ok")
    console = Console()
    if not console.is_terminal:  # a CI log or a pipe has no width to fit: rich's 80 columns would cut names
        console = Console(width=10_000)
    console.print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def main(base: str, rules_path: str | Path = RULES_PATH, metrics_path: str | Path = METRICS_PATH) -> int:
    """Print the comparison; return 1 (and name the metrics) on any regression, else 0.

    A baseline or metrics file that cannot be read, or a baseline without any of the gated metrics, raises
    HiveError (exit 2), so that it is never mistaken for a pass, nor for a regression.
    """
    metrics_path = Path(metrics_path)
    if not metrics_path.is_file():
        raise HiveError(f"{metrics_path}: not found (run the pipeline first)")
    current = parse_metrics(metrics_path.read_text(), str(metrics_path))
    checks = compare(load_baseline(base, metrics_path), current, load_rules(rules_path))
    if not checks:
        raise HiveError(f"{rules_path}: no rule matched any metric in {metrics_path} or the baseline")
    if all(c.base is None for c in checks):
        raise HiveError(f"baseline {base}: has none of the {len(checks)} metrics that {rules_path} checks "
                        f"(e.g. {checks[0].metric}); not a metrics file of this pipeline?")
    if not any(c.base is not None and math.isfinite(c.base) for c in checks):  # nothing to compare against
        raise HiveError(f"baseline {base}: none of the {len(checks)} metrics that {rules_path} checks is a "
                        f"finite number (e.g. {checks[0].metric} is {checks[0].base}); a gate against it "
                        "would pass anything")
    report(checks)
    regressed = [c.metric for c in checks if c.regressed]
    if regressed:
        print(f"regression in {len(regressed)} metric(s): {', '.join(regressed)}")
        return 1
    print(f"{len(checks)} metrics checked: no regression")
    return 0
