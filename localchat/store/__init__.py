"""What is on disk: models in the Hugging Face cache, pip-delivered models, local files.

    find_local(ref, formats) -> LocalModel | None   the model's files, if all are on disk
    list_local(formats) -> list[LocalModel]         everything ``localchat list`` shows
    remove(model) -> int                            delete a listed model, returns bytes freed
    mark_used(local)                                record "last used" for ``localchat list``

``formats`` are the model formats (``engine.registry``) the services hand in; the store
keeps their names as data and never tells formats apart itself.
"""

from localchat.store.inventory import list_installed as list_local
from localchat.store.inventory import remove_installed as remove
from localchat.store.local import find_local
from localchat.store.model import FileGroup, LocalModel, StoreFormat
from localchat.store.usage import mark_used

__all__ = [
    "FileGroup",
    "LocalModel",
    "StoreFormat",
    "find_local",
    "list_local",
    "mark_used",
    "remove",
]
