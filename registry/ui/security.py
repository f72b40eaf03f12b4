"""Headers on every response of the interface: a strict Content-Security-Policy (scripts,
styles and images from the interface itself only, never inline; no framing), no MIME sniffing,
no referrer leaving the registry, and pages that are never cached (they show what one account
may see)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")


def secured(app: ASGIApp) -> ASGIApp:
    """``app`` with the interface's headers on each response; static assets may be cached."""

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        static = "/static/" in scope["path"]

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = HEADERS if static else [*HEADERS, NO_STORE]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await app(scope, receive, send_secured)

    return with_headers
