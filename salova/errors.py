"""The project's own exception types. Every user-facing failure is one of these,
with a message that names the file, record and field involved."""


class SalovaError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(SalovaError, ValueError):
    """A configuration, preset or recipe is invalid."""


class CheckpointError(SalovaError):
    """A checkpoint is missing, truncated or does not match the configuration."""


class VideoError(SalovaError):
    """A video cannot be opened, decoded or segmented."""


class RecordError(SalovaError, ValueError):
    """A data record (training record, question file row) is malformed."""
