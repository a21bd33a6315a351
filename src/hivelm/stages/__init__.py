"""The pipeline stages, one module each; DVC runs them as `hivelm <stage>` (see hivelm.contracts)."""
