"""``GET /v1/search?q=&n=&page=``: Docker's v1 search, which ``docker search HOST/TERM`` asks.

Results are the repositories whose names hold the term and which the caller may pull, in lexical
order, ``n`` (default 25, at most 100) to a page. A repository's description is the
``org.opencontainers.image.description`` label of its ``latest`` tag (else of its first tag),
where known. Stars, official and automated builds do not exist here: always 0 and false.
"""

from __future__ import annotations

import asyncio
import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..api.context import CALLER, Caller
from ..errors import ErrorCode, RegistryError
from ..references import Digest, RepositoryName, Tag
from ..storage import Storage
from .names import RepositoryIndex
from .views import CONCURRENT_READS, read_configuration, read_image
from .visitor import Gate

ROUTE = "search"
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
MAX_QUERY = 255
DESCRIPTION_LABEL = "org.opencontainers.image.description"
PREFERRED_TAG = Tag("latest")
MAX_DESCRIPTION = 1000


def create_search(storage: Storage, index: RepositoryIndex, gate: Gate) -> ASGIApp:
    async def search(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method not in {"GET", "HEAD"}:
            raise RegistryError(ErrorCode.METHOD_NOT_ALLOWED, headers={"Allow": "GET, HEAD"})
        query = request.query_params.get("q", "")[:MAX_QUERY].strip().lower()
        page_size = min(_positive(request, "n", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        page = _positive(request, "page", 1)
        visitor = await gate.from_headers(request.headers)  # refused credentials: its challenge
        scope[CALLER] = Caller(visitor.account, ROUTE)
        names, _ = await index.pullable(visitor, query, None, None)
        shown = names[(page - 1) * page_size : page * page_size]
        limit = asyncio.Semaphore(CONCURRENT_READS)

        async def described(name: RepositoryName) -> str:
            async with limit:
                return await _description(storage, name)

        descriptions = await asyncio.gather(*(described(name) for name in shown))
        results = [
            {
                "name": name,
                "description": description,
                "star_count": 0,
                "is_official": False,
                "is_automated": False,
            }
            for name, description in zip(shown, descriptions, strict=True)
        ]
        body = {
            "query": query,
            "num_results": len(names),
            "num_pages": (len(names) + page_size - 1) // page_size,
            "page": page,
            "page_size": page_size,
            "results": results,
        }
        content = b"" if request.method == "HEAD" else json.dumps(body).encode()
        await Response(content, media_type="application/json")(scope, receive, send)

    return search


async def _description(storage: Storage, name: RepositoryName) -> str:
    """The description label of the repository's ``latest`` image (else its first tag's); of the
    first image an index lists. Empty when unknown."""
    try:
        tags = await storage.tags.all_names(name)
        if not tags:
            return ""
        image = await read_image(storage, name, PREFERRED_TAG if PREFERRED_TAG in tags else tags[0])
        if image.is_index and image.children:
            image = await read_image(storage, name, Digest.parse(image.children[0].digest))
    except RegistryError:
        return ""
    configuration = await read_configuration(storage, name, image)
    if configuration is None:
        return ""
    return configuration.labels.get(DESCRIPTION_LABEL, "")[:MAX_DESCRIPTION]


def _positive(request: Request, key: str, default: int) -> int:
    value = request.query_params.get(key)
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or int(value) < 1:
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, {key: value[:20]})
    return int(value)
