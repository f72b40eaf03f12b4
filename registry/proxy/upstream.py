"""The client for one mirrored registry: timeouts, authentication, and the hosts it may reach.

Only the configured upstream is asked for the API. Two other kinds of hosts are reached because
the upstream names them: its token realm (the Docker token flow), and for blob downloads only,
the target of a redirect (its blob storage). Both must be http(s), and must not resolve to
loopback, link-local, unspecified or multicast addresses unless the upstream itself lives on
such an address: a mirror must not become a way into the registry's own host or network.

The configured credentials go only into the ``Authorization`` header of requests to the upstream
and to its realm, never into a URL, a message, a log line or a response. Tokens are kept per
repository scope until shortly before they expire, in this process only: losing them costs one
token request.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import re
import ssl
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from ..config import Upstream
from . import rawget

# httpcore reads a connection 64 KiB at a time and parses every read: a blob of gigabytes costs
# as much CPU in those reads as in hashing and storing it, and caps a cold pull well below what
# loopback carries. Reads of 1 MiB cut that about threefold; the attribute is httpcore's only
# knob for it (per class, so every client of the process reads so), and small answers are
# unaffected: a read returns what has arrived.
httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = 1 << 20

USER_AGENT = "dockyard-mirror"
TIMEOUTS = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
"""``read`` is the idle timeout: a download may take any time while bytes keep arriving."""
MAX_REDIRECTS = 5
TOKEN_MARGIN = 10.0
"""Seconds before its expiry a token is no longer used."""
DEFAULT_TOKEN_LIFETIME = 60.0
"""What the token spec says a token without ``expires_in`` lives."""
TOKENS_KEPT = 1024
ANSWER_LIMIT = 16 << 20
"""The largest manifest, tags list or token answer read (manifests are refused beyond 4 MiB)."""
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHALLENGE_PARAMETER = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class UpstreamUnavailable(Exception):
    """The upstream could not be reached, timed out, or answered that it is busy or failing."""


class UpstreamRefused(Exception):
    """The upstream answered, but not with what was asked (refused access, a redirect where none
    is followed, a malformed answer)."""


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires: float
    """time.monotonic() after which it is not used."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A small answer, read whole."""

    status_code: int
    headers: httpx.Headers
    content: bytes


class _BlobResponse(Protocol):
    """An answer to a blob GET whose body is read into the reader's memory."""

    url: str
    status_code: int
    headers: httpx.Headers
    length: int | None

    async def read_into(self, buffer: memoryview) -> int: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BlobDownload:
    size: int
    response: _BlobResponse

    async def read_into(self, buffer: memoryview) -> int:
        """Fill ``buffer`` with the next bytes of the blob; fewer only at its end (or when the
        upstream stopped short: the caller compares what it got with ``size``)."""
        try:
            return await self.response.read_into(buffer)
        except TimeoutError:
            raise UpstreamUnavailable(f"{_origin(self.response.url)} stopped sending") from None
        except (OSError, rawget.MalformedAnswer) as exc:
            origin = _origin(self.response.url)
            raise UpstreamUnavailable(f"{origin} broke off ({type(exc).__name__})") from None

    async def close(self) -> None:
        await self.response.aclose()


class _ClientResponse:
    """A streamed answer of the HTTP client, read as a ``_BlobResponse`` (one copy more): for
    downloads through an HTTP proxy named in the environment, which the client honours."""

    def __init__(self, response: httpx.Response) -> None:
        self.url = str(response.url)
        self.status_code = response.status_code
        self.headers = response.headers
        self.length = rawget.content_length(response.headers)
        self._response = response
        self._chunks = response.aiter_raw()
        self._rest = memoryview(b"")

    async def read_into(self, buffer: memoryview) -> int:
        filled = 0
        while filled < len(buffer):
            if not self._rest:
                try:
                    self._rest = memoryview(await anext(self._chunks))
                except StopAsyncIteration:
                    break
                except httpx.TimeoutException:
                    raise TimeoutError from None
                except httpx.TransportError as exc:
                    raise ConnectionResetError(type(exc).__name__) from None
            taken = min(len(self._rest), len(buffer) - filled)
            buffer[filled : filled + taken] = self._rest[:taken]
            self._rest, filled = self._rest[taken:], filled + taken
        return filled

    async def aclose(self) -> None:
        await self._response.aclose()


