"""Read GGUF and safetensors headers from the Hugging Face hub by HTTP Range requests.

Only the header is fetched (a few MB of a 40 GB file): the parser asks for
growing ranges until it has the key/values and tensor infos.  The endpoint is
``HF_ENDPOINT`` (or huggingface_hub's configured one) and the token is
huggingface_hub's, so gated repos work once the user has logged in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from localchat.errors import CorruptModelFile, LocalchatError, ModelNotFound
from localchat.gguf.checks import check_header
from localchat.gguf.header import GgufHeader, parse_header
from localchat.gguf.info import GgufInfo, info_from_headers
from localchat.hub.client import hub_endpoint as configured_endpoint
from localchat.hub.client import network_error, status_error
from localchat.safetensors.checkpoint import (
    CONFIG_FILE,
    MAX_CONFIG_BYTES,
    CheckpointInfo,
    parse_config,
)
from localchat.safetensors.header import read_header

_CONTENT_RANGE_RE = re.compile(r"bytes\s+\d+-\d+/(\d+)")
_PART_RE = re.compile(r"\.gguf\.part(\d+)of(\d+)$")
FIRST_RANGE_BYTES = 2 << 20
MAX_RANGE_BYTES = 32 << 20
TIMEOUT_S = 30.0


def hub_endpoint(endpoint: str | None = None) -> str:
    return endpoint.rstrip("/") if endpoint else configured_endpoint()


def resolve_url(repo_id: str, filename: str, revision: str, endpoint: str | None = None) -> str:
    return (
        f"{hub_endpoint(endpoint)}/{repo_id}/resolve/"
        f"{quote(revision, safe='')}/{quote(filename, safe='/')}"
    )


class HttpRangeSource:
    """A remote file read with ``Range: bytes=a-b`` requests through huggingface_hub's session."""

    def __init__(
        self, url: str, name: str, token: str | None = None, *, ignore_size: bool = False
    ) -> None:
        """``ignore_size``: the remote file is one piece of a larger GGUF (``.partXofY``),
        so its length says nothing about where the GGUF ends."""
        self.url = url
        self.name = name
        self._headers = auth_headers(token)
        self._size: int | None = None
        self._size_known = ignore_size
        self.bytes_fetched = 0
        self.requests = 0

    def size_bytes(self) -> int | None:
        """Known after the first response (from its Content-Range); None before."""
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0 or (self._size is not None and offset >= self._size):
            return b""
        headers = {**self._headers, "Range": f"bytes={offset}-{offset + length - 1}"}
        data = self._get(headers, offset, length)
        self.bytes_fetched += len(data)
        self.requests += 1
        return data

    def _get(self, headers: dict[str, str], offset: int, length: int) -> bytes:
        from huggingface_hub import get_session

        try:
            with get_session().stream(
                "GET", self.url, headers=headers, follow_redirects=True, timeout=TIMEOUT_S
            ) as response:
                _raise_for_status(response.status_code, self.name)
                self._note_size(response.headers.get("content-range"), response.status_code)
                skip = offset if response.status_code == 200 else 0  # server ignored Range
                return _read_body(response.iter_bytes(), skip, length)
        except LocalchatError:
            raise
        except Exception as exc:  # network boundary: any transport error becomes one line
            raise network_error(
                exc,
                f"cannot read the header of {self.name} from the hub",
                hint="check the network, or run offline with catalog figures",
            ) from exc

    def _note_size(self, content_range: str | None, status: int) -> None:
        if self._size_known:
            return
        match = _CONTENT_RANGE_RE.search(content_range or "")
        self._size = int(match.group(1)) if match else None
        self._size_known = match is not None or status == 200


def _read_body(chunks: Iterable[bytes], skip: int, length: int) -> bytes:
    parts: list[bytes] = []
    have = 0
    for chunk in chunks:
        if skip:
            cut = min(skip, len(chunk))
            chunk, skip = chunk[cut:], skip - cut
        parts.append(chunk)
        have += len(chunk)
        if have >= length:
            break
    return b"".join(parts)[:length]


def auth_headers(token: str | None) -> dict[str, str]:
    """huggingface_hub's user agent, and the user's token (``hf auth login``) if any."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import (  # type: ignore[attr-defined]  # a lazy export
        build_hf_headers,
    )

    token = token or get_token()
    headers = dict(build_hf_headers(token=False))
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _raise_for_status(status: int, name: str) -> None:
    if status in (200, 206):
        return
    raise status_error(status, f"reading the header of {name}")


def read_remote_header(
    repo_id: str,
    filename: str,
    revision: str = "main",
    *,
    endpoint: str | None = None,
    token: str | None = None,
    concatenated: bool = False,
) -> GgufHeader:
    """The header of one file on the hub.  ``concatenated``: a ``.partXofY`` first piece,
    whose size is not the GGUF's, so file-size checks are left out."""
    url = resolve_url(repo_id, filename, revision, endpoint)
    source = HttpRangeSource(url, name=filename, token=token, ignore_size=concatenated)
    header = parse_header(source, chunk_bytes=FIRST_RANGE_BYTES, max_chunk_bytes=MAX_RANGE_BYTES)
    check_header(header)  # the same checks as a local file's (the vocabulary is not read)
    return header


def read_remote_gguf(
    repo_id: str,
    filenames: Sequence[str],
    revision: str = "main",
    *,
    endpoint: str | None = None,
    token: str | None = None,
) -> GgufInfo:
    """Architecture and tensor bytes of a hub model from its files' headers only.

    ``filenames`` are all the files of one quant: a single file, every split part
    (``-0000N-of-0000M.gguf``), or ``.gguf.partXofY`` pieces (only the first holds
    the header).
    """
    if not filenames:
        raise ModelNotFound(f"{repo_id}: no files given for this quant")
    pieces = [name for name in filenames if _PART_RE.search(name)]
    if pieces:
        first = min(pieces, key=lambda n: int(_PART_RE.search(n).group(1)))  # type: ignore[union-attr]
        headers = [
            read_remote_header(
                repo_id, first, revision, endpoint=endpoint, token=token, concatenated=True
            )
        ]
    else:
        headers = [
            read_remote_header(repo_id, name, revision, endpoint=endpoint, token=token)
            for name in filenames
        ]
    return info_from_headers(headers, source="remote header")


def read_remote_checkpoint(
    repo_id: str, files: Sequence[str], revision: str = "main"
) -> CheckpointInfo:
    """Config and shard headers of a hub checkpoint, by HTTP Range (a few MB at most)."""
    config_source = HttpRangeSource(resolve_url(repo_id, CONFIG_FILE, revision), CONFIG_FILE)
    config = parse_config(config_source.read(0, MAX_CONFIG_BYTES), repo_id)
    names = tuple(sorted(f for f in files if f.endswith(".safetensors") and "/" not in f))
    if not names:
        raise CorruptModelFile(f"{repo_id}: no .safetensors weights on the hub")
    headers = tuple(
        read_header(HttpRangeSource(resolve_url(repo_id, name, revision), name)) for name in names
    )
    return CheckpointInfo(repo_id, config, names, headers, "remote header")
