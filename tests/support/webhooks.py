"""A webhook receiver: a real HTTP server in the test process that records every envelope."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .processes import free_port


class Receiver:
    """Records each POST (headers and parsed body) and answers ``status``; ``stop`` and
    ``start`` again on the same port, as a receiver that goes down and comes back."""

    def __init__(self, status: int = 200) -> None:
        self.port = free_port()
        self.status = status
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.posts.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[dict[str, Any]]:
        """Every event received, in the order received (duplicates included)."""
        with self.lock:
            return [event for _, body in self.posts for event in body["events"]]

    def unique_events(self) -> list[dict[str, Any]]:
        """Every event once (the first delivery of each ``id``), in the order received."""
        seen: set[str] = set()
        unique = []
        for event in self.events():
            if event["id"] not in seen:
                seen.add(event["id"])
                unique.append(event)
        return unique

    def wait_for(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """The unique events once ``done`` says they are all there; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.unique_events()
            if done(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver has {len(events)} events: {json.dumps(events)[:4000]}")
            time.sleep(0.2)
