"""Pick quant, GPU layers and context that fit this machine, and say why.

``plan_model(infos, hardware, request)`` plans over the quants a repo offers;
``plan_for_file(path, hardware)`` plans one local GGUF (what ``ask`` uses);
``choose_quant(sizes, arch, hardware)`` picks what to download.  The memory
model mirrors llama.cpp's placement and buffers (``planner.memory``).
"""

from localchat.planner.api import choose_quant, plan_for_file, plan_model, plan_reference
from localchat.planner.memory import DeviceMemory, MemoryEstimate, MemorySettings, estimate_memory
from localchat.planner.plan import Plan, PlanRequest
from localchat.planner.profiles import parse_size, profile_table, what_if_hardware

__all__ = [
    "DeviceMemory",
    "MemoryEstimate",
    "MemorySettings",
    "Plan",
    "PlanRequest",
    "choose_quant",
    "estimate_memory",
    "parse_size",
    "plan_for_file",
    "plan_model",
    "plan_reference",
    "profile_table",
    "what_if_hardware",
]
