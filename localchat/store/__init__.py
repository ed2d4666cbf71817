"""What is on disk: models in the Hugging Face cache, pip-delivered models, local files."""

from localchat.store.local import LocalModel, find_local

__all__ = ["LocalModel", "find_local"]
