"""The base error of bad user input: the CLI prints its message (which names the file, key, row or
community) and exits non-zero, without a traceback."""

from __future__ import annotations

import errno
from pathlib import Path


class HiveError(ValueError):
    """Bad input or configuration; the message says where."""


class ArtifactError(HiveError):
    """A pipeline artifact (a model, an adapter, a report) that is missing or unreadable. The CLI adds the
    stage that rewrites `path` (hivelm.contracts.rerun_hint): library modules stay independent of the stage
    table, so editing it does not make every stage stale in dvc.yaml."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        super().__init__(f"{path} {problem}")


STORAGE = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied"}
# sqlite reports these as OperationalError text, not errno (https://www.sqlite.org/rescode.html: SQLITE_FULL,
# SQLITE_READONLY); MLflow's store wraps them in SQLAlchemy and MlflowException ("Query-invoked autoflush").
SQLITE = {"database or disk is full": "the disk is full", "readonly database": "the database is read-only"}


def storage_cause(error: BaseException) -> str | None:
    """One line for a full disk, a read-only file system or a denied write anywhere in `error`'s chain
    (__cause__ / __context__: MLflow and SQLAlchemy wrap the OSError), else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in STORAGE:
            where = error.filename or ""
            return f"{where}: {STORAGE[error.errno]}" if where else STORAGE[error.errno]
        text = str(error)
        for needle, what in SQLITE.items():
            if needle in text and type(error).__name__ == "OperationalError":
                return f"the MLflow store: {what}"
        error = error.__cause__ or error.__context__
    return None


def redact(text: str) -> str:
    """`text` with every URI password (scheme://user:PASSWORD@host, and ?password=/token= query values) shown
    as ***: the one redaction for whatever prints or logs a tracking URI (MLFLOW_TRACKING_URI may hold a
    database or proxy password), the CLI's error line included."""
    import re

    text = re.sub(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@", r"\1:***@", text, flags=re.IGNORECASE)
    return re.sub(r"([?&;](?:password|passwd|pwd|token|access_token)=)[^&;\s]*", r"\1***", text,
                  flags=re.IGNORECASE)
