"""The params a stage declared, as a stage sees them and as MLflow records them.

`declared` hands a stage a read-only view of the config in which only the params its contract
(hivelm.contracts) declares can be read; `select` / `declared_params` give those params as plain values and
their hash, which `hivelm <stage>` logs to the stage's MLflow run. The stage server and the CLI use this
module; no stage imports it, so editing it reruns no stage (tests/test_house.py checks dvc.yaml's deps).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from typing import Any

from hivelm.config import HiveConfig, lookup, to_dict
from hivelm.errors import HiveError

FREE_SECTIONS = ("tracking",)
"""Sections any stage may read without declaring them: they change what is logged, never what is computed."""


class UndeclaredParamError(HiveError):
    """A stage read a param its contract (hivelm/contracts.py) does not declare."""


def _resolve(keys: Sequence[str], community: str | None) -> tuple[str, ...]:
    return tuple(k.replace("${key}", community or "") for k in keys)


def select(cfg: HiveConfig, keys: Sequence[str], community: str | None = None) -> dict[str, Any]:
    """{key: plain value} of a stage's declared params (`${key}` is the community); for a per-community run
    of a stage that declares all `communities`, only that community's entry."""
    view = {key: to_dict(lookup(cfg, key)) for key in _resolve(keys, community)}
    if community is not None and isinstance(view.get("communities"), dict):
        view["communities"] = {community: view["communities"][community]}
    return view


class Declared:
    """A read-only view of a config node in which only declared params (and FREE_SECTIONS) can be read.

    The stage's code gets this instead of the whole config, so a param it reads but does not declare fails
    the first time it is read, naming the key, instead of silently missing from dvc.yaml and MLflow."""

    def __init__(self, node: Any, path: str, allowed: tuple[str, ...], stage: str):
        object.__setattr__(self, "_parts", (node, path, allowed, stage))

    def _child(self, name: str, value: Any) -> Any:
        _, path, allowed, stage = object.__getattribute__(self, "_parts")
        key = f"{path}.{name}" if path else str(name)
        if key.split(".")[0] in FREE_SECTIONS or any(key == a or key.startswith(a + ".") for a in allowed):
            return value
        if any(a.startswith(key + ".") for a in allowed):
            return Declared(value, key, allowed, stage)
        raise UndeclaredParamError(f"stage {stage} reads param {key!r}, which its contract does not declare "
                                   f"(add it to the stage's params in src/hivelm/contracts.py, then run "
                                   f"`hivelm dvc-yaml`)")

    def __getattr__(self, name: str) -> Any:
        node = object.__getattribute__(self, "_parts")[0]
        if is_dataclass(node) and name in {f.name for f in fields(node)}:
            return self._child(name, getattr(node, name))
        if isinstance(node, dict) and name in ("keys", "items", "values", "get"):
            return {"keys": node.keys,
                    "items": lambda: [(k, self._child(k, v)) for k, v in node.items()],
                    "values": lambda: [self._child(k, v) for k, v in node.items()],
                    "get": lambda k, default=None: self._child(k, node[k]) if k in node else default}[name]
        method = getattr(type(node), name, None)
        if callable(method):  # e.g. HiveConfig.community(): runs against this view, so it is checked too
            return lambda *args, **kwargs: method(self, *args, **kwargs)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("the config a stage receives is read-only")

    def __getitem__(self, key: str) -> Any:
        return self._child(key, object.__getattribute__(self, "_parts")[0][key])

    def __contains__(self, key: object) -> bool:
        return key in object.__getattribute__(self, "_parts")[0]

    def __iter__(self):
        return iter(object.__getattribute__(self, "_parts")[0])

    def __len__(self) -> int:
        return len(object.__getattribute__(self, "_parts")[0])


def declared(cfg: HiveConfig, stage: str, keys: Sequence[str], community: str | None = None) -> HiveConfig:
    """`cfg` as stage `stage` may read it: its declared `keys` (with `${key}` = community) and FREE_SECTIONS."""
    return Declared(cfg, "", _resolve(keys, community), stage)  # type: ignore[return-value]


def declared_params(cfg: HiveConfig, contract, community: str | None) -> tuple[dict[str, Any], str]:
    """(view, config_hash) of exactly the params a stage's contract declares, for this community."""
    view = select(cfg, contract.params, community)
    return view, hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]
