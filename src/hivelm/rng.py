"""The one keyed random generator: every seeded draw in HiveLM depends only on the seed and its keys."""

from __future__ import annotations

import zlib


def keyed_rng(seed: int, *keys: str):
    """A numpy Generator for (seed, keys): the same draw whatever ran before it, and independent draws for
    different keys (e.g. a community and a topic). crc32 because Python's hash() is salted per process."""
    import numpy as np

    return np.random.default_rng([seed, *(zlib.crc32(key.encode("utf-8")) for key in keys)])
