"""base_model: the embedded GGUF (or a local folder / hub id) -> a plain model folder in models/base/.

    hivelm base_model
    hivelm base_model base_model.source=meta-llama/Meta-Llama-3-8B-Instruct base_model.dtype=bfloat16

Converting the GGUF once (about 30 s) lets every later stage load the model in under a second.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hivelm.config import HiveConfig
from hivelm.io import atomic_dir
from hivelm.models import BASE_DIR, embedded_gguf, load_source

PROVENANCE = "hivelm_base.json"


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
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def main(cfg: HiveConfig) -> dict:
    from hivelm import tracking

    with tracking.stage_run(cfg, "base_model", sections=("base_model",)) as run:
        provenance = build(cfg.base_model.source, BASE_DIR, cfg.base_model.revision, cfg.base_model.dtype)
        run.set_tags({"base_model": cfg.base_model.source})
        run.log_metrics({"parameters": provenance["parameters"]})
        run.log_artifact(BASE_DIR / PROVENANCE)
    return provenance
