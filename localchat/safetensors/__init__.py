"""Safetensors checkpoints (AWQ): shard headers and config, local or by HTTP Range.

The counterpart of ``localchat.gguf`` for Hugging Face folders: nothing here reads
tensor data or imports torch.
"""

from localchat.safetensors.checkpoint import (
    CheckpointInfo,
    parse_config,
    quant_method_of,
    read_checkpoint,
    read_config,
    shard_names,
)
from localchat.safetensors.header import SafetensorsHeader, TensorEntry, read_header

__all__ = [
    "CheckpointInfo",
    "SafetensorsHeader",
    "TensorEntry",
    "parse_config",
    "quant_method_of",
    "read_checkpoint",
    "read_config",
    "read_header",
    "shard_names",
]
