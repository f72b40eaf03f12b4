"""boto3 clients whose every call ends within a bounded time, however the S3 server misbehaves.

A hung server (one that accepts connections and never answers) would otherwise hold a
request for botocore's default 60 s read timeout per attempt, five attempts in all. Each
kind of call gets a budget instead:

- ``QUICK`` for calls that move little data (HEAD, GET and PUT of links and manifests,
  listings, single deletes, starting an upload): a stalled server fails them within
  ``QUICK.deadline`` seconds, well inside what a pushing or pulling client waits for.
- ``BULK`` for calls that move or copy up to a part's worth of data, or make the server do
  so (part uploads, the pending tail, server-side copies, completing an upload, batch
  deletes, streamed blob reads): they may run as long as bytes keep flowing, but an
  attempt that makes no progress is abandoned, and retries stop by ``deadline``.

Measured against a SIGSTOPped radosgw: HEAD and small GETs fail after 10 s, a 10 MiB part
upload after about 60 s, a blob read stalled mid-body after about 90 s (its one resume
included); a call in flight when the server wakes up completes normally.

The values are fixed here: Distribution's ``storage.s3`` has no timeout settings to mirror.
botocore itself retries nothing; ``_RetryWithinDeadline`` decides, for the failures the
driver treats as transient (errors.is_transient), starting a retry only if it could still
time out before the call's deadline. What is left surfaces as StorageUnavailable (503).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import JSONFileLoader, Loader

from .errors import TRANSIENT_TRANSPORT, is_transient
from .settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class CallBudget:
    """How long one S3 call may take, all attempts included (seconds)."""

    connect: float
    """To open a TCP connection; urllib3 also waits this long, no more, for the server to
    take each piece of a request body."""
    read: float
    """Without a byte of the answer from the server."""
    deadline: float
    """From the call's start: no retry starts that a stalled server could drag past this."""
    attempts: int = 5

    @property
    def worst_attempt(self) -> float:
        return self.connect + self.read


QUICK = CallBudget(connect=3, read=5, deadline=15)
"""A small call fails within 15 s; a stalled server gets two 5 s chances."""
BULK = CallBudget(connect=10, read=30, deadline=100)
"""A transfer fails within 100 s of no progress. A busy server may pause reading a part for
seconds, and take many to store it or copy between parts; past 10 s and 30 s it is stuck."""

BACKOFF_BASE = 0.5
BACKOFF_MAX = 8.0
_STARTED = "dockyard-started"


def _backoff(attempt: int) -> float:
    """Full jitter: up to 0.5 s after the first attempt, then 1 s, 2 s, 4 s, 8 s at most."""
    return random.random() * min(BACKOFF_BASE * 2.0 ** (attempt - 1), BACKOFF_MAX)  # noqa: S311


def retry_delay(budget: CallBudget, attempts: int, started: float) -> float | None:
    """Seconds to wait before retrying a transient failure after ``attempts`` attempts of a
    call started at ``started`` (monotonic), or None when the budget allows no more."""
    if attempts >= budget.attempts:
        return None
    delay = _backoff(attempts)
    if time.monotonic() - started + delay + budget.worst_attempt > budget.deadline:
        return None
    return delay


class _RetryWithinDeadline:
    """botocore event handlers: stamp each call's start; decide each retry and its delay."""

    def __init__(self, budget: CallBudget) -> None:
        self._budget = budget

    def started(self, context: dict[str, Any], **_: Any) -> None:
        context[_STARTED] = time.monotonic()

    def delay(
        self,
        attempts: int,
        response: tuple[Any, dict[str, Any]] | None,
        caught_exception: Exception | None,
        request_dict: dict[str, Any],
        **_: Any,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None for no retry."""
        if caught_exception is not None:
            transient = isinstance(caught_exception, TRANSIENT_TRANSPORT)
        elif response is not None:
            http_response, parsed = response
            code = str(parsed.get("Error", {}).get("Code", ""))
            transient = is_transient(code, int(http_response.status_code))
        else:
            transient = False
        if not transient:
            return None
        return retry_delay(self._budget, attempts, request_dict["context"].get(_STARTED, time.monotonic()))


class _PlainJSONFiles(JSONFileLoader):
    """botocore's data files (the S3 service model, the endpoint tables) parsed into plain dicts
    instead of OrderedDicts: the same order, and about 4 MiB less in every worker."""

    def load_file(self, file_path: str) -> Any:
        for extension, opener in ((".json", open), (".json.gz", gzip.open)):
            if os.path.isfile(file_path + extension):
                with opener(file_path + extension, "rb") as file:
                    return json.loads(file.read())
        return None


def new_session(settings: S3Settings) -> boto3.session.Session:
    """A boto3 session with the settings' credentials and region, its data files read lean."""
    core = botocore.session.Session()
    data_path = core.get_config_variable("data_path")  # AWS_DATA_PATH, as botocore reads it
    extra = (
        [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else []
    )
    core.register_component("data_loader", Loader(extra_search_paths=extra, file_loader=_PlainJSONFiles()))
    return boto3.session.Session(
        aws_access_key_id=settings.accesskey,
        aws_secret_access_key=settings.secretkey,
        region_name=settings.region,
        botocore_session=core,
    )


def make_client(
    session: boto3.session.Session, settings: S3Settings, endpoint: str | None, budget: CallBudget
) -> S3Client:
    config = Config(
        signature_version="s3v4" if settings.v4auth else "s3",
        s3={
            "addressing_style": "path" if settings.forcepathstyle else "auto",
            "use_accelerate_endpoint": settings.accelerate,
        },
        retries={"mode": "standard", "total_max_attempts": 1},  # _RetryWithinDeadline retries
        connect_timeout=budget.connect,
        read_timeout=budget.read,
        max_pool_connections=64,
        use_dualstack_endpoint=settings.usedualstack,
        use_fips_endpoint=settings.usefipsendpoint,
        user_agent_extra=settings.useragent,
        # S3-compatible servers (Ceph, older MinIO) reject the newer default checksum trailers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = session.client(
        "s3",
        endpoint_url=settings.endpoint_url(endpoint),
        use_ssl=settings.secure,
        verify=not settings.skipverify,
        config=config,
    )
    retry = _RetryWithinDeadline(budget)
    # The stubs type every handler as returning None; needs-retry handlers return the delay.
    client.meta.events.register("before-call.s3", retry.started)
    client.meta.events.register("needs-retry.s3", cast("Callable[..., None]", retry.delay))
    return client


@dataclass(frozen=True)
class S3Clients:
    """One client per budget: botocore's timeouts are per client, not per call."""

    quick: S3Client
    bulk: S3Client

    @classmethod
    def create(
        cls,
        session: boto3.session.Session,
        settings: S3Settings,
        endpoint: str | None,
        quick: CallBudget = QUICK,
        bulk: CallBudget = BULK,
    ) -> S3Clients:
        return cls(
            make_client(session, settings, endpoint, quick), make_client(session, settings, endpoint, bulk)
        )

    def close(self) -> None:
        self.quick.close()
        self.bulk.close()
