"""An unexpected exception is answered 500 UNKNOWN: logged with its traceback, never sent."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from registry.app import create_app
from registry.config import load_config
from storage_drivers.inmemory import InMemoryDriver


class BrokenDriver(InMemoryDriver):
    async def _get_content(self, path: str) -> bytes:
        raise RuntimeError("secret internal detail")


async def test_an_unexpected_error_is_a_500_with_the_spec_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_file = tmp_path / "config.yml"
    config_file.write_text("version: 0.1\nstorage: {inmemory: {}}\n")
    config = load_config(config_file, {})
    app = create_app(config, driver=BrokenDriver())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as client:
        with caplog.at_level(logging.ERROR, logger="registry"):
            response = await client.get("/v2/team/app/manifests/latest")
            again = await client.get("/v2/")
    assert response.status_code == 500
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"
    assert response.json() == {"errors": [{"code": "UNKNOWN", "message": "unknown error"}]}
    assert "secret internal detail" not in response.text
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]  # the traceback goes to the log
    assert [str(error) for error in logged] == ["secret internal detail"]
    assert again.status_code == 200
