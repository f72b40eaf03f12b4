"""CPU per small request through the registry's HTTP protocol, in one process: uvicorn's parser,
the registry's protocol classes, the request's task and the ASGI application, with the socket
replaced by a transport in memory. ``bench.asgi_cost`` leaves the protocol out; this leaves out
only the event loop's I/O and the system calls, so the two differ by what the protocol costs.

```sh
.venv/bin/python -m bench.protocol_cost                       # this checkout, 5 rounds
.venv/bin/python -m bench.protocol_cost --baseline /tmp/before -n 7
```

With ``--baseline DIR`` (a checkout of another commit, e.g. ``git archive COMMIT | tar -x -C
DIR``) each round measures both sources, each in a process of its own, alternating which goes
first. The registry is configured as ``bench/run`` configures it (filesystem storage, quiet logs,
the descriptor cache); the rows are ``/v2/``, HEAD of a blob, GET of a manifest by tag and GET
of the tags list, each checked for a 200 first. Figures are CPU µs per request
(``time.process_time``): the median and the range over rounds. The loop is uvloop, as the
registry's workers run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROWS = {
    "base": "GET /v2/",
    "head-blob": "HEAD /v2/bench/small/blobs/{blob}",
    "manifest-tag": "GET /v2/bench/small/manifests/latest",
    "tags-list": "GET /v2/bench/small/tags/list",
}
CLIENT_HEADERS = b"Host: 127.0.0.1:5000\r\nUser-Agent: bench\r\n"
MANIFEST_ACCEPT = b"Accept: application/vnd.oci.image.manifest.v1+json\r\n"


class MemoryTransport(asyncio.Transport):
    """What the protocol writes, kept; each write resolves ``written``."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []
        self.written: asyncio.Future[None] | None = None
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: Any) -> None:
        self.out.append(bytes(data))
        if self.written is not None and not self.written.done():
            self.written.set_result(None)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 5000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def get_write_buffer_size(self) -> int:
        return 0


async def _exchange(protocol: asyncio.Protocol, transport: MemoryTransport, request: bytes) -> bytes:
    """One request in, its whole answer out (the head and body arrive in one write)."""
    loop = asyncio.get_running_loop()
    transport.out.clear()
    transport.written = loop.create_future()
    protocol.data_received(request)
    await transport.written
    await asyncio.sleep(0)  # the request's task finishes
    return b"".join(transport.out)


def _request(method_path: str, headers: bytes = b"", body: bytes = b"") -> bytes:
    length = b"Content-Length: %d\r\n" % len(body) if body else b""
    return method_path.encode() + b" HTTP/1.1\r\n" + CLIENT_HEADERS + headers + length + b"\r\n" + body


async def measure(rounds_of: int) -> dict[str, float]:
    """This checkout's CPU µs per request for each row (run in a process of its own)."""
    from uvicorn.config import Config  # noqa: PLC0415 - from the checkout on PYTHONPATH
    from uvicorn.server import ServerState  # noqa: PLC0415

    from registry.app import create_app  # noqa: PLC0415
    from registry.coalescing import CoalescingHTTPProtocol  # noqa: PLC0415
    from registry.config import load_config  # noqa: PLC0415

    workdir = Path(tempfile.mkdtemp(prefix="protocol-cost-"))
    config = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": "127.0.0.1:5000"},
    }
    (workdir / "config.yml").write_text(yaml.safe_dump(config))
    app = create_app(load_config(str(workdir / "config.yml")))
    uvicorn_config = Config(
        app, http=CoalescingHTTPProtocol, lifespan="off", log_config=None, access_log=False,
        server_header=False, proxy_headers=False,
    )  # fmt: skip
    uvicorn_config.load()
    loop = asyncio.get_running_loop()
    protocol = CoalescingHTTPProtocol(
        config=uvicorn_config, server_state=ServerState(), app_state={}, _loop=loop
    )
    transport = MemoryTransport()
    protocol.connection_made(transport)

    async def upload(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = f"POST /v2/bench/small/blobs/uploads/?digest={digest}"
        answer = await _exchange(
            protocol, transport, _request(path, b"Content-Type: application/octet-stream\r\n", data)
        )
        assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
        return digest

    blob = os.urandom(1000)
    layer = await upload(blob)
    image_config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    config_digest = await upload(image_config)
    layers = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": len(blob)}
    ]
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(image_config)},
        "layers": layers,
    }).encode()  # fmt: skip
    put = _request(
        "PUT /v2/bench/small/manifests/latest",
        b"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
        manifest,
    )
    assert (await _exchange(protocol, transport, put)).startswith(b"HTTP/1.1 201")

    results: dict[str, float] = {}
    for key, line in ROWS.items():
        request = _request(line.format(blob=layer), MANIFEST_ACCEPT if key == "manifest-tag" else b"")
        for _ in range(500):  # warm, and check
            answer = await _exchange(protocol, transport, request)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        gc.collect()
        started = time.process_time()
        for _ in range(rounds_of):
            await _exchange(protocol, transport, request)
        results[key] = (time.process_time() - started) / rounds_of * 1e6
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=5000, help="requests per row and round")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured in the same rounds")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a measuring child
    args = parser.parse_args()
    if args.one:
        import uvloop  # noqa: PLC0415

        print(json.dumps(uvloop.run(measure(args.count))))
        return
    project = Path(__file__).resolve().parent.parent
    sources = {"this": project, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    cpu: dict[tuple[str, str], list[float]] = {}
    for number in range(args.rounds):
        for name, source in sources.items() if number % 2 == 0 else reversed(sources.items()):
            finished = subprocess.run(
                # -P: bench/ not first on the path (its http.py would hide the standard one).
                [
                    sys.executable,
                    "-P",
                    str(project / "bench" / "protocol_cost.py"),
                    "--one",
                    "--count",
                    str(args.count),
                ],
                env={**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{project}"},
                cwd=source,
                capture_output=True,
                text=True,
                check=True,
            )
            for key, value in json.loads(finished.stdout).items():
                cpu.setdefault((key, name), []).append(value)
        print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
    print("CPU µs per request through the protocol and the application, median (min-max)")
    print(f"of {args.rounds} rounds of {args.count} requests per row.\n")
    print("| Row | " + " | ".join(sources) + " |")
    print("| --- |" + " --- |" * len(sources))
    for key, line in ROWS.items():
        cells = []
        for name in sources:
            values = cpu[(key, name)]
            cells.append(f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"| {line.format(blob='<digest>')} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
