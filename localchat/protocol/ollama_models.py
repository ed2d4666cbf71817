"""Ollama's model-management API as pydantic models: ``/api/tags``, ``/api/ps``,
``/api/show``, ``/api/pull`` progress lines and ``/api/version``."""

from __future__ import annotations

from pydantic import Field

from localchat.protocol.base import ModelName, ReplyModel, RequestModel, is_none


class ModelRequest(RequestModel):
    """``/api/show`` and ``/api/pull``: a model name."""

    model: ModelName = ""
    name: ModelName = ""  # older clients
    stream: bool = True  # pull: progress lines, or one reply at the end
    insecure: bool | None = None  # pull: harmless (the hub is always HTTPS)
    verbose: bool | None = None  # show: harmless (model_info is always short)

    def model_name(self) -> str:
        return self.model or self.name


class ModelDetails(ReplyModel):
    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] = Field(default_factory=list)
    parameter_size: str = ""
    quantization_level: str = ""


class ListedModel(ReplyModel):
    name: str
    model: str
    modified_at: str
    size: int = 0
    digest: str = ""
    details: ModelDetails = Field(default_factory=ModelDetails)


class TagsReply(ReplyModel):
    models: list[ListedModel] = Field(default_factory=list)


class PoolStatus(ReplyModel):
    """localchat's own part of ``/api/ps``: how the loaded model is being used."""

    engine: str = ""
    slots: int = 1  # replies it generates at once
    busy: int = 0  # streams generating now
    waiting: int = 0  # requests waiting for a slot
    requests: int = 0
    cancelled: int = 0


class RunningModel(ReplyModel):
    name: str
    model: str
    size: int = 0
    digest: str = ""
    details: ModelDetails = Field(default_factory=ModelDetails)
    expires_at: str = ""
    size_vram: int = 0
    context_length: int = 0
    localchat: PoolStatus | None = Field(default=None, exclude_if=is_none)


class PsReply(ReplyModel):
    models: list[RunningModel] = Field(default_factory=list)


class ShowReply(ReplyModel):
    modelfile: str = ""
    parameters: str = ""
    template: str = ""
    license: str = ""
    details: ModelDetails = Field(default_factory=ModelDetails)
    model_info: dict[str, str | bool | int | float] = Field(default_factory=dict)
    capabilities: list[str] = Field(default_factory=list)
    modified_at: str = ""


class PullProgress(ReplyModel):
    """One NDJSON line of ``/api/pull``: a status (with byte counts while downloading),
    ``{"status": "success"}`` at the end, or ``{"error": ...}``."""

    status: str | None = Field(default=None, exclude_if=is_none)
    digest: str | None = Field(default=None, exclude_if=is_none)
    total: int | None = Field(default=None, exclude_if=is_none)
    completed: int | None = Field(default=None, exclude_if=is_none)
    error: str | None = Field(default=None, exclude_if=is_none)


class VersionReply(ReplyModel):
    version: str
    localchat: str | None = Field(default=None, exclude_if=is_none)  # how clients know it is us
