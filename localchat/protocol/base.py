"""What both APIs share: the two kinds of model, the sampling fields with their ranges, and
the stop-string rule.  Each range is stated here once (the numeric limits settings.toml
shares come from ``localchat.types``); the server and the remote-engine client both
validate through these types, so the two sides cannot disagree.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from localchat.errors import InvalidRequest
from localchat.types import SEED_MAX, TEMPERATURE_MAX, TOP_P_MAX, SamplingParams

# The model name that means "the server's default model" (settings.toml's default_model,
# else the catalog's, with the offline fallback): what ``localchat ask`` sends to a running
# localchat server when no -m was given.  An empty or missing name is a 400, as in OpenAI.
SERVER_DEFAULT_MODEL = "default"
MAX_MODEL_NAME_CHARS = 200
MAX_STOP_STRINGS = 8
MAX_STOP_CHARS = 256
MIN_NUM_CTX = 256
MAX_NUM_CTX = 2**20


JsonObject = dict[str, JsonValue]  # a JSON object as sent (a schema, metadata)


class RequestModel(BaseModel):
    """A request body: every documented field is modelled, so an unknown one is a 400
    naming it, never silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def check_supported(self) -> None:
        """Raise ``InvalidRequest`` naming the first field this server parses but refuses
        (``protocol.refusals``); a request with nothing to refuse passes."""


class ReplyModel(BaseModel):
    """A response body or stream chunk: fields other servers add are ignored when read."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


Temperature = Annotated[float, Field(ge=0, le=TEMPERATURE_MAX, allow_inf_nan=False)]
TopP = Annotated[float, Field(gt=0, le=TOP_P_MAX, allow_inf_nan=False)]
TopK = Annotated[int, Field(ge=0)]
MinP = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
RepeatPenalty = Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)]
Penalty = Annotated[float, Field(ge=-2, le=2, allow_inf_nan=False)]  # presence, frequency
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
NumCtx = Annotated[int, Field(ge=MIN_NUM_CTX, le=MAX_NUM_CTX)]
ModelName = Annotated[str, Field(max_length=MAX_MODEL_NAME_CHARS)]


def _checked_stop(stop: str | list[str] | None) -> str | list[str] | None:
    """The one stop-string rule: at most ``MAX_STOP_STRINGS`` strings of at most
    ``MAX_STOP_CHARS`` characters (the client sends all of them: never truncated)."""
    items = [stop] if isinstance(stop, str) else list(stop or [])
    if len(items) > MAX_STOP_STRINGS or any(len(text) > MAX_STOP_CHARS for text in items):
        raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings of {MAX_STOP_CHARS} characters")
    return stop


Stop = Annotated[str | list[str] | None, AfterValidator(_checked_stop)]


def stop_strings(stop: str | list[str] | None) -> tuple[str, ...]:
    """A validated ``Stop`` as the engine takes it: a tuple, empty strings dropped."""
    items = [stop] if isinstance(stop, str) else list(stop or [])
    return tuple(text for text in items if text)


def required_model_name(model: str, field: str = "model") -> str:
    """The request's model name; empty or missing is a 400 naming the field."""
    name = model.strip()
    if not name:
        raise InvalidRequest(
            f"{field}: a model name is required",
            hint=f'name one from /v1/models or /api/tags, or "{SERVER_DEFAULT_MODEL}" for '
            "the server's default",
        )
    return name


def with_overrides(defaults: SamplingParams, **given: float | int | None) -> SamplingParams:
    """The model's sampling with the request's values over it (None: not given)."""
    changes: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    return replace(defaults, **changes)


def is_none(value: object) -> bool:
    """For ``Field(exclude_if=is_none)``: an optional reply field left out when unset."""
    return value is None
