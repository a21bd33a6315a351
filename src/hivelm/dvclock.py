"""dvc.lock stays readable whatever interrupts `hivelm run`.

DVC rewrites dvc.lock in place after each stage (dvc/dvcfile.py: modify_yaml opens it for writing, then
dumps), so an interrupt or a kill inside that write leaves it truncated or empty, and every later `dvc status`
or `dvc repro` fails ("dvc.lock validation failed") until it is restored by hand. `hivelm run` therefore keeps
the last readable dvc.lock it saw (before DVC starts, then each version that stayed unchanged for a poll) in
DVC's scratch folder, and puts it back when DVC ends, however it ends, and at the next start (after a kill),
whenever dvc.lock is unreadable. The stages recorded only in the lost write then run again, nothing worse.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DVC_LOCK = Path("dvc.lock")
LAST_GOOD = Path(".dvc/tmp/hivelm-dvc.lock.last-good")  # .dvc/tmp is git-ignored by DVC's own .dvc/.gitignore


def readable(path: Path = DVC_LOCK) -> bool:
    """`path` loads as DVC loads dvc.lock (dvc/utils/strictyaml.py: ruamel's safe loader, then DVC's lockfile
    schema), without DVC's error report, whose formatting takes a good part of a second. An absent file is
    readable (DVC starts without one)."""
    from dvc.schema import COMPILED_LOCKFILE_SCHEMA
    from ruamel.yaml import YAML, YAMLError
    from voluptuous import Invalid

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return True
    except (UnicodeDecodeError, OSError):
        return False
    try:
        COMPILED_LOCKFILE_SCHEMA(YAML(typ="safe").load(text) or {})
    except (YAMLError, Invalid):
        return False
    return True


def _replace(target: Path, content: bytes) -> None:
    """Write `content` over `target` in one rename: a reader sees the old file or the new, never a part."""
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, target)


class LockGuard:
    """`start()` before DVC runs, `poll()` while it runs (a read of one small file), `finish()` after it
    ended."""

    def __init__(self, lock: Path = DVC_LOCK, copy: Path = LAST_GOOD):
        self.lock, self.copy = lock, copy
        self._seen: bytes | None = None  # dvc.lock at the last poll
        self._kept: bytes | None = None  # the copy's content
        self._absent = False  # no dvc.lock when DVC started

    def _read(self) -> bytes | None:
        try:
            return self.lock.read_bytes()
        except FileNotFoundError:
            return None

    def _keep(self, content: bytes) -> None:
        """Keep `content` if DVC reads it (checked on the copy itself, so what is kept is what was checked)."""
        if not self.copy.parent.parent.is_dir():  # no .dvc here: not a DVC project root, DVC will say so
            return
        self.copy.parent.mkdir(exist_ok=True)
        candidate = self.copy.with_name(f"{self.copy.name}.candidate")
        candidate.write_bytes(content)
        if readable(candidate):
            os.replace(candidate, self.copy)
            self._kept = content
        else:
            candidate.unlink()

    def start(self) -> None:
        self.restore("a run before this one was killed while DVC wrote it")
        self._seen = self._read()
        self._absent = self._seen is None
        if self._absent:
            self.copy.unlink(missing_ok=True)  # no dvc.lock is the last good state
        else:
            self._keep(self._seen)

    def poll(self) -> None:
        """Keep a new version once it is stable (the same at two polls): DVC writes it in one go, so a file
        that did not change for a poll interval is complete."""
        content = self._read()
        if content is not None and content == self._seen and content != self._kept:
            self._keep(content)
        self._seen = content

    def finish(self) -> None:
        self.restore("DVC was interrupted while it wrote it")

    def restore(self, why: str) -> bool:
        if readable(self.lock):
            return False
        if self.copy.is_file():
            _replace(self.lock, self.copy.read_bytes())
            log.warning("%s was left unreadable (%s): restored its last good copy; stages recorded after that "
                        "copy will run again", self.lock, why)
        elif self._absent:  # this run started without one: none is the last good state
            self.lock.unlink()
            log.warning("%s was left unreadable (%s): removed it, as there was none before", self.lock, why)
        else:
            log.warning("%s is unreadable (%s) and no good copy was kept: `dvc repro` will refuse it; "
                        "restore it from git (git checkout %s)", self.lock, why, self.lock)
        return True
