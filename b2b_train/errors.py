"""One exception type for every user-facing failure.

Command-line entry points catch :class:`B2BError` and print its message as one line with a non-zero
exit; anything else is a bug and keeps its traceback.
"""


class B2BError(Exception):
    """A failure the user can act on (bad input, wrong checkpoint, missing data...)."""


class ConfigError(B2BError):
    """A config file or override is malformed: unknown key, wrong type, unknown preset."""


class CheckpointError(B2BError):
    """A weight file is missing, truncated, of the wrong network, or unsafe to load."""


class DataError(B2BError):
    """Input clips, images or folders are missing, corrupt or unusable."""
