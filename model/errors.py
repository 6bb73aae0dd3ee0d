"""Errors the model pipeline reports to its user as a message and a non-zero exit code."""

from __future__ import annotations


class PipelineError(Exception):
    """A problem the user can fix (bad input file, failed quality gate, ...).

    The CLI prints the message without a traceback and exits with ``exit_code``.
    """

    exit_code = 2


class DataError(PipelineError):
    """Training or evaluation data is missing, malformed or not numeric."""


class QualityGateError(PipelineError):
    """A trained model misses the quality gate and must not be exported."""

    exit_code = 3


class ExportError(PipelineError):
    """An export could not be written (version exists, bad base path, ...)."""
