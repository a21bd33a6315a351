"""base_model: the embedded GGUF (or a local folder / hub id) -> a plain model folder (paths.BASE_MODEL).

    hivelm base_model
    hivelm base_model base_model.source=meta-llama/Meta-Llama-3-8B-Instruct base_model.dtype=bfloat16

Converting the GGUF once (about 20 s) lets every later stage load the model in under a second. The converted
embedded model is also kept in a cache shared by projects (`cache_root`), so another project, a benchmark cell
or a test on this machine copies it (about a second) instead of converting again: the copy is the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from hivelm import paths
from hivelm.artifacts import atomic_dir, file_lock
from hivelm.config import HiveConfig
from hivelm.errors import HiveError
from hivelm.models import embedded_gguf, first_unreadable, load_source

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path | None:
    """Where converted embedded models are kept between projects: $HIVELM_CACHE, else $XDG_CACHE_HOME/hivelm,
    else ~/.cache/hivelm (the XDG base directory convention, as the Hugging Face hub cache follows it).
    HIVELM_CACHE=off keeps nothing."""
    configured = os.environ.get("HIVELM_CACHE")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hivelm"


def cache_entry(source: str, dtype: str) -> Path | None:
    """The cache folder of an embedded model's conversion, None for other sources or with the cache off.
    Everything the converted bytes depend on is in its name: the GGUF file's content, the dtype and the
    transformers version that converts it."""
    root = cache_root()
    if root is None or not source.startswith("embedded:"):
        return None
    import transformers

    name = source.removeprefix("embedded:")
    sha = file_sha256(embedded_gguf(source))[:16]
    return root / "embedded" / f"{name}-{sha}-{dtype}-transformers{transformers.__version__}"


def cached(entry: Path) -> bool:
    """Whether `entry` holds a whole conversion (swapped in whole, and every file reads back in full)."""
    return (entry / "config.json").is_file() and first_unreadable(entry) is None


def build(source: str, out_dir: Path, revision: str | None = None, dtype: str = "float32") -> dict:
    """Pure core: load `source` and save it as a safetensors model folder with a provenance record. An
    embedded source is copied from its cache entry, which the first build fills (one conversion at a time
    per entry: a second process waits for the first instead of converting beside it)."""
    entry = cache_entry(source, dtype)
    if entry is None:
        return _convert(source, out_dir, revision, dtype)
    try:
        with file_lock(entry.parent / f".{entry.name}.convert.lock", f"the cached conversion {entry}"):
            if not cached(entry):
                _convert(source, entry, revision, dtype)
    except (HiveError, OSError) as err:  # e.g. a read-only home: convert without keeping a copy
        log.warning("cannot keep the converted model in %s (%s): converting into %s only", entry, err, out_dir)
        return _convert(source, out_dir, revision, dtype)
    with atomic_dir(out_dir) as tmp:
        for file in entry.iterdir():
            shutil.copyfile(file, tmp / file.name)
    log.info("base model copied from the cache %s (HIVELM_CACHE=off converts afresh)", entry)
    return json.loads((out_dir / paths.base_provenance().name).read_text())


def _convert(source: str, out_dir: Path, revision: str | None, dtype: str) -> dict:
    import transformers

    model, tokenizer = load_source(source, revision, dtype)
    provenance = {
        "source": source,
        "revision": revision,
        "dtype": dtype,
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "transformers": transformers.__version__,
    }
    if source.startswith("embedded:"):
        gguf = embedded_gguf(source)
        provenance.update(gguf_file=gguf.name, gguf_sha256=file_sha256(gguf))
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / paths.base_provenance().name).write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def main(cfg: HiveConfig, run) -> dict:
    provenance = build(cfg.base_model.source, paths.BASE_MODEL, cfg.base_model.revision, cfg.base_model.dtype)
    run.set_tags({"base_model": cfg.base_model.source})
    run.log_metrics({"parameters": provenance["parameters"]})
    run.log_artifact(paths.base_provenance())
    return provenance
