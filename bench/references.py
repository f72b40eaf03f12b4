"""nginx serving the pulled file itself: the reference each pull row is a share of.

A reference measured once, before the rows, is voided by a busy moment on either side: on a
shared machine the same pull varies by a factor of two between minutes. So every repetition of a
pull row measures its reference too, first in one repetition and last in the next (as the
registries alternate A,B,C / C,B,A), and the row's share of nginx is the median over repetitions
of its speed over the reference's in the same repetition (``bench.report``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench.http import FileComparer, HTTPError
from bench.measure import Case, Outcome
from bench.procstat import RssSampler
from bench.servers import Server, start_nginx
from tests.support.tls import ServerCertificates

NGINX = "nginx sendfile"
"""Plain HTTP, ``sendfile``: the loopback ceiling of the pulls without TLS."""
NGINX_TLS = "nginx TLS"
"""Over TLS with the shipped site's TLS settings: the ceiling of the pulls through the site."""
MB = 1e6


class References:
    """The reference nginx servers, each started when a row first needs it (and watched by the
    sampler under its name), stopped with ``stack``."""

    def __init__(
        self,
        workdir: Path,
        file: Path,
        certificates: ServerCertificates,
        sampler: RssSampler,
        stack: ExitStack,
    ) -> None:
        self.workdir = workdir
        self.file = file
        self.certificates = certificates
        self.sampler = sampler
        self.stack = stack
        self.servers: dict[str, Server] = {}

    def server(self, name: str) -> Server:
        if name not in self.servers:
            if name not in (NGINX, NGINX_TLS):
                raise ValueError(f"no reference named {name!r}")
            certificates = self.certificates if name == NGINX_TLS else None
            folder = self.workdir / "references" / name.replace(" ", "-")
            started = start_nginx(folder, self.file.parent, certificates)
            self.stack.callback(started.stop)
            started.name = name
            self.sampler.watch(name, started.pid)
            self.servers[name] = started
        return self.servers[name]

    def case(self, name: str) -> Case:
        """A full GET of the file from the reference ``name``, every byte compared, as the pulls."""
        return Case(f"reference-{name}", f"{name} serving the file", "MB/s", True, self._pull)

    def _pull(self, server: Server) -> Callable[[], Outcome]:
        size = self.file.stat().st_size

        def timed() -> Outcome:
            comparer = FileComparer(str(self.file), 0, size)
            try:
                with server.connect() as connection:
                    started = time.perf_counter()
                    response = connection.request("GET", f"/{self.file.name}", sink=comparer)
                    elapsed = time.perf_counter() - started
            finally:
                comparer.close()
            response.expect(200)
            if not comparer.verified():
                raise HTTPError(f"{server.name} served other bytes than the file")
            return Outcome(size / elapsed / MB, {"seconds": elapsed})

        return timed
