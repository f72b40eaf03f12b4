"""One upstream download per missing blob, however many clients, workers and replicas want it.

The protocol runs through storage, so every worker and replica on the same storage takes part:

1. **Claim.** A request that finds the blob missing writes ``fetches/<digest>/<id>/claim``, where
   ``<id>`` starts with the time it was made (so ids sort by age), waits SETTLE seconds (and at
   least twice as long as its own write took), then lists the claims.
2. **The oldest live claim leads.** A claim is live while its heartbeat, rewritten by its owner
   every HEARTBEAT seconds, is younger than STALE; whoever meets a stale claim deletes it. A
   request whose claim is not the oldest live one withdraws it and follows that one. A contender
   lists only after its own claim is written and a while longer, so of two contenders the later
   one sees the earlier claim unless that claim's write took longer than the later one's write
   and wait together (a stalled disk or process), or one's clock runs more than SETTLE behind
   the other's (replicas on different hosts need synchronised clocks). For that case a leader
   marks its claim ``leading`` at once, and the oldest claim follows a younger one so marked:
   both lead (and the upstream is asked twice) only when the two listings and the mark cross.
   A request that followed a claim which then withdrew without leading contends again.

   Where the driver creates objects exclusively (``creates_exclusively``: the filesystem's
   link(2), S3's conditional PUT), there is no such window: after writing its claim, a request creates
   ``fetches/<digest>/leader`` naming it, and the one request whose create succeeds leads; the
   others follow the claim the record names. The record goes with the download's directory, or,
   when the download fails, at once (the failed claim stays a moment for its followers). A record
   whose claim is stale is removed by whoever meets it; two requests that meet it at the same
   moment may both lead, the one case left where the upstream is asked twice (after a registry
   died while downloading).
3. **The leader downloads once**, in a task of its own: a client that goes away does not stop a
   download others wait on. Each batch is hashed and appended to ``data``, written once. Where
   the driver cannot read a write before its commit (S3), every batch but the last is also
   published as ``segments/<offset>``. Once the size and the digest check out, ``data`` is
   committed and becomes the blob (one move), and the fetch's directory is deleted. A mismatch or
   an upstream failure deletes the directory instead: the blob never exists.
4. **Followers read what the leader wrote**, in order, as it arrives: ``data`` itself while it is
   written (``unfinished_reader``, the filesystem), else the segments. The last batch (it starts
   at the last multiple of BATCH before the end) is never read from there: only from the blob,
   once the claim is gone. So no client ever receives the whole of a bad blob: the response is
   cut short. Clients in the leader's own worker take the batches from memory (the last once the
   blob is in the cache), and follow like the others when they fall behind.

Manifests take the same claims (``once``), without segments: they are small, so the others wait
until the leader has stored the manifest, then read it from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from offload import to_thread
from storage_drivers import FileWriter, PathNotFound, StorageDriver

from ..errors import ErrorCode, RegistryError
from ..references import Digest, FetchId, RepositoryName, new_hasher
from ..storage import BlobService, paths
from ..storage.batches import ALIGNMENT
from .upstream import BlobDownload, UpstreamUnavailable

log = logging.getLogger("registry.proxy")

SETTLE = 0.05
HEARTBEAT = 5.0
STALE = 30.0
BATCH = 4 << 20
"""Bytes per write of the data (and per segment, where there are segments)."""
READ_AHEAD = 2
"""Batches received from the upstream while earlier ones are hashed, written and published."""
IN_FLIGHT = 2
"""Batches being hashed, written and published at once."""
LOCAL_BACKLOG = 16 << 20
"""Bytes a client of the leader's worker may fall behind before it follows as the others do."""
POLL_FIRST, POLL_LAST = 0.01, 0.25
ONCE_ROUNDS = 3
"""Times a request for small content contends while the claims it follows end without the work
done; then its caller does the work itself."""
OUTCOME_KEPT = 2.0
"""Seconds a failed download's claim says why, so that its followers answer as its client did."""
ABANDONED = 600.0
"""Seconds after its last heartbeat a download's directory is left over from a registry that
stopped: the cache's expiry removes it (a request for the same blob removes it sooner)."""
OUTCOMES = {
    "absent": ErrorCode.BLOB_UNKNOWN,
    "unavailable": ErrorCode.UPSTREAM_UNAVAILABLE,
    "failed": ErrorCode.UPSTREAM_FAILED,
}

