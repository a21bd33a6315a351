"""Check: does another CPU kind's noise change the committed reports? Moves every LoRA adapter weight by one ulp in
a random direction (as training on another CPU kind moves them), in a COPY of a project whose pipeline has run.

    cp -r . ../noise-check && cd ../noise-check      # never in the checkout you commit from
    .venv/bin/python bench/cpu_noise.py              # perturbs models/adapters/*/adapter_model.safetensors
    # then run what it prints: accept the perturbed adapters as tune's outputs, force every stage after tune,
    # and see which files of reports/ changed (docs/explanation/performance.md, "The same numbers on any CPU")
"""

from __future__ import annotations

import argparse
from pathlib import Path


def perturb(path: Path, seed: int) -> int:
    """Move every float of the safetensors file at `path` by one ulp up or down (seeded); returns the tensor count."""
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    rng = np.random.default_rng(seed)
    moved = {}
    for name, tensor in load_file(str(path)).items():
        values = tensor.float().numpy()
        up = rng.random(values.shape) < 0.5
        moved[name] = torch.from_numpy(np.where(up, np.nextafter(values, np.inf), np.nextafter(values, -np.inf))
                                       .astype(np.float32)).to(tensor.dtype)
    save_file(moved, str(path), metadata={"format": "pt"})
    return len(moved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", default="models/adapters")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = sorted(Path(args.adapters).glob("*/adapter_model.safetensors"))
    if not files:
        raise SystemExit(f"no adapters under {args.adapters}: run the pipeline first")
    for path in files:
        print(f"{path}: {perturb(path, args.seed)} tensors moved by one ulp")
    names = [path.parent.name for path in files]
    print("next (with the project's .venv/bin on PATH, as `make repro` runs, so that DVC finds hivelm):"
          "\n  export PATH=$PWD/.venv/bin:$PATH\n  dvc commit -f " + " ".join(f"tune@{n}" for n in names)
          + "\n  dvc repro -f --downstream " + " ".join(f"generate@{n} survey@{n}" for n in names) + " attribute"
          + "\n  git status --short reports/")


if __name__ == "__main__":
    main()
