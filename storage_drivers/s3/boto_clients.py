"""boto3 clients for endpoints the signed path (lean.py) does not serve, each call within its
budget (clients.py).

Only virtual-hosted, accelerated or default AWS endpoints and anonymous access need them: a
driver on a path-style endpoint with credentials never imports this module, and so never boto3
(about 10 MiB per process for the S3 service model alone). botocore itself retries nothing;
``_RetryWithinDeadline`` decides, with ``retry_delay``.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import JSONFileLoader, Loader

from .clients import CallBudget, retry_delay
from .errors import TRANSIENT_TRANSPORT, is_transient
from .settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_STARTED = "dockyard-started"


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
