"""The base error of bad user input: the CLI prints its message (which names the file, key, row or
community) and exits non-zero, without a traceback."""


class HiveError(ValueError):
    """Bad input or configuration; the message says where."""
