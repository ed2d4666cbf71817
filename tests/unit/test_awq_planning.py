"""AWQ without torch: safetensors headers, checkpoint checks, the legacy key map, the
planner's AWQ arithmetic and format choice, and the tokenizer metadata the chat format
is resolved from.  Files are written byte by byte here (the format is 8 bytes + JSON)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from localchat.catalog import load_catalog
from localchat.engine.awq.keys import check_keys, legacy_key_map
from localchat.errors import CorruptModelFile
from localchat.formats import resolve_format
from localchat.gguf.source import BytesSource
from localchat.planner.awq import AwqFigures, choose_format, plan_awq, weights_bytes
from localchat.planner.plan import PlanRequest
from localchat.planner.profiles import what_if_hardware
from localchat.safetensors import read_checkpoint, read_header
from localchat.safetensors.header import DTYPE_BYTES
from localchat.safetensors.metadata import hf_metadata
from localchat.types import Message

CONFIG = {
    "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "vocab_size": 512, "max_position_embeddings": 2048, "bos_token_id": 1, "eos_token_id": 2,
    "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128},
}  # fmt: skip


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    table, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        table[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    header = json.dumps(table).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * offset


def with_header(table: dict) -> bytes:
    header = json.dumps(table).encode()
    return struct.pack("<Q", len(header)) + header + b"\0" * 8


TENSORS = {
    "model.embed_tokens.weight": ("F16", [512, 256]),
    "model.layers.0.mlp.down_proj.qweight": ("I32", [512, 32]),
    "model.layers.0.mlp.down_proj.scales": ("F16", [4, 256]),
    "lm_head.weight": ("F32", [512, 256]),
}


def write_checkpoint(folder: Path, shards: int = 1) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    names = list(TENSORS)
    if shards == 1:
        (folder / "model.safetensors").write_bytes(safetensors_bytes(TENSORS))
        return folder
    weight_map = {}
    for i in range(shards):
        shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: TENSORS[n] for n in names[i::shards]}
        (folder / shard).write_bytes(safetensors_bytes(part))
        weight_map.update(dict.fromkeys(part, shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


def test_header_sizes_and_weights_as_fp16(tmp_path: Path) -> None:
    info = read_checkpoint(write_checkpoint(tmp_path / "ckpt", shards=2))
    assert info.quant_method == "awq" and len(info.shards) == 2
    assert info.weights_bytes == 512 * 256 * 2 + 512 * 32 * 4 + 4 * 256 * 2 + 512 * 256 * 4
    # the F32 lm_head runs in fp16: counted at 2 bytes a value
    assert weights_bytes(info) == info.weights_bytes - 512 * 256 * 2


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x05\x00", "too short"),
        (struct.pack("<Q", 1 << 40), "header length"),
        (struct.pack("<Q", 10) + b"{not json}", "not JSON"),
        (safetensors_bytes({"a": ("F16", [4])})[:-2], "truncated"),
        (with_header({"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 6]}}), "expected 8"),
    ],
)
def test_malformed_headers_are_corrupt(data: bytes, words: str) -> None:
    with pytest.raises(CorruptModelFile, match=words):
        read_header(BytesSource(data, "x.safetensors"))


def test_missing_shard_and_bad_config_are_corrupt(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path / "ckpt", shards=2)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CorruptModelFile, match=r"model-00002-of-00002\.safetensors is missing"):
        read_checkpoint(folder)
    other = write_checkpoint(tmp_path / "other")
    (other / "config.json").write_text("{")
    with pytest.raises(CorruptModelFile, match=r"config\.json is not valid JSON"):
        read_checkpoint(other)


def test_legacy_mixtral_key_map() -> None:
    names = [
        "model.layers.3.block_sparse_moe.experts.7.w1.qweight",
        "model.layers.3.block_sparse_moe.experts.7.w2.scales",
        "model.layers.3.block_sparse_moe.experts.7.w3.qzeros",
        "model.layers.3.block_sparse_moe.gate.weight",
        "model.layers.3.self_attn.q_proj.qweight",
    ]
    assert legacy_key_map(names) == {
        names[0]: "model.layers.3.mlp.experts.7.gate_proj.qweight",
        names[1]: "model.layers.3.mlp.experts.7.down_proj.scales",
        names[2]: "model.layers.3.mlp.experts.7.up_proj.qzeros",
        names[3]: "model.layers.3.mlp.gate.weight",
    }


def test_key_check_reports_missing_and_unexpected() -> None:
    model = {"a.qweight", "lm_head.weight", "rotary_emb.inv_freq", "b.scales"}
    result = check_keys(model, {"a.qweight", "embed.weight", "c.w1.qweight"},
                        tied={"lm_head.weight": "embed.weight"})  # fmt: skip
    assert result.missing == ("b.scales",)
    assert result.unexpected == ("c.w1.qweight", "embed.weight")
    assert "1 missing (b.scales)" in result.summary()


def huozi3_figures() -> AwqFigures:
    entry = load_catalog().get("huozi3")
    assert entry is not None and entry.awq is not None and entry.arch is not None
    return AwqFigures.from_catalog("huozi3:AWQ", entry.arch, entry.awq.size_bytes)


def test_awq_plan_wants_one_gpu_whole() -> None:
    figures = huozi3_figures()
    small = plan_awq(figures, what_if_hardware(vram=["24GiB"], ram="24GiB"))
    assert small.torch_device == "cpu" and not small.fits  # neither the GPU nor 24 GiB RAM
    assert any(r.startswith("AWQ: needs") and "one GPU (GPU0)" in r for r in small.reasons)
    big = plan_awq(figures, what_if_hardware(vram=["48GiB"], ram="64GiB"))
    assert big.fits and big.torch_device == "cuda:0" and big.format == "awq"
    assert big.devices[0].weights_bytes == figures.weights_bytes
    # a fixed context is kept, and the KV cache grows with it
    longer = plan_awq(figures, what_if_hardware(vram=["48GiB"]), PlanRequest(n_ctx=16384))
    assert longer.n_ctx == 16384 and longer.devices[0].kv_bytes == 2 * big.devices[0].kv_bytes
    apple = plan_awq(figures, what_if_hardware(apple="64GiB"))
    assert apple.torch_device == "mps" and apple.fits


def test_format_choice_says_why() -> None:
    figures = huozi3_figures()
    gpu24 = plan_awq(figures, what_if_hardware(vram=["24GiB"], ram="64GiB"))
    fmt, why = choose_format(gpu24, None, backend_installed=True)
    assert fmt == "gguf" and "needs" in why and "GGUF instead" in why
    gpu48 = plan_awq(figures, what_if_hardware(vram=["48GiB"]))
    assert choose_format(gpu48, None, backend_installed=True)[0] == "awq"
    fmt, why = choose_format(gpu48, None, backend_installed=False)
    assert fmt == "gguf" and 'pip install "localchat[awq]"' in why
    cpu = plan_awq(figures, what_if_hardware(ram="128GiB", cpu_only=True))
    assert cpu.fits and choose_format(cpu, None, backend_installed=True)[0] == "gguf"


def test_prompt_bytes_match_the_gguf_path(tmp_path: Path) -> None:
    """The folder's tokenizer facts, in GGUF metadata keys, resolve to the same format
    and so the same prompt as a GGUF carrying the same template and tokens."""
    folder = write_checkpoint(tmp_path / "ckpt")
    template = (
        "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}</s>{% endfor %}"
    )
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": template, "bos_token": "<s>", "eos_token": {"content": "</s>"}}
    ))  # fmt: skip
    metadata = hf_metadata(folder, CONFIG)
    gguf_metadata = {
        "general.architecture": "llama", "general.name": "ckpt",
        "tokenizer.chat_template": template, "tokenizer.bos_token": "<s>",
        "tokenizer.eos_token": "</s>", "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
    }  # fmt: skip
    messages = [Message("user", "hi")]
    awq_format, gguf_format = resolve_format(None, metadata), resolve_format(None, gguf_metadata)
    assert awq_format.prompt(messages) == gguf_format.prompt(messages)
    assert awq_format.prompt(messages).text.startswith("<s>[user] hi</s>")


def test_plan_reference_picks_a_format_and_says_why() -> None:
    """huozi3 has GGUF quants and an AWQ repo; offline, both are planned from models.toml."""
    from localchat.planner import plan_reference
    from localchat.planner.awq import awq_backend_installed
    from localchat.reference import parse_model_ref

    catalog = load_catalog()
    ref = parse_model_ref("huozi3", catalog)
    one_gpu_48 = plan_reference(ref, what_if_hardware(vram=["48GiB"], ram="64GiB"), offline=True)
    assert one_gpu_48.format == ("awq" if awq_backend_installed() else "gguf")
    assert "AWQ: fits one GPU (GPU0) whole" in one_gpu_48.reasons[-1]
    one_gpu_24 = plan_reference(ref, what_if_hardware(vram=["24GiB"], ram="64GiB"), offline=True)
    assert one_gpu_24.format == "gguf" and one_gpu_24.quant != "AWQ"
    assert one_gpu_24.reasons[-1].startswith("AWQ: needs") and "GGUF with" in one_gpu_24.reasons[-1]
    asked = parse_model_ref("huozi3:AWQ", catalog)
    awq_24 = plan_reference(asked, what_if_hardware(vram=["24GiB"], ram="64GiB"), offline=True)
    assert awq_24.format == "awq" and awq_24.torch_device == "cpu"
    assert any("GGUF with" in r and r.endswith("instead") for r in awq_24.reasons)
