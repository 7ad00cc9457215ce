"""Typed errors raised by ``kb_index`` so callers can tell a missing index from a bad question."""

from __future__ import annotations


class KBError(Exception):
    """Base class of every error raised on purpose by ``kb_index``."""


class KBUnavailable(KBError):
    """The index or the model cannot be used; the message names the command that fixes it."""


class KBContentError(KBError):
    """An article file is malformed; the message names the file and the article."""


class ModelProvisionError(KBError):
    """The offline default model could not be built from the packaged weights."""
