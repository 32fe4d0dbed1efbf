"""The package's exceptions.

`AuxrecError` and its subclasses mean "the user asked for something that cannot be
done" (missing file, wrong column, unknown name). The CLI prints their message as one
line and exits non-zero; any other exception is a bug and keeps its traceback.
"""


class AuxrecError(Exception):
    """A user-facing error: the message alone must tell the user what to fix."""


class DataError(AuxrecError):
    """Input data is missing, malformed or inconsistent."""


class ConfigError(AuxrecError):
    """A configuration value or name is invalid."""


class FolderBusy(AuxrecError):
    """Another process is working in a folder that one job must have to itself."""


class RunError(AuxrecError):
    """A run folder is missing, incomplete or inconsistent."""


class ResumeMismatch(RunError):
    """An interrupted run cannot be resumed: it was started with other settings."""
