"""Leakage: generated posts that copy real training posts, by ROUGE-L F (the paper's filter, arXiv 2408.09366).

The kernel behind `filters.leaked`: tokenisation like rouge-score, bit-parallel LCS, and an index that
prefilters candidate pairs so 27,000 generations x 10,000 posts take seconds (bench/leakage.py), with the
same result as the all-pairs loop (tests/test_leakage.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# rouge-score's tokenizer (tokenize.py, no stemming): lowercase, every run of characters outside [a-z0-9]
# becomes a separator. Like rouge-score it is ASCII-only, so "café" -> ["caf"] and emoji vanish; keeping its
# exact behaviour keeps our scores comparable with the paper's.
_ROUGE_SEPARATORS = re.compile(r"[^a-z0-9]+")

# Rows x reference columns of overlap counts held at once while prefiltering (float32: 16 MB).
_PREFILTER_BLOCK = 4_000_000
# An occurrence feature is multiplied densely (BLAS) when the fraction of (generated, reference) pairs sharing
# it is at least this; rarer features go through a sparse product. Below it, a sparse product does less work.
_DENSE_PAIR_FRACTION = 0.002
_MAX_DENSE_FEATURES = 512
# Exact LCS of surviving pairs: one uint64 word per pair for generated texts of up to _WORD_BITS (<= 64)
# tokens, taken in blocks whose position-mask table has about _MASK_TABLE_CELLS cells.
_WORD_BITS = 64
_MASK_TABLE_CELLS = 2_000_000


def rouge_tokens(text: str) -> list[str]:
    """Tokens as rouge-score makes them (lowercase, split on anything not [a-z0-9], no stemming)."""
    return _ROUGE_SEPARATORS.sub(" ", text.lower()).split()


def _match_masks(tokens: Sequence) -> dict:
    """token -> bitmask of its positions in `tokens`; the table the bit-parallel LCS scans."""
    masks: dict = {}
    for position, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << position)
    return masks


def _lcs_with_masks(masks: dict, length: int, other: Sequence) -> int:
    """LCS length of the masked sequence (`length` tokens) and `other`.

    Bit-parallel LCS (Allison-Dix / Crochemore et al.): one big-int add, subtract and or per token of
    `other`, so a 50 x 50 token pair costs ~50 Python operations instead of a 2,500-cell DP. Carries only
    ever move upwards, so bits above `length` never disturb the low ones that are counted.
    """
    row = (1 << length) - 1
    for token in other:
        matched = row & masks.get(token, 0)
        row = (row + matched) | (row - matched)
    return length - (row & ((1 << length) - 1)).bit_count()


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of two token sequences."""
    if len(a) < len(b):
        a, b = b, a
    return _lcs_with_masks(_match_masks(b), len(b), a) if b else 0


def rouge_l_f(candidate_tokens: Sequence[str], reference_tokens: Sequence[str]) -> float:
    """ROUGE-L F1 (Lin 2004): P = L/len(candidate), R = L/len(reference), F = 2PR/(P+R); 0.0 if L == 0.

    Computed as the equal 2L/(len(candidate) + len(reference)): one rounding instead of four, so a pair
    exactly at a threshold such as 0.7 (L = 7, lengths 10 + 10) scores exactly 0.7, and `leakage`'s
    prefilter can test the same expression on an upper bound of L.
    """
    total = len(candidate_tokens) + len(reference_tokens)
    lcs = lcs_length(candidate_tokens, reference_tokens) if total else 0
    return 2 * lcs / total if lcs else 0.0


def _min_lcs_table(lengths_a, lengths_b, threshold: float):
    """T[i, j]: smallest L with 2L/(a_i + b_j) >= threshold (as float64, the way rouge_l_f divides), or inf
    where even L = min(a_i, b_j) cannot reach it. An LCS is at most the shorter text, hence that cut-off."""
    import numpy as np

    total = lengths_a[:, None].astype(np.int64) + lengths_b[None, :]
    need = np.ceil(threshold * total / 2).astype(np.int64)
    # Nudge for rounding so that need is exactly the first L the float division lets through.
    need = np.where((need > 0) & (2 * (need - 1) / np.maximum(total, 1) >= threshold), need - 1, need)
    need = np.where(2 * need / np.maximum(total, 1) < threshold, need + 1, need)
    reachable = (need <= np.minimum(lengths_a[:, None], lengths_b[None, :])) & (need > 0)
    return np.where(reachable, need, np.inf).astype(np.float32)


