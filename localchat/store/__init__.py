"""What is on disk: models in the Hugging Face cache, pip-delivered models, local files.

find_local(ref) -> LocalModel | None     the model's files, if all are on disk
list_local() -> list[InstalledModel]     everything ``localchat list`` shows
remove(model) -> int                     delete a listed model, returns bytes freed
mark_used(local)                         record "last used" for ``localchat list``
"""

from localchat.store.inventory import InstalledModel
from localchat.store.inventory import list_installed as list_local
from localchat.store.inventory import remove_installed as remove
from localchat.store.local import LocalModel, find_local
from localchat.store.usage import mark_used

__all__ = ["InstalledModel", "LocalModel", "find_local", "list_local", "mark_used", "remove"]
