"""Errors a user can cause and fix. Front ends print their message as one line, no traceback."""

from __future__ import annotations


class PrunelabError(Exception):
    """An expected failure: the message says what went wrong and how to fix it."""


class ConfigError(PrunelabError):
    """A configuration value outside what is allowed; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DataError(PrunelabError):
    """The dataset is missing, corrupt or in an unexpected shape."""


class CheckpointError(PrunelabError):
    """A checkpoint file cannot be read or does not fit the model."""


class ModelMismatch(CheckpointError):
    """The checkpoint holds another registry architecture than the one asked for: the choice of
    model is the input to fix (`suggested` names the one the file looks like)."""

    field = "model"

    def __init__(self, message: str, suggested: str) -> None:
        super().__init__(message)
        self.suggested = suggested
