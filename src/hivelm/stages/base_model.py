"""base_model: the embedded GGUF (or a local folder / hub id) -> a plain model folder (paths.BASE_MODEL).

    hivelm base_model
    hivelm base_model base_model.source=meta-llama/Meta-Llama-3-8B-Instruct base_model.dtype=bfloat16

Converting the GGUF once (about 30 s) lets every later stage load the model in under a second.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hivelm import paths
from hivelm.artifacts import atomic_dir
from hivelm.config import HiveConfig
from hivelm.models import embedded_gguf, load_source


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(source: str, out_dir: Path, revision: str | None = None, dtype: str = "float32") -> dict:
    """Pure core: load `source` and save it as a safetensors model folder with a provenance record."""
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