Download = Callable[[], Awaitable[BlobDownload | None]]


class FetchFailed(Exception):
    """The download a client was being served from ended without the whole, verified blob."""


@dataclass(frozen=True, slots=True)
class Claim:
    heartbeat: float
    source: str
    """The upstream and repository it downloads from."""
    size: int | None = None
    outcome: str | None = None
    """Why the download failed (a key of OUTCOMES), kept a moment for those following it."""
    leading: bool = False
    """Whether its owner has decided to lead (a contender's claim does not say so)."""

    def encode(self) -> bytes:
        document: dict[str, object] = {"heartbeat": self.heartbeat, "source": self.source, "size": self.size}
        if self.outcome is not None:
            document["outcome"] = self.outcome
        if self.leading:
            document["leading"] = True
        return json.dumps(document).encode()

    @classmethod
    def decode(cls, content: bytes) -> Claim | None:
        try:
            document = json.loads(content)
            size = document.get("size")
            outcome = document.get("outcome")
            return cls(
                float(document["heartbeat"]),
                str(document["source"]),
                int(size) if size is not None else None,
                outcome if outcome in OUTCOMES else None,
                document.get("leading") is True,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # torn or foreign: not a claim

    @property
    def stale(self) -> bool:
        return time.time() - self.heartbeat > STALE

    @property
    def live(self) -> bool:
        """Whether it downloads (or is about to): neither failed nor abandoned."""
        return self.outcome is None and not self.stale

    def error(self) -> RegistryError:
        """What a client following this failed (or stopped) download is answered."""
        code = OUTCOMES.get(self.outcome or "", ErrorCode.UPSTREAM_UNAVAILABLE)
        reason = "the upstream does not have it" if code is ErrorCode.BLOB_UNKNOWN else "the download failed"
        return RegistryError(code, {"reason": reason})


@dataclass(slots=True)
class Served:
    """A blob being served while it downloads."""

    size: int
    chunks: AsyncIterator[bytes | memoryview]
    source: str
    """Where the download comes from (for a client of another repository to confirm access)."""


class _Batch:
    """Page-aligned memory the upstream's bytes are received into, returned to its pool for the
    next batch once everything that holds it (the hash, the write, the segment, the client)
    has let go of it: allocating, and zeroing, fresh memory for every batch costs CPU."""

    __slots__ = ("_free", "_holders", "_memory", "view")

    def __init__(self, free: list[memoryview]) -> None:
        self._free = free
        self._memory = free.pop() if free else _aligned(BATCH)
        self.view = self._memory
        """The bytes received (all of the memory but at the blob's end)."""
        self._holders = 0

    async def receive(self, download: BlobDownload, length: int) -> int:
        received = await download.read_into(self._memory[:length])
        self.view = self._memory[:received]
        return received

    def hold(self) -> None:
        self._holders += 1

    def release(self) -> None:
        self._holders -= 1
        if self._holders == 0:
            self._free.append(self._memory)

    def hold_until(self, done: asyncio.Future[Any]) -> None:
        self.hold()
        done.add_done_callback(lambda _: self.release())


class _LocalFeed:
    """The batches of a download for the client of the request that started it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Batch | BaseException | None] = asyncio.Queue()
        self.queued = 0
        self.detached = False
        self.size: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def put(self, batch: _Batch) -> None:
        if self.detached:
            return
        if self.queued + len(batch.view) > LOCAL_BACKLOG:
            self.detached = True
            self.queue.put_nowait(None)  # read the rest from the segments
            return
        batch.hold()
        self.queued += len(batch.view)
        self.queue.put_nowait(batch)

    def fail(self, error: BaseException) -> None:
        if not self.size.done():
            self.size.set_exception(error)
        elif not self.detached:
            self.queue.put_nowait(error)


class Fetches:
    def __init__(self, driver: StorageDriver, blobs: BlobService) -> None:
        self._driver = driver
        self._blobs = blobs
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def serve(
        self, name: RepositoryName, digest: Digest, source: str, download: Download
    ) -> Served | None:
        """The blob's bytes from the one download of it, started here or elsewhere; None when the
        blob exists by now (the caller serves it as cached) or the upstream lacks it."""
        while True:
            fetch = await self._contend(digest, source, self._cached(digest))
            if fetch is None:
                return None
            leader, claim = fetch
            if claim is None:
                return await self._lead(name, digest, leader, source, download)
            size = await self._size_of(digest, leader, claim)
            if size is not None:
                return Served(size, self._follow(digest, leader, 0, size), claim.source)
            # The claim withdrew before it led: it met an older one its own listing had not
            # shown this request yet, or its registry stopped. Contend again.

    async def once(
        self,
        digest: Digest,
        source: str,
        work: Callable[[], Awaitable[None]],
        done: Callable[[], Awaitable[bool]],
    ) -> None:
        """Run ``work`` unless ``done`` says it is done or another request already runs it: then
        wait until that one has finished, failed or stopped. Small content only (manifests):
        nothing is streamed."""
        for _ in range(ONCE_ROUNDS):
            fetch = await self._contend(digest, source, done)
            if fetch is None:
                return
            leader, claim = fetch
            if claim is None:
                break
            if not await self._withdrawn(digest, leader) or await done():
                return
            # Gone without the work done: it withdrew before it led (or failed): contend again.
        else:
            return
        keeper = _ClaimKeeper(self._driver, digest, leader, source)
        keeper.start()
        try:
            await work()
        finally:
            await keeper.stop()
            await self._unlead(digest, leader)

    async def _withdrawn(self, digest: Digest, fetch: FetchId) -> bool:
        """Wait until the claim has ended: True when it is gone, False when it failed or stalled."""
        delay = POLL_FIRST
        while (claim := await self._claim(digest, fetch)) is not None and claim.live:
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_LAST)
        return claim is None

    def _cached(self, digest: Digest) -> Callable[[], Awaitable[bool]]:
        async def cached() -> bool:
            return await self._blobs.size(digest) is not None

        return cached

    async def _contend(
        self, digest: Digest, source: str, done: Callable[[], Awaitable[bool]]
    ) -> tuple[FetchId, Claim | None] | None:
        """Claim the download; the claim that leads and, unless it is ours, what it says. None
        when ``done`` says there is nothing left to download."""
        mine = FetchId(f"{time.time_ns():020d}-{secrets.token_hex(4)}")
        began = time.monotonic()
        await self._driver.put_content(
            paths.blob_fetch_claim(digest, mine), Claim(time.time(), source).encode()
        )
        if self._driver.creates_exclusively:
            return await self._contend_exclusively(digest, mine, done)
        await asyncio.sleep(max(SETTLE, 2 * (time.monotonic() - began)))
        try:
            entries = await self._driver.list(paths.blob_fetches(digest))
        except PathNotFound:
            entries = []
        fetches = sorted(filter(None, (FetchId.parse(e.rsplit("/", 1)[1]) for e in entries)))
        for fetch in fetches:
            if fetch == mine:
                break
            claim = await self._claim(digest, fetch)
            if claim is None or not claim.live:
                if (claim is not None and claim.stale) or (claim is None and await self._abandoned(fetch)):
                    await self._withdraw(digest, fetch)
                continue
            await self._withdraw(digest, mine)
            return fetch, claim
        # A younger claim that already leads did not see this one (its write was slow): follow it.
        for fetch in (f for f in fetches if f > mine):
            claim = await self._claim(digest, fetch)
            if claim is not None and claim.live and claim.leading:
                await self._withdraw(digest, mine)
                return fetch, claim
        if await done():
            await self._withdraw(digest, mine)  # finished between the caller's look and the claim
            return None
        return mine, None

    async def _contend_exclusively(
        self, digest: Digest, mine: FetchId, done: Callable[[], Awaitable[bool]]
    ) -> tuple[FetchId, Claim | None] | None:
        """``_contend`` where the storage creates objects exclusively: the claim that creates
        ``leader`` leads, and every other one follows the claim it names."""
        leader = paths.blob_fetch_leader(digest)
        delay = POLL_FIRST
        while True:
            if await self._driver.create_content(leader, mine.encode()):
                if await done():
                    await self._unlead(digest, mine)  # finished between the look and the claim
                    return None
                return mine, None
            try:
                named = FetchId.parse((await self._driver.get_content(leader)).decode(errors="replace"))
            except PathNotFound:
                continue  # ended meanwhile: contend again
            if named == mine:  # created after all: a retried create whose first try succeeded
                return mine, None
            claim = await self._claim(digest, named) if named is not None else None
            if named is not None and claim is not None and claim.live:
                await self._withdraw(digest, mine)
                return named, claim
            # The claim it names failed (its owner removes the record at once), ended, or stopped
            # without ending: a stale one, or a record without a claim that is old enough to be
            # left over, is removed by whoever meets it.
            if (claim is not None and claim.stale) or (
                claim is None and (named is None or await self._abandoned(named))
            ):
                await self._unlead(digest, named)
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_LAST)

    async def _unlead(self, digest: Digest, fetch: FetchId | None, keep_claim: bool = False) -> None:
        """Remove the leader record if it names ``fetch`` (None: a record that names no claim),
        and the claim unless ``keep_claim``. Only the claim's owner, or whoever finds the claim
        stale, does: so a record is never removed for a claim that is alive."""
        leader = paths.blob_fetch_leader(digest)
        if self._driver.creates_exclusively:
            with contextlib.suppress(PathNotFound):
                named = FetchId.parse((await self._driver.get_content(leader)).decode(errors="replace"))
                if named == fetch:
                    await self._driver.delete(leader)
        if fetch is not None and not keep_claim:
            await self._withdraw(digest, fetch)

    async def sweep(self) -> int:
        """Remove the downloads abandoned for ABANDONED seconds, and leader records naming none
        of the claims left; how many downloads."""
        removed = 0
        for digest in await self._downloaded_digests():
            try:
                entries = await self._driver.list(paths.blob_fetches(digest))
            except PathNotFound:
                continue
            names = [entry.rsplit("/", 1)[1] for entry in entries]
            for fetch in filter(None, map(FetchId.parse, names)):
                claim = await self._claim(digest, fetch)
                heartbeat = claim.heartbeat if claim is not None else _created(fetch)
                if time.time() - heartbeat > ABANDONED:
                    await self._withdraw(digest, fetch)
                    removed += 1
            leader = paths.blob_fetch_leader(digest)
            if leader in entries:
                with contextlib.suppress(PathNotFound):
                    named = FetchId.parse((await self._driver.get_content(leader)).decode(errors="replace"))
                    if named is None or (
                        time.time() - _created(named) > ABANDONED and await self._claim(digest, named) is None
                    ):
                        await self._driver.delete(leader)
        return removed

    async def _downloaded_digests(self) -> list[Digest]:
        digests = []
        with contextlib.suppress(PathNotFound):
            for algorithm_dir in await self._driver.list(paths.FETCHES):
                algorithm = algorithm_dir.rsplit("/", 1)[1]
                with contextlib.suppress(PathNotFound):
                    for entry in await self._driver.list(algorithm_dir):
                        with contextlib.suppress(RegistryError):  # a foreign entry
                            digests.append(Digest.parse(f"{algorithm}:{entry.rsplit('/', 1)[1]}"))
        return digests

    async def _abandoned(self, fetch: FetchId) -> bool:
        """Whether a fetch directory without a readable claim is old enough to be left over."""
        return time.time() - _created(fetch) > STALE

    async def _claim(self, digest: Digest, fetch: FetchId) -> Claim | None:
        try:
            return Claim.decode(await self._driver.get_content(paths.blob_fetch_claim(digest, fetch)))
        except PathNotFound:
            return None

    async def _withdraw(self, digest: Digest, fetch: FetchId) -> None:
        with contextlib.suppress(PathNotFound):
            await self._driver.delete(paths.blob_fetch(digest, fetch))

    async def _size_of(self, digest: Digest, fetch: FetchId, claim: Claim) -> int | None:
        """The size the leader announces once the upstream answered; None when its claim is gone
        without the blob before it announced one (a failed download says why, and stays)."""
        delay = POLL_FIRST
        while claim.size is None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_LAST)
            found = await self._claim(digest, fetch)
            if found is None:
                return await self._blobs.size(digest)
            if not found.live:
                raise found.error()
            claim = found
        return claim.size

    async def _lead(
        self, name: RepositoryName, digest: Digest, fetch: FetchId, source: str, download: Download
    ) -> Served | None:
        feed = _LocalFeed()
        task = asyncio.create_task(self._download(name, digest, fetch, source, download=download, feed=feed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            size = await feed.size
        except _NotUpstream:
            return None
        return Served(size, self._local(feed, digest, fetch, size), source)

    async def _local(
        self, feed: _LocalFeed, digest: Digest, fetch: FetchId, size: int
    ) -> AsyncIterator[bytes | memoryview]:
        offset = 0
        sent: deque[_Batch] = deque()
        while offset < size:
            item = await feed.queue.get()
            if item is None:
                async for chunk in self._follow(digest, fetch, offset, size):
                    yield chunk
                return
            if isinstance(item, BaseException):
                raise FetchFailed(str(item))
            feed.queued -= len(item.view)
            offset += len(item.view)
            yield item.view
            # Asked for the next: the response has sent this batch, and the transport may keep
            # (a view of) the end of it and of the one before, never of an older one. The last
            # two of the response are never released, only dropped: their memory is not reused.
            sent.append(item)
            if len(sent) > 2:
                sent.popleft().release()

    async def _follow(self, digest: Digest, fetch: FetchId, offset: int, size: int) -> AsyncIterator[bytes]:
        """The blob from ``offset``: what the leader has written, as it writes it, all but the last
        batch; then the rest from the blob once the download ended."""
        unfinished = self._driver.unfinished_reads
        data = paths.blob_fetch_data(digest, fetch)
        readable = _last_batch_start(size)
        delay = POLL_FIRST
        while offset < size:
            before = offset
            # Gone (committed, cancelled, or not written yet): the claim says which.
            with contextlib.suppress(PathNotFound):
                if offset < readable and unfinished:
                    async for chunk in self._driver.unfinished_reader(data, offset, readable - offset):
                        offset += len(chunk)
                        yield chunk
                elif offset < readable:
                    segment = await self._driver.get_content(paths.blob_fetch_segment(digest, fetch, offset))
                    offset += len(segment)
                    yield segment
            if offset > before:
                delay = POLL_FIRST
                continue
            claim = await self._claim(digest, fetch)
            if claim is None:  # the download ended: the blob exists now, or it failed
                if await self._blobs.size(digest) != size:
                    raise FetchFailed("the download of the blob failed")
                async for chunk in await self._blobs.open(digest, offset):
                    yield chunk
                return
            if not claim.live:
                raise FetchFailed("the download failed" if claim.outcome else "the download stopped")
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_LAST)

    async def _download(
        self,
        name: RepositoryName,
        digest: Digest,
        fetch: FetchId,
        source: str,
        *,
        download: Download,
        feed: _LocalFeed,
    ) -> None:
        claim = _ClaimKeeper(self._driver, digest, fetch, source)
        writer: FileWriter | None = None
        try:
            claim.start()
            found = await download()
            if found is None:
                raise _NotUpstream
            try:
                await claim.announce(found.size)
                feed.size.set_result(found.size)
                writer = await self._driver.writer(paths.blob_fetch_data(digest, fetch))
                last = await self._transfer(found, digest, fetch, writer, feed)
            finally:
                await found.close()
            # In the cache before the last bytes go out: a client served whole finds it there.
            await self._blobs.ingest(name, paths.blob_fetch_data(digest, fetch), digest, found.size)
            if last is not None:
                feed.put(last)
                last.release()
            await claim.stop()
            # With the blob in place every claim on it is moot, and the digest's directory goes too.
            with contextlib.suppress(Exception):
                await self._driver.delete(paths.blob_fetches(digest))
        except BaseException as exc:
            await claim.stop()
            if writer is not None:
                with contextlib.suppress(Exception):
                    await writer.cancel()
            feed.fail(exc if isinstance(exc, Exception) else FetchFailed("the registry is stopping"))
            if not isinstance(exc, Exception):
                raise
            if not isinstance(exc, _NotUpstream):
                log.warning("download of %s from %s failed: %s", digest, source, exc)
            with contextlib.suppress(Exception):
                await claim.fail(_outcome(exc))
                await self._unlead(digest, fetch, keep_claim=True)  # the next request may lead
                await asyncio.sleep(OUTCOME_KEPT)
        finally:
            with contextlib.suppress(Exception):
                await self._unlead(digest, fetch)

    async def _transfer(
        self, found: BlobDownload, digest: Digest, fetch: FetchId, writer: FileWriter, feed: _LocalFeed
    ) -> _Batch | None:
        """Hash and store every batch, and pass all but the last to the leader's client (and the
        segments): the last is returned, held, once the whole blob checks out and is committed,
        for the client when it is in the cache.

        Hashing, writing and segments each run in a lane of their own, in order, while the next
        batches arrive; at most IN_FLIGHT batches wait for the lanes (the disk takes its time, as in
        ``storage/pump.py``).
        """
        hasher = new_hasher(digest.algorithm)
        hashing, writing, publishing = _Lane(), _Lane(), _Lane()
        in_flight: deque[list[asyncio.Future[None]]] = deque()
        held: _Batch | None = None
        offset = 0
        try:
            async for batch in _received(found, READ_AHEAD):
                if len(in_flight) >= IN_FLIGHT:
                    await asyncio.gather(*in_flight.popleft())
                view = batch.view
                steps = [
                    hashing.then(partial(to_thread, hasher.update, view)),
                    writing.then(partial(writer.write, view)),
                ]
                if offset < _last_batch_start(found.size):
                    feed.put(batch)
                    if not self._driver.unfinished_reads:
                        steps.append(publishing.then(partial(self._publish, digest, fetch, offset, view)))
                else:
                    held = batch
                    held.hold()
                batch.hold_until(asyncio.gather(*steps, return_exceptions=True))
                in_flight.append(steps)
                offset += len(view)
            for steps in in_flight:
                await asyncio.gather(*steps)
        finally:
            # Nothing may still write when the caller closes the writer, even after a failure.
            await asyncio.gather(*(step for steps in in_flight for step in steps), return_exceptions=True)
        if offset != found.size:
            raise FetchFailed(f"the upstream sent {offset} of the {found.size} bytes it announced")
        if hasher.hexdigest() != digest.hex:
            raise FetchFailed(f"the upstream's content does not match {digest}")
        await writer.commit()
        return held

    async def _publish(self, digest: Digest, fetch: FetchId, offset: int, batch: memoryview) -> None:
        """A batch for followers where the driver cannot read the data before it is committed."""
        await self._driver.put_content(paths.blob_fetch_segment(digest, fetch, offset), bytes(batch))


def _created(fetch: FetchId) -> float:
    """When a claim was made (its id says), in seconds since the epoch."""
    return int(fetch.split("-", 1)[0]) / 1e9


def _last_batch_start(size: int) -> int:
    """Where the last batch of a blob of ``size`` bytes begins: followers never read from there
    before the blob is in the cache."""
    return max(size - 1, 0) // BATCH * BATCH


class _NotUpstream(Exception):
    """The upstream does not have the blob."""


def _outcome(exc: Exception) -> str:
    if isinstance(exc, _NotUpstream):
        return "absent"
    if isinstance(exc, UpstreamUnavailable):
        return "unavailable"
    return "failed"


class _ClaimKeeper:
    """Writes the leader's claim: at the start, with the size, and every HEARTBEAT seconds."""

    def __init__(self, driver: StorageDriver, digest: Digest, fetch: FetchId, source: str) -> None:
        self._driver = driver
        self._path = paths.blob_fetch_claim(digest, fetch)
        self._claim = Claim(time.time(), source, leading=True)
        self._beating: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._beating = asyncio.create_task(self._beat())

    async def announce(self, size: int) -> None:
        self._claim = Claim(time.time(), self._claim.source, size, leading=True)
        await self._write()

    async def fail(self, outcome: str) -> None:
        self._claim = Claim(time.time(), self._claim.source, self._claim.size, outcome, leading=True)
        await self._write()

    async def stop(self) -> None:
        """No heartbeat happens after this returns (the fetch's directory may go)."""
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._beating
            self._beating = None
        async with self._lock:
            pass  # a write under way has finished

    async def _beat(self) -> None:
        """Say at once that the claim leads (see ``Fetches._contend``), then keep it live."""
        while True:
            self._claim = Claim(time.time(), self._claim.source, self._claim.size, leading=True)
            try:
                await self._write()
            except Exception as exc:
                log.warning("cannot renew the claim %s: %s", self._path, exc)
            await asyncio.sleep(HEARTBEAT)

    async def _write(self) -> None:
        async with self._lock:
            await self._driver.put_content(self._path, self._claim.encode())


