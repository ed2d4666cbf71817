"""The open conversation: stored messages and the prompt they make.  No Textual here."""

from __future__ import annotations

from localchat.settings import Settings
from localchat.tui.services import HistoryStore, ReplyRecorder, StoredMessage
from localchat.types import Message, SamplingParams


class ChatSession:
    """One conversation in the store; created lazily by the first message sent."""

    def __init__(self, store: HistoryStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.conversation_id: int | None = None
        self.system_prompt: str | None = settings.system_prompt or None
        self.messages: list[StoredMessage] = []

    def new(self) -> None:
        self.conversation_id = None
        self.system_prompt = self.settings.system_prompt or None
        self.messages = []

    def open(self, conversation_id: int) -> bool:
        conversation = self.store.conversation(conversation_id)
        if conversation is None:
            return False
        self.conversation_id = conversation_id
        self.system_prompt = conversation.system_prompt
        self.reload()
        return True

    def reload(self) -> list[StoredMessage]:
        if self.conversation_id is None:
            self.messages = []
        else:
            self.messages = self.store.messages(self.conversation_id)
        return self.messages

    @property
    def title(self) -> str:
        if self.conversation_id is None:
            return "New chat"
        conversation = self.store.conversation(self.conversation_id)
        return conversation.display_title if conversation else "New chat"

    def add_user(self, text: str, model_name: str) -> StoredMessage:
        """Save the user's message (committed before any generation starts)."""
        if self.conversation_id is None:
            self.conversation_id = self.store.new_conversation(
                model_name, system_prompt=self.system_prompt
            )
        else:
            self.store.update_conversation(self.conversation_id, model=model_name)
        message_id = self.store.add_message(self.conversation_id, "user", text)
        self.reload()  # also picks up what `localchat ask -c` added meanwhile
        return next(m for m in reversed(self.messages) if m.id == message_id)

    def set_model(self, model_name: str) -> None:
        """Record the model that actually answers (the user message may predate the load)."""
        if self.conversation_id is not None:
            self.store.update_conversation(self.conversation_id, model=model_name)

    def sampling_for(self, model_sampling: SamplingParams) -> SamplingParams:
        """The model's sampling with the current settings over it (they may have changed
        since the model was loaded with them)."""
        return self.settings.sampling(model_sampling)

    def engine_messages(self) -> list[Message]:
        """The prompt: system prompt, then every non-empty message in order."""
        prompt = [Message("system", self.system_prompt)] if self.system_prompt else []
        prompt += [m.as_message() for m in self.messages if m.content and m.role != "system"]
        return prompt

    def truncate_from(self, message_id: int) -> None:
        """Forget this message and all after it (edit and resend, regenerate)."""
        if self.conversation_id is not None:
            self.store.delete_messages_from(self.conversation_id, message_id)
        self.messages = [m for m in self.messages if m.id < message_id]

    def last_assistant(self) -> StoredMessage | None:
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[-1]
        return None

    def last_user(self) -> StoredMessage | None:
        return next((m for m in reversed(self.messages) if m.role == "user"), None)

    def recorder(self) -> ReplyRecorder:
        assert self.conversation_id is not None, "add_user() first"
        return self.store.recorder(self.conversation_id)
