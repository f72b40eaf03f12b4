"""Every lifecycle and storage module can be the first one a process imports: storage does not
import the lifecycle's push guard (it is given one), so no import order runs into a cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.registry import PROJECT

MODULES = sorted(
    ".".join(path.relative_to(PROJECT).with_suffix("").parts)
    for package in ("registry/lifecycle", "registry/storage")
    for path in (Path(PROJECT) / package).glob("*.py")
    if path.name != "__init__.py"
)


@pytest.mark.parametrize("module", MODULES)
def test_the_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_guard_is_among_them() -> None:
    assert "registry.lifecycle.guard" in MODULES
