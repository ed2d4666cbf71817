"""``services.open_model`` as the server and the API call it: a real load of the real
gemma model through the GGUF format's registration, with the context asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from localchat import services
from localchat.errors import ModelNotFound
from localchat.types import Message, SamplingParams

pytestmark = pytest.mark.llama


def test_open_with_n_ctx_says_its_format_and_streams(gemma_path: Path) -> None:
    notes: list[str] = []
    with services.open_model(str(gemma_path), local=True, n_ctx=512, notice=notes.append) as model:
        assert (model.model_format, model.n_ctx, model.path) == ("gguf", 512, gemma_path)
        assert model.plan is not None and model.plan_summary["n_ctx"] == 512
        assert model.engine_label == "in-process llama.cpp"
        sampling = SamplingParams(temperature=0.0, max_tokens=8, seed=1)
        text = "".join(model.stream_chat([Message("user", "The sky is")], sampling))
        assert text and model.last_stats.completion_tokens <= 8
    assert notes == []
    (listed,) = [m for m in services.installed_models() if m.source == "path"]
    assert listed.path.resolve() == gemma_path.resolve() and listed.last_used is not None


def test_open_of_a_catalog_quant_it_does_not_have_fails_before_loading() -> None:
    with pytest.raises(ModelNotFound, match="gemma-3-270m has no quant Q8_0") as caught:
        services.open_model("gemma-3-270m:Q8_0", local=True)
    assert caught.value.hint == "it has Q4_K_M"