class _Lane:
    """Steps that run one after another, in the order given, each once the one before it ended."""

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    def then(self, step: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        previous = self._last

        async def run() -> None:
            if previous is not None:
                await previous
            await step()

        self._last = asyncio.ensure_future(run())
        return self._last


def _aligned(size: int) -> memoryview:
    """``size`` writable bytes starting on a page boundary (zeroed: the cost of a new one)."""
    memory = bytearray(size + ALIGNMENT)
    start = -ctypes.addressof(ctypes.c_char.from_buffer(memory)) % ALIGNMENT
    return memoryview(memory)[start : start + size]


async def _received(found: BlobDownload, depth: int) -> AsyncIterator[_Batch]:
    """The download in batches of BATCH bytes (the last one shorter), received straight into
    page-aligned memory (the filesystem driver writes such batches directly to disk: see
    ``storage_drivers/direct_writes.py``) by a task of its own, up to ``depth`` batches ahead of
    the consumer, so that the upstream keeps sending while the consumer writes. The stream ends
    early when the upstream did."""
    queue: asyncio.Queue[_Batch | BaseException | None] = asyncio.Queue(depth)
    free: list[memoryview] = []

    async def receive() -> None:
        offset = 0
        try:
            while offset < found.size:
                batch = _Batch(free)
                wanted = min(BATCH, found.size - offset)
                received = await batch.receive(found, wanted)
                if received:
                    await queue.put(batch)
                if received < wanted:
                    break
                offset += received
        except Exception as exc:
            await queue.put(exc)
            return
        await queue.put(None)

    receiving = asyncio.create_task(receive())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
