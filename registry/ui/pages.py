"""The interface's pages: repositories, a repository's tags, one image, deleting, signing in and
out. Server-rendered; every page works without JavaScript.

Paths below the mount (``/ui``): ``/`` the repositories (``?q=`` searches, ``?after=`` pages
on), ``/r/<name>`` a repository's tags, ``/r/<name>/-/manifest/<reference>`` one image,
``/r/<name>/-/delete/<reference>`` the confirmation (GET) and the delete (POST), ``/login``,
``/logout``, ``/static/...``. ``-`` can never be a repository name component, so no name
collides with these.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..access import Action
from ..api.application import as_registry_error
from ..api.context import CALLER, Caller
from ..api.incidents import StorageIncidents
from ..errors import ErrorCode, RegistryError
from ..lifecycle.usage import Records
from ..references import Reference, RepositoryName, Tag, parse_reference
from ..storage import Storage
from .names import RepositoryIndex
from .session import COOKIE, SESSION_SECONDS, Sealer, Session, new_session
from .views import read_configuration, read_image, referrers_by_type, tag_rows
from .visitor import Gate, Visitor

ROUTE = "ui"
"""The name requests through the interface carry in their ``Caller``."""
REPOSITORIES_PER_PAGE = 50
TAGS_PER_PAGE = 50
MAX_QUERY = 255
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 20
FORM_TYPE = "application/x-www-form-urlencoded"
PACKAGE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class Interface:
    """What the pages need of the registry."""

    storage: Storage
    index: RepositoryIndex
    gate: Gate
    sealer: Sealer
    delete_enabled: bool
    """Deletes are enabled and the registry is not read-only."""
    external_url: str | None
    """``http.host``: the registry's name in pull commands, when set."""
    incidents: StorageIncidents
    """The worker's storage incidents, which the pages' storage errors join as the API's do."""


@dataclass(slots=True)
class Page:
    """One request's session and visitor; the session is sent back when it changed."""

    request: Request
    session: Session
    visitor: Visitor
    fresh: bool
    """The session is new (or renewed): the browser does not hold it yet."""
    used: bool = False
    """The response depends on the session (a form with its CSRF token, a sign-in or out), so
    a fresh one is set in the browser. A fresh session is not set otherwise: a browser that
    arrives from another site sends no SameSite=Strict cookie, and a signed-in user must not be
    signed out by following a link."""


def create_pages(interface: Interface) -> Starlette:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # the templates ship with the package: never look at them again
    )
    environment.filters["size"] = human_size
    environment.filters["stamp"] = stamp
    environment.filters["ago"] = ago
    templates = Jinja2Templates(env=environment)
    pages = _Pages(interface, templates)
    return Starlette(
        routes=[
            Route("/", pages.handler(pages.repositories)),
            Route("/login", pages.handler(pages.login), methods=["GET", "POST"]),
            Route("/logout", pages.handler(pages.logout), methods=["POST"]),
            Route("/r/{rest:path}", pages.handler(pages.repository), methods=["GET", "POST"]),
            Mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static"),
        ]
    )


Handler = Callable[[Page], Awaitable[Response]]


