"""A conversation as a Markdown document."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localchat.history.store import Conversation, StoredMessage

ROLE_HEADINGS = {"system": "System", "user": "You", "assistant": "Assistant"}


def conversation_markdown(conversation: Conversation, messages: Sequence[StoredMessage]) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(conversation.created_at))
    lines = [
        f"# {conversation.display_title}",
        "",
        f"- model: `{conversation.model}`",
        f"- started: {created}",
        "",
    ]
    if conversation.system_prompt:
        lines += ["## System", "", conversation.system_prompt.strip(), ""]
    for message in messages:
        lines += [f"## {_heading(message)}", "", message.content.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def _heading(message: StoredMessage) -> str:
    heading = ROLE_HEADINGS.get(message.role, message.role.title())
    stats = message.stats or {}
    notes = []
    if stats.get("completion_tokens"):
        notes.append(f"{stats['completion_tokens']} tokens")
    if stats.get("decode_tokens_per_s"):
        notes.append(f"{stats['decode_tokens_per_s']:.1f} tok/s")
    if stats.get("finish_reason") == "cancelled" or not message.finished:
        notes.append("stopped early")
    return f"{heading} ({', '.join(notes)})" if notes else heading
