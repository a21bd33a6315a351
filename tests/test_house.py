"""Issue 24, part 3: each module one job, on the import graph (read with ast, as dvc.yaml's deps are)."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from hivelm.contracts import STAGES
from hivelm.dvcfile import PACKAGE, _imported, code_deps, module_file


def _name(path: Path) -> str:
    return ".".join(("hivelm", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def _graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        for module in _imported(path):
            target = _name(module_file(module))
            if target != _name(path) and not _name(path).startswith(target + "."):  # a package's own __init__
                graph.add_edge(_name(path), target)
    return graph


def test_no_import_cycle_among_hivelm_modules():
    assert list(nx.simple_cycles(_graph())) == []


def test_the_read_guard_and_the_reference_writer_rerun_no_stage():
    for name, contract in STAGES.items():
        deps = code_deps(contract)
        assert "src/hivelm/declared.py" not in deps and "src/hivelm/reference.py" not in deps, name


def test_no_stage_module_imports_another_stage_module():
    """A stage's DVC deps are its import closure (dvcfile.code_deps): a stage importing another (attribute took
    `encode` from tune) would rerun whenever the other's code changes. Shared code lives outside stages/."""
    stages = PACKAGE / "stages"
    for path in stages.glob("*.py"):
        others = {module_file(m) for m in _imported(path)} & set(stages.glob("*.py"))
        assert others <= {path, stages / "__init__.py"}, f"{path.name} imports {sorted(p.name for p in others)}"
    assert "src/hivelm/stages/tune.py" not in code_deps(STAGES["attribute"])