def _occurrence_matrix(docs: list[list[int]]):
    """Binary CSR matrix of (token, k) features: row d has feature (w, k) when w occurs at least k times in
    doc d. The dot product of two rows is then exactly sum_w min(count_a(w), count_b(w)), the multiset
    token overlap, which bounds the LCS from above and is not inflated by repeated common words."""
    import numpy as np
    from scipy import sparse

    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    tokens = np.fromiter((t for d in docs for t in d), dtype=np.int64, count=int(lengths.sum()))
    rows = np.repeat(np.arange(len(docs)), lengths)
    order = np.lexsort((tokens, rows))
    rows, tokens = rows[order], tokens[order]
    starts = np.ones(len(tokens), dtype=bool)
    starts[1:] = (rows[1:] != rows[:-1]) | (tokens[1:] != tokens[:-1])
    positions = np.arange(len(tokens))
    occurrence = positions - np.maximum.accumulate(np.where(starts, positions, 0))
    keys = tokens * (int(lengths.max(initial=0)) + 1) + occurrence
    _, columns = np.unique(keys, return_inverse=True)
    data = np.ones(len(tokens), dtype=np.float32)
    shape = (len(docs), int(columns.max(initial=-1)) + 1)
    return sparse.csr_matrix((data, (rows, columns.ravel())), shape=shape)


