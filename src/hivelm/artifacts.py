"""Artifacts of the stages: strict JSON and JSONL writes, JSON reads, locks, and atomic writes.

Writes go to a temporary path first and are moved into place only when complete, so a failed stage leaves its
previous outputs intact; a stage's outputs are swapped in together (`staged_outputs`), and a killed writer's
half-done swap is rolled back on the next run (`recover`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from hivelm.errors import ArtifactError, HiveError


def read_json(path: str | Path, missing: Any = None) -> Any:
    """An artifact JSON file (a stage's report or metrics), or `missing` when it does not exist; a file that
    does not parse is named in one line (the CLI adds the stage that rewrites it)."""
    path = Path(path)
    if not path.is_file():
        return missing
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ArtifactError(path, f"is unreadable (truncated? {str(err)[:80]})") from None


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write records as strict JSON lines, atomically: a NaN or infinity raises instead of writing a bare
    `NaN`, which is not JSON (a pandas null slipping into a record is a bug to see, not data to ship)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for number, record in enumerate(records, start=1):
            try:
                line = json.dumps(record, ensure_ascii=False, allow_nan=False)
            except ValueError as err:
                raise ValueError(f"{path}: record {number} is not strict JSON ({err}): {record!r:.200}") \
                    from None
            handle.write(line + "\n")


def finite(payload: Any) -> Any:
    """`payload` as strict JSON can hold it: every NaN or infinity becomes null, and an estimate (a mapping
    with a `value`) that held one gains a `reason` (unless it already gives one), so a reader sees why a number
    is missing; other mappings (a profile keyed by label) are not given keys they never had. Stages give
    their own, specific reasons where they can. Python's json would otherwise write a bare `NaN`, which no
    strict parser accepts."""
    if isinstance(payload, float) and not math.isfinite(payload):
        return None
    if isinstance(payload, dict):
        cleaned = {key: finite(value) for key, value in payload.items()}
        undefined = [str(key) for key, value in payload.items() if isinstance(value, float) and not math.isfinite(value)]
        if undefined and "value" in payload and "reason" not in payload:
            cleaned["reason"] = f"undefined (not a finite number): {', '.join(undefined)}"
        return cleaned
    if isinstance(payload, (list, tuple)):
        return [finite(value) for value in payload]
    return payload


SIGNIFICANT_DIGITS = 6
"""Precision of every float `write_json` writes (reports/**/*.json, the stages' stats and metrics). Adapter
weights differ in their last bits between CPU kinds (vectorised kernels sum in different orders), and that noise
reaches the metrics around the sixth or seventh significant digit: rounded at six, most committed numbers are the
same bytes on any machine, and `keep_unchanged` keeps those that cross a rounding boundary."""


NOISE_TOLERANCE = 2e-5
"""Difference within which a rerun's number equals the one already written: relative, and absolute below 1.
Rounding alone cannot keep the bytes: with every adapter weight of the demo moved by one ulp (as training on
another CPU kind moves them), hundreds of numbers of reports/ moved by at most 1e-5 (one rounding step at six
significant digits). A stage's new JSON or JSONL file that equals the file it replaces within this tolerance (the
same keys, strings and integers) leaves the old bytes in place (`keep_unchanged`); a larger change is written.
Sampled answers are discrete: where the noise flips one, the numbers built on it move by more, and are written
(docs/explanation/performance.md, "The same numbers on any CPU")."""


def same_within_noise(old: Any, new: Any, tolerance: float = NOISE_TOLERANCE) -> bool:
    """True when `new` is `old` up to float noise: the same structure, keys, strings, integers and booleans,
    and floats within `tolerance` relative to the larger of their magnitudes and 1 (a loglik gain near zero
    carries the noise of the logliks it is the difference of)."""
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (old, new))
    if not numbers:
        if isinstance(old, dict) and isinstance(new, dict):
            return old.keys() == new.keys() and all(same_within_noise(old[k], new[k], tolerance) for k in old)
        if isinstance(old, list) and isinstance(new, list):
            return len(old) == len(new) and all(same_within_noise(a, b, tolerance) for a, b in zip(old, new))
        return type(old) is type(new) and old == new
    if isinstance(old, int) and isinstance(new, int):
        return old == new
    return abs(old - new) <= tolerance * max(abs(old), abs(new), 1.0)


KEEP_UNCHANGED_MAX_BYTES = 64 * 2**20
"""Larger files are always rewritten: comparing them costs more than the noise it hides is worth."""


def keep_unchanged(final: Path, staged: Path) -> None:
    """Where a staged JSON or JSONL file (or one inside a staged folder) equals the file it replaces within
    NOISE_TOLERANCE, put the old bytes in the staged place, so the swap leaves the file as it was."""
    if staged.is_dir() and final.is_dir():
        for new in staged.rglob("*.json*"):
            keep_unchanged(final / new.relative_to(staged), new)
        return
    if final.suffix not in (".json", ".jsonl") or not (final.is_file() and staged.is_file()) \
            or max(final.stat().st_size, staged.stat().st_size) > KEEP_UNCHANGED_MAX_BYTES:
        return
    try:
        texts = final.read_text(encoding="utf-8"), staged.read_text(encoding="utf-8")
        if texts[0] == texts[1]:
            return
        if final.suffix == ".json":
            old, new = (json.loads(text) for text in texts)
        else:
            old, new = ([json.loads(line) for line in text.splitlines()] for text in texts)
    except ValueError:  # an unreadable old file is replaced
        return
    if same_within_noise(old, new):
        shutil.copyfile(final, staged)


def rounded(payload: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """`payload` with every float rounded to `digits` significant digits (ints, bools and strings as they are)."""
    if isinstance(payload, float):
        return float(f"{payload:.{digits}g}") if math.isfinite(payload) else payload
    if isinstance(payload, dict):
        return {key: rounded(value, digits) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [rounded(value, digits) for value in payload]
    return payload


def write_json(path: str | Path, payload: Any) -> None:
    """Write `payload` as strict JSON (NaN and infinity as null with a reason: `finite`), floats at
    SIGNIFICANT_DIGITS, atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(rounded(finite(payload)), indent=2, ensure_ascii=False, allow_nan=False)
                             + "\n", encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


@contextmanager
def file_lock(path: str | Path, what: str, timeout: float = -1) -> Iterator[None]:
    """Hold the inter-process lock file `path` (flock: the OS drops it when its holder dies, so a killed
    process never leaves a stale lock). With timeout=0 a held lock is refused at once, naming `what`."""
    from filelock import FileLock, Timeout

    path = Path(path)
    lock = FileLock(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=timeout)
    except Timeout:
        raise HiveError(f"{what} is in use by another process (lock {path}); wait for it or stop it") from None
    except OSError as err:  # e.g. a read-only folder
        raise HiveError(f"{path}: cannot create the lock file for {what} ({err.strerror or err})") from None
    try:
        yield
    finally:
        lock.release()


def lock_beside(path: str | Path) -> Path:
    """The lock file of output `path`: beside it (not inside, which DVC would hash) and ignored by git."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def _temp_prefix(path: Path) -> str:
    """Temporary names beside `path` carry the writer's pid, so the next run can tell a dead writer's
    leftovers (a killed stage: `sweep_stale`) from a live one's."""
    return f".{path.name}.{os.getpid()}."


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; move it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_file(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            os.remove(tmp)


def _temp_file(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a plain open() would honour the umask
    return Path(tmp)


def _temp_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; a plain mkdir would honour the umask
    return tmp


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `path`; swap it in for `path` only if the block succeeds.

    Temporary names are unique and the swap holds the output's lock, so two processes writing the same
    output at once cannot break each other's swap: the last one to finish wins.
    """
    path = Path(path)
    tmp = _temp_dir(path)
    try:
        yield tmp
        swap_in([(path, tmp)])
    finally:
        _remove(tmp)


def _journal(final: Path) -> Path:
    return final.parent / f".{final.name}.swap"


def swap_in(pairs: list[tuple[Path, Path]]) -> None:
    """Move each staged path onto its final path, all as one unit: under the locks of every final (taken in
    sorted order, so two writers of overlapping sets cannot deadlock), with a journal beside each final
    written before the first rename and removed after the last. A writer killed in between leaves the
    journal, and whoever next takes those locks (`recover`, or the next swap) restores the previous set:
    a reader never sees posts of one run with the stats of another. rename(2) is atomic per path only,
    hence the journal (the write-ahead idea of databases, undo side)."""
    import secrets

    pairs = sorted((Path(final), Path(staged)) for final, staged in pairs)
    with ExitStack() as locks:
        for final, _ in pairs:
            locks.enter_context(file_lock(lock_beside(final), str(final)))
        for final, _ in pairs:
            _roll_back(_journal(final))
        for final, staged in pairs:  # a rerun's last-bit noise leaves the files as they were
            keep_unchanged(final, staged)
        entries = [{"final": str(final.absolute()), "staged": str(staged.absolute()), "had_old": final.exists(),
                    "backup": str(final.absolute().parent / f"{_temp_prefix(final)}{secrets.token_hex(4)}.old.tmp")}
                   for final, staged in pairs]
        for entry in entries:  # written in place: a torn journal means no rename had begun
            _journal(Path(entry["final"])).write_text(json.dumps(entries), encoding="utf-8")
        for entry in entries:
            if entry["had_old"]:
                os.replace(entry["final"], entry["backup"])
            os.replace(entry["staged"], entry["final"])
        for entry in entries:
            _journal(Path(entry["final"])).unlink()
    for entry in entries:  # the swap is done: what it replaced is garbage now
        _remove(Path(entry["backup"]))


def _roll_back(journal: Path) -> None:
    """Undo the interrupted swap `journal` records (the caller holds the lock of its final)."""
    if not journal.is_file():
        return
    import logging

    try:
        entries = json.loads(journal.read_text(encoding="utf-8"))
    except ValueError:  # cut off while written, before any rename
        entries = []
    logging.getLogger(__name__).warning("a killed writer left its swap of %s half done; previous outputs restored",
                                        ", ".join(entry["final"] for entry in entries))
    for entry in entries:
        final, staged, backup = Path(entry["final"]), Path(entry["staged"]), Path(entry["backup"])
        if backup.exists() or backup.is_symlink():  # the old output was moved aside: the final, if any, is new
            _remove(final)
            os.replace(backup, final)
        elif not entry["had_old"] and not staged.exists():  # no old output, and the new one was moved in
            _remove(final)
        _remove(staged)
    for entry in entries:
        _journal(Path(entry["final"])).unlink(missing_ok=True)
    journal.unlink(missing_ok=True)


def recover(paths: Iterable[str | Path]) -> None:
    """Restore the previous outputs of any swap of `paths` that a killed writer left half done (a no-op
    otherwise): stages call it on their inputs and outputs before reading or writing them."""
    for path in map(Path, paths):
        for output in (path, *path.parents[:-1]):  # a file inside a swapped folder lies in its swap
            if _journal(output).is_file():
                with file_lock(lock_beside(output), str(output)):
                    _roll_back(_journal(output))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def sweep_stale(paths: Iterable[str | Path]) -> list[Path]:
    """Remove the temporary files and folders that dead writers left beside `paths` (a killed base_model left
    155 MB). Only names this module makes (`.NAME.PID.*.tmp`) whose PID is no longer running are touched."""
    import re

    removed = []
    for path in map(Path, paths):
        if not path.parent.is_dir():
            continue
        pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.[^/]*\.tmp")
        for candidate in path.parent.iterdir():
            match = pattern.fullmatch(candidate.name)
            if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
                _remove(candidate)
                removed.append(candidate)
    return removed


class StagedOutputs:
    """A stage's outputs, written to temporary paths and swapped in together (`swap_in`) when the block
    succeeds.

    `dir(final)` stages a whole output folder; `path(final)` gives where to write `final`: inside a staged
    folder when it lies in one, else a staged file of its own."""

    def __init__(self):
        self._dirs, self._files = {}, {}

    def dir(self, final: str | Path) -> Path:
        final = Path(final)
        if final not in self._dirs:
            self._dirs[final] = _temp_dir(final)
        return self._dirs[final]

    def path(self, final: str | Path) -> Path:
        final = Path(final)
        for folder, staged in self._dirs.items():
            if folder == final or folder in final.parents:
                return staged / final.relative_to(folder)
        if final not in self._files:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._files[final] = _temp_file(final)
        return self._files[final]

    def staged(self) -> list[tuple[Path, Path]]:
        return list(self._dirs.items()) + list(self._files.items())


@contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """Stage every output of a stage (data, stats, metrics) and swap them in as one unit only when the whole
    block, MLflow logging included, succeeds: a stage's outputs change together or not at all."""
    out = StagedOutputs()
    try:
        yield out
        swap_in(out.staged())
    finally:
        for _, staged in out.staged():
            _remove(staged)
