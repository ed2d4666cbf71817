"""The exceptions localchat raises, each with the exit code and a hint the CLI shows.

Every error a user can cause or fix is one of these.  The CLI maps them to a
one-line message and an exit code in exactly one place (``localchat.cli.main``);
library users catch them by class.
"""

from __future__ import annotations


class ExitCode:
    """Process exit codes, documented in ``localchat --help`` and README."""

    OK = 0
    ERROR = 1
    USAGE = 2
    MODEL_NOT_FOUND = 3
    DOES_NOT_FIT = 4
    DOWNLOAD_FAILED = 5
    CORRUPT_MODEL_FILE = 6
    ENGINE_FAILED = 7
    INTERRUPTED = 130


class LocalchatError(Exception):
    """Base class: a problem the user can act on.

    ``hint`` says what to do about it; the CLI prints ``error: <message> (<hint>)``.
    """

    exit_code: int = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class ConfigError(LocalchatError):
    """A malformed models.toml, settings file or option value."""

    exit_code = ExitCode.USAGE


class ModelNotFound(LocalchatError):
    """The MODEL named is not in the catalog, not on disk, or not on the hub."""

    exit_code = ExitCode.MODEL_NOT_FOUND


class DoesNotFit(LocalchatError):
    """No quant/context/offload combination fits this machine's memory."""

    exit_code = ExitCode.DOES_NOT_FIT


class DownloadFailed(LocalchatError):
    """The hub could not be reached, refused us, or sent bad bytes."""

    exit_code = ExitCode.DOWNLOAD_FAILED


class AuthRequired(DownloadFailed):
    """A gated or private repo: the user must accept terms and log in."""


class NotEnoughDisk(DownloadFailed):
    """The download would not fit on the disk that holds the cache."""


class CorruptModelFile(LocalchatError):
    """A model file that is truncated, malformed or fails its checksum."""

    exit_code = ExitCode.CORRUPT_MODEL_FILE


class EngineError(LocalchatError):
    """The inference backend failed to load or run a model."""

    exit_code = ExitCode.ENGINE_FAILED


class TemplateError(LocalchatError):
    """A model's chat template that cannot be compiled or rendered."""

    exit_code = ExitCode.CORRUPT_MODEL_FILE


class UnsafeTemplateError(TemplateError):
    """A chat template that reaches for Python internals or files, or exhausts time or memory."""


class TemplateRejected(TemplateError):
    """The model's chat template refused this conversation (its ``raise_exception``)."""

    exit_code = ExitCode.USAGE


class BackendUnavailable(EngineError):
    """The backend library (llama-cpp-python, transformers) is not installed or broken."""


class ContextOverflow(EngineError):
    """A prompt longer than the model's context (per slot): refused, never truncated."""


class WorkerUnavailable(EngineError):
    """An RPC worker (``--rpc host:port``) is unreachable, busy, incompatible or was lost."""


class HistoryError(LocalchatError):
    """The history database cannot be opened (corrupt, or written by a newer localchat)."""


class InvalidRequest(ConfigError):
    """A malformed request to ``localchat serve``: bad JSON, a bad field, a path as a model."""


class RequestTooLarge(InvalidRequest):
    """A request body or prompt over ``localchat serve``'s size limits."""


class Unauthorized(LocalchatError):
    """A request to ``localchat serve`` (or a remote engine) without the right API key."""

    exit_code = ExitCode.ENGINE_FAILED


class ServerBusy(LocalchatError):
    """``localchat serve`` cannot take the request now (queue full, memory held); retry later."""

    exit_code = ExitCode.ENGINE_FAILED


class RemoteEngineError(EngineError):
    """A remote OpenAI-compatible engine (``--engine URL``, a running server) failed."""


class Interrupted(LocalchatError):
    """The user pressed Ctrl-C."""

    exit_code = ExitCode.INTERRUPTED
