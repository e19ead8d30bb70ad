"""Tools the deploy tests use that come from PyPI (the dev dependencies), not from Debian."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


def _missing(why: str) -> None:
    # CI sets NOTIFYQ_REQUIRE_TOOLS (.ci/run): there a missing tool is a failure, never a skip
    if os.environ.get("NOTIFYQ_REQUIRE_TOOLS"):
        pytest.fail(f"{why}; NOTIFYQ_REQUIRE_TOOLS is set")
    pytest.skip(why)


@pytest.fixture
def require_dev_tool() -> Callable[[str, str], str]:
    """A command a dev dependency installs into the virtual environment (found there even when it is not on PATH)."""

    def find(command: str, package: str) -> str:
        beside = Path(sys.executable).parent / command
        path = str(beside) if beside.is_file() else shutil.which(command)
        if path is None:
            _missing(f"{command} is not installed (PyPI package {package}, a dev dependency: `make install`)")
            raise AssertionError  # pragma: no cover - skip and fail raise
        return path

    return find


@pytest.fixture
def require_dev_module() -> Callable[[str, str], ModuleType]:
    """A module a dev dependency provides."""

    def load(module: str, package: str) -> ModuleType:
        try:
            return importlib.import_module(module)
        except ImportError:
            _missing(f"{module} is not installed (PyPI package {package}, a dev dependency: `make install`)")
            raise AssertionError from None  # pragma: no cover - skip and fail raise

    return load