def _ssl_context(cacerts: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cacerts:
        context.load_verify_locations(cafile=cacerts)
    return context


def _address_kinds(address: str) -> set[str]:
    """The kinds of a resolved address the registry does not reach without reason."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    kinds = set()
    if ip.is_loopback:
        kinds.add("loopback")
    if ip.is_link_local:
        kinds.add("link-local")
    if ip.is_unspecified:
        kinds.add("unspecified")
    if ip.is_multicast:
        kinds.add("multicast")
    return kinds


async def _resolved_kinds(url: str) -> set[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        return _address_kinds(host)
    except ValueError:
        pass  # a name, not an address
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError as exc:
        raise UpstreamUnavailable(f"cannot resolve {host}") from exc
    kinds: set[str] = set()
    for *_, sockaddr in found:
        kinds |= _address_kinds(str(sockaddr[0]))
    return kinds


def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _origin(url: str) -> str:
    """A URL's scheme, host and port: what messages name (a redirect's query may hold a signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """The scheme (lower case) and parameters of a ``WWW-Authenticate`` challenge."""
    scheme, _, rest = header.strip().partition(" ")
    parameters = {
        key.lower(): quoted.replace('\\"', '"') if quoted else bare
        for key, quoted, bare in _CHALLENGE_PARAMETER.findall(rest)
    }
    return scheme.lower(), parameters


class UpstreamClient:
    def __init__(self, upstream: Upstream) -> None:
        self.url = upstream.remote_url
        self._username = upstream.username
        self._password = upstream.password
        self._context = _ssl_context(str(upstream.cacerts) if upstream.cacerts else None)
        self._http = httpx.AsyncClient(
            timeout=TIMEOUTS,
            verify=self._context,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._proxies = bool(urllib.request.getproxies())
        """Whether the environment names HTTP proxies: the HTTP client follows those rules."""
        self._tokens: OrderedDict[str, _Token] = OrderedDict()
        self._basic = False
        """Whether the upstream asked for Basic credentials."""
        self._own_kinds: set[str] | None = None

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self, method: str, repository: str, path: str, headers: dict[str, str] | None = None
    ) -> Answer:
        """A request to ``/v2/<repository>/<path>`` with a small answer (at most ANSWER_LIMIT)."""
        response = await self._authorized(method, repository, path, headers or {})
        try:
            content = await self._read(response)
        finally:
            await response.aclose()
        if response.status_code in REDIRECTS:
            raise UpstreamRefused(f"the upstream redirected a {method} of {path.split('/', maxsplit=1)[0]}")
        return Answer(response.status_code, response.headers, content)

    async def download(self, repository: str, digest: str) -> BlobDownload | None:
        """The blob's bytes as they arrive, following redirects to blob storage; None when the
        upstream does not have it."""
        url = f"{self.url}/v2/{repository}/blobs/{digest}"
        scope = f"repository:{repository}:pull"
        sent = self._credentials(scope)
        response = await self._get(url, sent)
        if response.status_code == 401:
            await response.aclose()
            challenge = response.headers.get("www-authenticate", "")
            await self._answer(challenge, scope, sent.get("Authorization", ""))
            response = await self._get(url, self._credentials(scope))
        for _ in range(MAX_REDIRECTS):
            if response.status_code not in REDIRECTS:
                break
            await response.aclose()
            location = response.headers.get("location")
            if not location:
                raise UpstreamRefused("the upstream answered a redirect without a location")
            target = urljoin(response.url, location)
            await self._check_target(target, "a blob redirect")
            response = await self._get(target, {})  # without credentials: see _redirected
        else:
            await response.aclose()
            raise UpstreamRefused("the upstream redirected too many times")
        if response.status_code == 200:
            if response.length is None:
                await response.aclose()
                raise UpstreamRefused("the upstream sent a blob without its length")
            return BlobDownload(response.length, response)
        await response.aclose()
        if response.status_code == 404:
            return None
        raise self.failure(response)

    async def _get(self, url: str, credentials: dict[str, str]) -> _BlobResponse:
        """A blob GET, its body received into the reader's memory (through the HTTP client only
        where the environment names a proxy)."""
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **credentials}
        if self._proxies:
            request = self._http.build_request("GET", url, headers=headers)
            return _ClientResponse(await self._send(request, stream=True))
        try:
            return await rawget.get(url, headers, self._context, TIMEOUTS.connect or 0, TIMEOUTS.read or 0)
        except TimeoutError:
            raise UpstreamUnavailable(f"{_origin(url)} did not answer in time") from None
        except ssl.SSLCertVerificationError:
            host = urlsplit(url).hostname
            raise UpstreamRefused(f"{host} sent a certificate the registry does not trust") from None
        except rawget.MalformedAnswer as exc:
            raise UpstreamRefused(f"{_origin(url)}: {exc}") from None
        except OSError as exc:
            raise UpstreamUnavailable(f"{_origin(url)} cannot be reached ({type(exc).__name__})") from None

    async def blob_size(self, repository: str, digest: str) -> int | None:
        """The blob's size by a HEAD; None when the upstream does not have it."""
        response = await self._authorized("HEAD", repository, f"blobs/{digest}", {})
        response = await self._redirected("HEAD", response)
        await response.aclose()
        if response.status_code == 404:
            return None
        length = response.headers.get("content-length", "")
        if response.status_code != 200:
            raise self.failure(response)
        if not length.isdigit():
            raise UpstreamRefused("the upstream answered a blob HEAD without its length")
        return int(length)

    async def _redirected(self, method: str, response: httpx.Response) -> httpx.Response:
        """Follow the upstream's redirects of a blob request (checked, and without credentials:
        they belong to the upstream, not to where it sends clients)."""
        for _ in range(MAX_REDIRECTS):
            if response.status_code not in REDIRECTS:
                return response
            await response.aclose()
            location = response.headers.get("location")
            if not location:
                raise UpstreamRefused("the upstream answered a redirect without a location")
            target = urljoin(str(response.url), location)
            await self._check_target(target, "a blob redirect")
            response = await self._send(self._http.build_request(method, target), stream=True)
        await response.aclose()
        raise UpstreamRefused("the upstream redirected too many times")

    async def _authorized(
        self, method: str, repository: str, path: str, headers: dict[str, str]
    ) -> httpx.Response:
        """Send with the credentials the upstream wants, answering one challenge if it asks."""
        url = f"{self.url}/v2/{repository}/{path}"
        scope = f"repository:{repository}:pull"
        headers = {"Accept-Encoding": "identity", **headers}
        sent = self._credentials(scope)
        response = await self._send(self._http.build_request(method, url, headers={**headers, **sent}), True)
        if response.status_code != 401:
            return response
        await response.aclose()
        await self._answer(response.headers.get("www-authenticate", ""), scope, sent.get("Authorization", ""))
        return await self._send(
            self._http.build_request(method, url, headers={**headers, **self._credentials(scope)}), True
        )

    def _credentials(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        if token is not None and token.expires > time.monotonic():
            return {"Authorization": f"Bearer {token.value}"}
        if self._basic and self._username:
            return {"Authorization": f"Basic {self._basic_value()}"}
        return {}

    def _basic_value(self) -> str:
        return base64.b64encode(f"{self._username}:{self._password}".encode()).decode("ascii")

    async def _answer(self, challenge: str, scope: str, sent: str) -> None:
        """Get what the challenge asks for; ``sent`` is the Authorization the refused request had
        (another request may have learned meanwhile that Basic credentials are wanted)."""
        scheme, parameters = parse_challenge(challenge)
        if scheme == "basic" and self._username and not sent.startswith("Basic "):
            self._basic = True
            return
        if scheme == "bearer" and parameters.get("realm"):
            self._remember(scope, await self._fetch_token(parameters, scope))
            return
        raise UpstreamRefused(
            "the upstream refused access"
            + (" with the configured credentials" if self._username else " to anonymous clients")
        )

    async def _fetch_token(self, challenge: dict[str, str], scope: str) -> _Token:
        realm = challenge["realm"]
        await self._check_target(realm, "the token realm")
        params = {"scope": challenge.get("scope") or scope}
        if challenge.get("service"):
            params["service"] = challenge["service"]
        headers = {"Authorization": f"Basic {self._basic_value()}"} if self._username else {}
        asked = time.monotonic()
        response = await self._send(
            self._http.build_request("GET", realm, params=params, headers=headers), True
        )
        try:
            content = await self._read(response)
        finally:
            await response.aclose()
        if response.status_code in {401, 403}:
            raise UpstreamRefused("the upstream's token server refused the configured credentials")
        if response.status_code != 200:
            raise self.failure(response)
        try:
            document = json.loads(content)
            value = document.get("token") or document.get("access_token")
            lifetime = float(document.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            raise UpstreamRefused(
                "the upstream's token server answered something other than a token"
            ) from None
        if not isinstance(value, str) or not value:
            raise UpstreamRefused("the upstream's token server answered without a token")
        return _Token(value, asked + lifetime - TOKEN_MARGIN)

    def _remember(self, scope: str, token: _Token) -> None:
        self._tokens[scope] = token
        self._tokens.move_to_end(scope)
        while len(self._tokens) > TOKENS_KEPT:
            self._tokens.popitem(last=False)

    async def _check_target(self, url: str, what: str) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in {"http", "https"}:
            raise UpstreamRefused(f"{what} is not an http(s) URL")
        if self._own_kinds is None:
            self._own_kinds = await _resolved_kinds(self.url)
        refused = await _resolved_kinds(url) - self._own_kinds
        if refused:
            raise UpstreamRefused(f"{what} leads to a {'/'.join(sorted(refused))} address")

    async def _send(self, request: httpx.Request, stream: bool) -> httpx.Response:
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.TimeoutException:
            raise UpstreamUnavailable(f"{self.url} did not answer in time") from None
        except httpx.TransportError as exc:
            if _caused_by_tls(exc):  # no retry helps: the operator must set cacerts (or fix the host)
                raise UpstreamRefused(
                    f"{request.url.host} sent a certificate the registry does not trust"
                ) from None
            raise UpstreamUnavailable(f"{self.url} cannot be reached ({type(exc).__name__})") from None
        return response

    async def _read(self, response: httpx.Response) -> bytes:
        content = bytearray()
        try:
            async for chunk in response.aiter_raw():
                content += chunk
                if len(content) > ANSWER_LIMIT:
                    raise UpstreamRefused(f"the upstream's answer is larger than {ANSWER_LIMIT} bytes")
        except httpx.TimeoutException:
            raise UpstreamUnavailable(f"{self.url} stopped sending") from None
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"{self.url} broke off ({type(exc).__name__})") from None
        return bytes(content)

    def failure(self, response: httpx.Response | Answer | _BlobResponse) -> Exception:
        """What an answer that is neither the content nor "not found" means."""
        status = response.status_code
        if status == 429 or status >= 500:
            return UpstreamUnavailable(f"{self.url} answered {status}")
        return UpstreamRefused(f"{self.url} answered {status}")