def _candidate_pairs(generated: list[list[int]], references: list[list[int]], threshold: float):
    """(generated index, reference index) arrays of every pair whose ROUGE-L F could reach `threshold`.

    Exact prefilter: F = 2L/(lg + lr) with L <= min(lg, lr) and L <= the multiset token overlap, so a pair
    is dropped only when that upper bound already falls short. Overlaps of all pairs are computed in blocks:
    features shared by many pairs ("the", "i", first occurrences of frequent words) through a dense BLAS
    product, the long tail through a sparse product; both texts are sorted by length so each block only
    meets the references whose length is compatible with it at all.
    """
    import numpy as np

    n_gen = len(generated)
    features = _occurrence_matrix(generated + references)
    gen_features, ref_features = features[:n_gen], features[n_gen:]
    gen_df = np.asarray(gen_features.sum(axis=0)).ravel()
    ref_df = np.asarray(ref_features.sum(axis=0)).ravel()
    pair_fraction = (gen_df / len(generated)) * (ref_df / len(references))
    shared = np.flatnonzero(pair_fraction > 0)
    shared = shared[np.argsort(-pair_fraction[shared], kind="stable")]
    n_dense = int(min(_MAX_DENSE_FEATURES, np.count_nonzero(pair_fraction[shared] >= _DENSE_PAIR_FRACTION)))
    dense_cols, sparse_cols = shared[:n_dense], shared[n_dense:]

    gen_len = np.fromiter((len(d) for d in generated), dtype=np.int64, count=n_gen)
    ref_len = np.fromiter((len(d) for d in references), dtype=np.int64, count=len(references))
    gen_order, ref_order = np.argsort(gen_len, kind="stable"), np.argsort(ref_len, kind="stable")
    gen_len, ref_len = gen_len[gen_order], ref_len[ref_order]
    gen_dense = gen_features[gen_order][:, dense_cols]
    gen_sparse = gen_features[gen_order][:, sparse_cols].tocsr()
    ref_dense_t = np.ascontiguousarray(ref_features[ref_order][:, dense_cols].toarray().T)
    ref_sparse_t = ref_features[ref_order][:, sparse_cols].T.tocsc()

    gen_lengths, gen_code = np.unique(gen_len, return_inverse=True)
    ref_lengths, ref_code = np.unique(ref_len, return_inverse=True)
    need = _min_lcs_table(gen_lengths, ref_lengths, threshold)
    need_by_ref = np.ascontiguousarray(need[:, ref_code])   # minimum LCS per (generated length, reference)
    # Length window per generated length: the slice of (length-sorted) references it can reach at all.
    reachable = np.isfinite(need)
    any_reachable = reachable.any(axis=1)
    first_ref = np.searchsorted(ref_len, ref_lengths[reachable.argmax(axis=1)], side="left")
    stop_ref = np.searchsorted(ref_len, ref_lengths[len(ref_lengths) - 1 - reachable[:, ::-1].argmax(axis=1)],
                               side="right")

    rows_per_block = max(1, _PREFILTER_BLOCK // len(references))
    found_gen, found_ref = [], []
    for start in range(0, n_gen, rows_per_block):
        stop = min(n_gen, start + rows_per_block)
        codes = np.unique(gen_code[start:stop])
        codes = codes[any_reachable[codes]]
        if not len(codes):
            continue
        lo, hi = int(first_ref[codes].min()), int(stop_ref[codes].max())
        overlap = np.asarray(gen_dense[start:stop].toarray() @ ref_dense_t[:, lo:hi], dtype=np.float32)
        if len(sparse_cols):
            tail = (gen_sparse[start:stop] @ ref_sparse_t[:, lo:hi]).tocoo()
            overlap[tail.row, tail.col] += tail.data
        passed = overlap >= need_by_ref[gen_code[start:stop], lo:hi]
        candidates = np.flatnonzero(passed.any(axis=1))     # usually few rows: nonzero on those only
        rows, cols = np.nonzero(passed[candidates])
        rows = candidates[rows]
        found_gen.append(gen_order[rows + start])
        found_ref.append(ref_order[cols + lo])
    if not found_gen:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(found_gen), np.concatenate(found_ref)


def _lcs_lengths(generated: list[list[int]], references: list[list[int]], gen_index, ref_index):
    """LCS length of each (generated[gen_index[p]], references[ref_index[p]]) pair, pairs sorted by gen_index.

    The bit-parallel LCS of `_lcs_with_masks`, vectorised over pairs with one uint64 word per pair: at low
    thresholds millions of pairs survive the prefilter and a Python loop would cost ~5 us each. Generated
    texts are taken in blocks whose (text x distinct token) mask table stays small; one longer than 64
    tokens does not fit a word and goes through the Python big-int version instead.
    """
    import numpy as np

    lengths = np.zeros(len(gen_index), dtype=np.int64)
    gen_len = np.fromiter((len(d) for d in generated), dtype=np.int64, count=len(generated))
    ref_len = np.fromiter((len(d) for d in references), dtype=np.int64, count=len(references))
    long_pairs = np.flatnonzero(gen_len[gen_index] > _WORD_BITS)
    for p in long_pairs.tolist():
        lengths[p] = lcs_length(generated[gen_index[p]], references[ref_index[p]])

    ref_tokens = np.full((len(references), int(ref_len.max(initial=0))), -1, dtype=np.int64)
    ref_tokens[np.arange(len(references)).repeat(ref_len), _ranks(ref_len)] = np.fromiter(
        (t for d in references for t in d), dtype=np.int64, count=int(ref_len.sum()))
    vocabulary = 1 + max((max(d) for d in generated + references if d), default=0)
    local_id = np.zeros(vocabulary + 1, dtype=np.int64)      # index -1 (padding) lands on the last slot: 0
    texts, starts = np.unique(gen_index, return_index=True)
    bounds = np.append(starts, len(gen_index))
    # A block of n texts has at most n * mean_len distinct tokens, so its table has <= n^2 * mean_len cells.
    block = max(1, int((_MASK_TABLE_CELLS / max(1.0, gen_len.mean())) ** 0.5))
    for first in range(0, len(texts), block):
        chunk = texts[first:first + block]
        chunk = chunk[gen_len[chunk] <= _WORD_BITS]
        pairs = np.arange(bounds[first], bounds[min(first + block, len(texts))])
        pairs = pairs[gen_len[gen_index[pairs]] <= _WORD_BITS]
        if not len(pairs):
            continue
        chunk_len = gen_len[chunk]
        tokens = np.fromiter((t for g in chunk.tolist() for t in generated[g]), dtype=np.int64,
                             count=int(chunk_len.sum()))
        distinct = np.unique(tokens)
        local_id[distinct] = np.arange(1, len(distinct) + 1)
        masks = np.zeros((len(chunk), len(distinct) + 1), dtype=np.uint64)
        np.bitwise_or.at(masks, (np.arange(len(chunk)).repeat(chunk_len), local_id[tokens]),
                         np.left_shift(np.uint64(1), _ranks(chunk_len).astype(np.uint64)))
        row_of_pair = np.searchsorted(chunk, gen_index[pairs])
        m = chunk_len[row_of_pair].astype(np.uint64)
        full = np.where(m == 64, np.uint64(2**64 - 1), (np.uint64(1) << (m % np.uint64(64))) - np.uint64(1))
        row = full.copy()
        refs = ref_index[pairs]
        for step in range(int(ref_len[refs].max(initial=0))):
            matched = row & masks[row_of_pair, local_id[ref_tokens[refs, step]]]
            row = (row + matched) | (row - matched)    # uint64 wrap-around drops only carries out of the word
        lengths[pairs] = chunk_len[row_of_pair] - np.bitwise_count(row & full)
        local_id[distinct] = 0
    return lengths


def _ranks(lengths):
    """0, 1, ..., n-1 for each n in lengths, concatenated: the position of every token in its text."""
    import numpy as np

    total = int(lengths.sum())
    return np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def leakage(generated: Sequence[str], references: Sequence[str], threshold: float = 0.7) -> list[float]:
    """Per generated post, its highest ROUGE-L F against any reference (real training) post.

    All pairs would be 27,000 x 10,000 LCS computations per community in the paper's setting, so only pairs
    whose score can reach `threshold` (provable upper bound, see `_candidate_pairs`) get an exact LCS.
    Contract: `score >= threshold` holds exactly when it would for the all-pairs maximum, and every such
    score IS that exact maximum. A score below `threshold` is only a lower bound of the true maximum (the
    best pair that survived the prefilter, or 0.0). Requires threshold > 0: at 0 every score would have to
    be exact, which is the all-pairs computation this avoids.
    """
    import numpy as np

    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    ids: dict[str, int] = {}
    gen = [[ids.setdefault(t, len(ids)) for t in rouge_tokens(text)] for text in generated]
    ref = [[ids.setdefault(t, len(ids)) for t in rouge_tokens(text)] for text in references]
    scores = np.zeros(len(gen))
    if not gen or not ref or threshold > 1:
        return scores.tolist()
    gen_index, ref_index = _candidate_pairs(gen, ref, threshold)
    order = np.argsort(gen_index, kind="stable")
    gen_index, ref_index = gen_index[order], ref_index[order]
    lcs = _lcs_lengths(gen, ref, gen_index, ref_index)
    gen_len = np.array([len(d) for d in gen], dtype=np.int64)
    ref_len = np.array([len(d) for d in ref], dtype=np.int64)
    # Same float64 division as rouge_l_f (2L / total, correctly rounded), so scores agree bit for bit.
    np.maximum.at(scores, gen_index, 2 * lcs / (gen_len[gen_index] + ref_len[ref_index]))
    return scores.tolist()


def leaked(generated: Sequence[str], references: Sequence[str], threshold: float = 0.7) -> list[bool]:
    """True for every generated post whose best ROUGE-L F against the references exceeds `threshold`.

    Strictly greater, as the paper words it ("exceeds 0.7"); exact by `leakage`'s contract, since any
    score at or above the threshold is the true maximum.
    """
    return [score > threshold for score in leakage(generated, references, threshold)]
