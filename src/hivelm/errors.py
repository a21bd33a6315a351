"""The base error of bad user input: the CLI prints its message (which names the file, key, row or
community) and exits non-zero, without a traceback."""


class HiveError(ValueError):
    """Bad input or configuration; the message says where."""


def redact(text: str) -> str:
    """`text` with every URI password (scheme://user:PASSWORD@host, and ?password=/token= query values) shown
    as ***: the one redaction for whatever prints or logs a tracking URI (MLFLOW_TRACKING_URI may hold a
    database or proxy password), the CLI's error line included."""
    import re

    text = re.sub(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@", r"\1:***@", text, flags=re.IGNORECASE)
    return re.sub(r"([?&;](?:password|passwd|pwd|token|access_token)=)[^&;\s]*", r"\1***", text,
                  flags=re.IGNORECASE)
