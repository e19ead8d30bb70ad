"""The worker's place in the layers: it runs under the operators' commands, and keeps arq's ``Retry`` to itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import notifyq

PACKAGE = Path(notifyq.__file__).parent


def test_the_worker_imports_nothing_of_the_operators_package() -> None:
    # a fresh interpreter: this test session has imported notifyq.cli already
    script = (
        "import sys, notifyq.worker; print(sorted(m for m in sys.modules if m.split('.')[:2] == ['notifyq', 'cli']))"
    )
    argv = [sys.executable, "-c", script]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)  # noqa: S603 - our own script
    assert out.stdout.strip() == "[]"


def test_only_the_job_functions_use_arqs_retry() -> None:
    uses = re.compile(r"^\s*from arq(\.worker)? import .*\bRetry\b|\barq(\.worker)?\.Retry\b", re.MULTILINE)
    found = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if uses.search(path.read_text()))
    assert found == ["worker/jobs.py"]
