"""The ForgeAI error tree.

Every error ForgeAI itself raises carries a stable code (``FORGEAI-Exxx``), a one-line message
naming what failed and which check refused it, and, where one helps, a hint saying what to do.
Codes never change meaning; new failures get new codes.
"""

from __future__ import annotations


class ForgeAIError(Exception):
    """Root of every error ForgeAI raises on purpose."""

    CODE = "FORGEAI-E100"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def code(self) -> str:
        return self.CODE

    def one_line(self) -> str:
        """The error as printed on a terminal: code, message and hint on one line."""
        text = f"{self.code}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class UsageError(ForgeAIError):
    """A command-line option or argument is invalid."""

    CODE = "FORGEAI-E101"


class UnknownLanguageError(ForgeAIError):
    """No installed executor handles the requested language or file extension."""

    CODE = "FORGEAI-E102"


class SourceError(ForgeAIError):
    """The program to run cannot be read: missing, a directory, not text, too large."""

    CODE = "FORGEAI-E103"


class StdinSourceError(ForgeAIError):
    """The file given as the program's standard input cannot be read."""

    CODE = "FORGEAI-E104"


class SandboxUnavailableError(ForgeAIError):
    """No sandbox can be started on this machine (bubblewrap missing or unusable)."""

    CODE = "FORGEAI-E110"


class SandboxSetupError(ForgeAIError):
    """The sandbox refused to start for this run (a mount, namespace or limit failed)."""

    CODE = "FORGEAI-E111"


class ToolchainNotFoundError(ForgeAIError):
    """The compiler or interpreter a language needs is not installed on this machine."""

    CODE = "FORGEAI-E112"


class LimitsError(ForgeAIError):
    """Resource limits are out of range or inconsistent."""

    CODE = "FORGEAI-E113"