class _Pages:
    def __init__(self, interface: Interface, templates: Jinja2Templates) -> None:
        self.ui = interface
        self.templates = templates
        self.usage = Records(interface.storage.driver)

    def handler(self, handle: Handler) -> Callable[[Request], Awaitable[Response]]:
        """``handle`` with the request's session and visitor, errors as pages, the session cookie
        set when it changed."""

        async def endpoint(request: Request) -> Response:
            page = await self._page(request)
            request.scope[CALLER] = Caller(page.visitor.account, ROUTE)
            try:
                response = await handle(page)
            except Exception as exc:
                error = as_registry_error(exc, self.ui.incidents)  # storage unavailable: 503, as the API says
                if error is None:
                    raise
                response = await self.render(page, "error.html", {"error": error}, error.code.status)
            if page.fresh and page.used:
                self._set_cookie(page, response)
            return response

        return endpoint

    async def _page(self, request: Request) -> Page:
        session = self.ui.sealer.open(request.cookies.get(COOKIE))
        if session is not None:
            visitor = await self.ui.gate.from_session(session.account, session.credential)
            if visitor is not None:
                return Page(request, session, visitor, fresh=False)
        # No session, or its credential no longer holds (then it is replaced, so it is not
        # checked again): browse as the request's own credentials (a browser's Basic prompt),
        # else anonymously.
        visitor = await self.ui.gate.from_headers_or_anonymous(request.headers)
        return Page(request, new_session(), visitor, fresh=True, used=session is not None)

    def _set_cookie(self, page: Page, response: Response) -> None:
        response.set_cookie(
            COOKIE,
            self.ui.sealer.seal(page.session),
            max_age=SESSION_SECONDS,
            path=page.request.scope.get("root_path") or "/",
            secure=page.request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    async def render(self, page: Page, template: str, context: dict[str, Any], status: int = 200) -> Response:
        def csrf() -> str:
            page.used = True
            return self.ui.sealer.csrf_token(page.session)

        values = {
            "base": page.request.scope.get("root_path", ""),
            "account": page.visitor.account,
            "csrf": csrf,
            "host": self.registry_host(page.request),
            "sign_in": await self.ui.gate.sign_in_scheme(),
            **context,
        }
        return self.templates.TemplateResponse(page.request, template, values, status_code=status)

    def registry_host(self, request: Request) -> str:
        """What clients put before repository names: ``http.host``'s, else the request's host."""
        if self.ui.external_url:
            return urlsplit(self.ui.external_url).netloc or self.ui.external_url
        return request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"

    # --- the pages ---

    async def repositories(self, page: Page) -> Response:
        query = page.request.query_params.get("q", "")[:MAX_QUERY].strip()
        after = page.request.query_params.get("after") or None
        names, more = await self.ui.index.pullable(page.visitor, query, after, REPOSITORIES_PER_PAGE)
        next_link = None
        if more and names:
            next_link = "?" + urlencode({"q": query, "after": names[-1]} if query else {"after": names[-1]})
        # Sizes and push times come from the latest usage record: one read, no manifest fetched.
        record = await self.usage.latest()
        context = {
            "names": names,
            "query": query,
            "next_link": next_link,
            "after": after,
            "usage": record.figures(names) if record is not None else {},
            "measured": record.measured if record is not None else None,
        }
        return await self.render(page, "repositories.html", context)

    async def login(self, page: Page) -> Response:
        scheme = await self.ui.gate.sign_in_scheme()
        if page.request.method == "GET":
            return await self.render(page, "login.html", {"failed": False, "username": ""})
        form = await self.checked_form(page)
        username = form.get("username", "")[:256]
        password = form.get("password", "")[:1024]
        credential = await self.ui.gate.sign_in(username, password) if scheme and username else None
        if credential is None:
            return await self.render(page, "login.html", {"failed": True, "username": username}, 401)
        # A new session (new nonce, so new CSRF tokens) on every sign-in.
        page.session = new_session(username, credential)
        page.fresh = page.used = True
        return RedirectResponse(page.request.scope.get("root_path", "") + "/", 303)

    async def logout(self, page: Page) -> Response:
        await self.checked_form(page)
        page.session = new_session()
        page.fresh = page.used = True
        return RedirectResponse(page.request.scope.get("root_path", "") + "/", 303)

    async def repository(self, page: Page) -> Response:
        rest: str = page.request.path_params["rest"]
        name_text, _, action_path = rest.partition("/-/")
        name = RepositoryName.parse(name_text.rstrip("/"))
        if not await page.visitor.may(Action.PULL, name):
            raise RegistryError(ErrorCode.NAME_UNKNOWN, {"name": name})  # never say it exists
        if not action_path:
            if page.request.method != "GET":
                raise RegistryError(ErrorCode.METHOD_NOT_ALLOWED)
            return await self.tags(page, name)
        action, _, reference_text = action_path.partition("/")
        reference = parse_reference(reference_text)
        if action == "manifest" and page.request.method == "GET":
            return await self.image(page, name, reference)
        if action == "delete":
            return await self.delete(page, name, reference)
        raise RegistryError(ErrorCode.NOT_FOUND)

    async def tags(self, page: Page, name: RepositoryName) -> Response:
        after = page.request.query_params.get("after") or None
        tags, more = await self.ui.storage.tags.page(name, TAGS_PER_PAGE, after)
        rows = await tag_rows(self.ui.storage, name, tags)
        may_delete = await self.may_delete(page, name)
        next_link = "?" + urlencode({"after": tags[-1]}) if more and tags else None
        context = {"name": name, "rows": rows, "may_delete": may_delete, "next_link": next_link}
        return await self.render(page, "repository.html", context)

    async def image(self, page: Page, name: RepositoryName, reference: Reference) -> Response:
        image = await read_image(self.ui.storage, name, reference)
        configuration = await read_configuration(self.ui.storage, name, image)
        referrers = await referrers_by_type(self.ui.storage, name, image.digest)
        context = {
            "name": name,
            "reference": str(reference),
            "tag": reference if isinstance(reference, Tag) else None,
            "image": image,
            "configuration": configuration,
            "referrers": referrers,
            "may_delete": await self.may_delete(page, name),
        }
        return await self.render(page, "image.html", context)

    async def delete(self, page: Page, name: RepositoryName, reference: Reference) -> Response:
        if not await self.may_delete(page, name):
            raise RegistryError(ErrorCode.DENIED)
        if page.request.method == "GET":
            # Confirm first: say what goes (a manifest takes its tags with it).
            image = await read_image(self.ui.storage, name, reference)
            tagged = await self.ui.storage.tags.pointing_at(name, image.digest)
            context = {"name": name, "reference": str(reference), "image": image, "tagged": tagged,
                       "is_tag": isinstance(reference, Tag)}  # fmt: skip
            return await self.render(page, "delete.html", context)
        await self.checked_form(page)
        if isinstance(reference, Tag):
            await self.ui.storage.tags.untag(name, reference)
        else:
            await self.ui.storage.manifests.delete(name, reference)
        base = page.request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/r/{name}?{urlencode({'deleted': str(reference)})}", 303)

    def own_hosts(self, request: Request) -> set[str | None]:
        hosts = {request.headers.get("host")}
        if self.ui.external_url:
            hosts.add(urlsplit(self.ui.external_url).netloc)
        return hosts

    async def may_delete(self, page: Page, name: RepositoryName) -> bool:
        return self.ui.delete_enabled and await page.visitor.may(Action.DELETE, name)

    async def checked_form(self, page: Page) -> dict[str, str]:
        """The form of a state-changing request, refused unless it carries this session's CSRF
        token and, when the browser names it, comes from this registry's own pages."""
        request = page.request
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc not in self.own_hosts(request):
            raise RegistryError(ErrorCode.DENIED, {"reason": "cross-origin form"})
        form = await read_form(request)
        if page.fresh or not self.ui.sealer.csrf_matches(page.session, form.get("csrf")):
            raise RegistryError(ErrorCode.DENIED, {"reason": "the form expired; reload the page"})
        return form


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (the pages send no other kind), first value of each field."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        raise RegistryError(ErrorCode.DENIED, {"reason": "not a form of these pages"})
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise RegistryError(ErrorCode.SIZE_INVALID, {"reason": "form too large"})
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise RegistryError(ErrorCode.DENIED, {"reason": "malformed form"}) from None
    return {key: values[0] for key, values in fields.items()}


def human_size(value: object) -> str:
    if not isinstance(value, int):
        return "unknown"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


def stamp(moment: float | None) -> str:
    if moment is None:
        return "unknown"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(moment: float | None) -> str:
    if moment is None:
        return ""
    elapsed = time.time() - moment
    for seconds, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if elapsed >= seconds:
            count = int(elapsed // seconds)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"
