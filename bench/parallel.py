"""Run work items over N keep-alive connections, one thread each, as a client with N sockets does."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from bench.http import Connection
from bench.servers import Server

Item = TypeVar("Item")


def over_connections(
    server: Server,
    connections: int,
    items: Sequence[Item],
    work: Callable[[Connection, Item], None],
) -> None:
    """Call ``work(connection, item)`` for every item; the first failure is raised at the end."""
    todo: queue.SimpleQueue[Item] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    failures: list[BaseException] = []

    def worker() -> None:
        with server.connect() as connection:
            while not failures:
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    work(connection, item)
                except BaseException as error:
                    failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(min(connections, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
