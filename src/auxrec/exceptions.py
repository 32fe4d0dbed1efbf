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


class OutputFolderError(DataError, RunError):
    """Writing an output folder would lose something: an input, or a folder auxrec did not write.

    It is both a `DataError` and a `RunError`, the errors `prepare` and `train` raised for
    a non-empty output folder before one check served both.
    """


class DamagedFile(RunError):
    """A file auxrec wrote earlier cannot be read back (truncated, corrupted, edited)."""


class TrainingDiverged(RunError):
    """The training loss became NaN or infinite; the run is stopped before it looks finished."""


class CheckpointError(RunError):
    """A checkpoint could not be written (a full disk); the previous one is kept."""
