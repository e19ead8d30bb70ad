"""The layers as seen from outside: the pure policies load no I/O library, and every package's public
surface (``__all__``) names what it holds. The import contracts themselves are in pyproject.toml
([tool.importlinter]) and run in ``make lint``."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import notifyq

SRC = Path(notifyq.__file__).parent
PACKAGES = sorted(
    ".".join(("notifyq", *init.parent.relative_to(SRC).parts)).removesuffix(".") for init in SRC.rglob("__init__.py")
)
PURE = ["notifyq.segments", "notifyq.classify", "notifyq.statuses", "notifyq.backoff"]
IO_LIBRARIES = ("sqlalchemy", "redis", "aiohttp", "arq")


@pytest.mark.parametrize("module", PURE)
def test_a_pure_policy_loads_no_io_library(module: str) -> None:
    # a fresh interpreter: this test session has loaded every library already
    script = (
        f"import json, sys, {module}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(IO_LIBRARIES)!r})))"
    )
    argv = [sys.executable, "-c", script]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)  # noqa: S603 - our own script
    assert json.loads(out.stdout) == []


def test_every_package_is_found() -> None:
    assert {"notifyq", "notifyq.api", "notifyq.cli", "notifyq.queue", "notifyq.simulator"} <= set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_of_a_package_exists(package: str) -> None:
    module = importlib.import_module(package)
    public = module.__all__
    assert public, f"{package} has an empty __all__"
    assert len(set(public)) == len(public), f"{package} names something twice"
    missing = [name for name in public if not hasattr(module, name)]
    assert missing == []
    assert all(not name.startswith("_") for name in public)


def test_the_top_level_names_load_on_first_use() -> None:
    from notifyq import Client, Producer, Settings  # noqa: PLC0415 - the lazy names are what is tested

    assert (Client.__module__, Producer.__module__, Settings.__module__) == (
        "notifyq.client",
        "notifyq.producer",
        "notifyq.settings",
    )
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = notifyq.Nothing
