"""Exception and warning hierarchy.

Every error says what was expected, what was found and what to do. Messages never contain a raw
telephone number or key material: callers pass locations (file, line, field) and *kinds* of values,
not the values themselves, unless the value is known not to be personal data.

All exceptions pickle across process boundaries (Dask workers), because they keep their
constructor arguments in ``args``.
"""

from __future__ import annotations


class CemkitError(Exception):
    """Base class of every error cemkit raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        full = message if hint is None else f"{message} — {hint}"
        super().__init__(full)
        self.message = message
        self.hint = hint

    def __reduce__(self):
        """Rebuild from the original arguments (keyword-only args survive pickling)."""
        return (_rebuild, (type(self), self.message, self.hint))


def _rebuild(cls: type[CemkitError], message: str, hint: str | None) -> CemkitError:
    err = cls.__new__(cls)
    CemkitError.__init__(err, message, hint=hint)
    return err


class SchemaError(CemkitError):
    """A frame does not match the canonical record schema."""


class InputError(CemkitError):
    """An input file cannot be read at all (missing, unreadable, wrong format)."""


class FormatError(CemkitError):
    """An unknown source format, or options that do not fit the format."""


class PolicyError(CemkitError):
    """A privacy policy is invalid; the message names the rule and the fix."""


class KeyMaterialError(CemkitError):
    """A pseudonymization key is missing or unusable (the key itself is never shown)."""


class ModelError(CemkitError):
    """A service model (node groups, customers) is invalid."""


class OutputError(CemkitError):
    """An output location cannot be written; inputs are left untouched."""


class CemkitWarning(UserWarning):
    """Warnings cemkit emits on purpose (tests turn them into errors)."""


class ResultWarning(CemkitWarning):
    """A result may be incomplete: inputs or settings do not fit (records in no group, ...)."""


class PrivacyWarning(CemkitWarning):
    """Something may expose personal data (e.g. unprotected numbers displayed)."""
