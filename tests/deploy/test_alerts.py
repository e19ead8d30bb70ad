"""The alerts (deploy/prometheus/alerts.yml): valid, loaded where Prometheus runs, proven by promtool's unit tests,
built only on metrics notifyq exports, and each with a runbook section.

``promtool`` comes with Debian's ``prometheus`` package: these tests skip without it, and fail in CI, which
installs it (``.ci/tools``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from notifyq.api.metrics import ApiMetrics, ClusterMetrics
from notifyq.worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yml")
RUNBOOK = ROOT / "docs" / "runbook.md"


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def _promtool(require_tool: Callable[[str, str], str], *args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool", "prometheus")
    return subprocess.run([promtool, *args], capture_output=True, text=True, check=False, cwd=ROOT)  # noqa: S603


def test_promtool_accepts_the_alert_rules(require_tool: Callable[[str, str], str]) -> None:
    done = _promtool(require_tool, "check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_alert_fires_when_it_should_and_not_when_it_should_not(require_tool: Callable[[str, str], str]) -> None:
    done = _promtool(require_tool, "test", "rules", str(UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    # every alert has a case where it fires and one where it stays quiet
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules()}
    assert fires == alerts, sorted(alerts ^ fires)
    assert quiet == alerts, sorted(alerts ^ quiet)


def _exported(registry: CollectorRegistry) -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    return {family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]}


def test_every_metric_an_alert_reads_is_exported() -> None:
    used = {name for rule in _rules() for name in re.findall(r"\bnotifyq_[a-z0-9_]+", rule["expr"])}
    exported: set[str] = set()
    for metrics in (ApiMetrics(), ClusterMetrics(), WorkerMetrics()):
        exported |= _exported(metrics.registry)
    assert len(used) >= 8
    assert used <= exported, sorted(used - exported)


def test_prometheus_loads_the_alerts_in_compose_and_on_kubernetes() -> None:
    # compose: the config names the file relative to itself, and the container has it at that path
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (rules,) = config["rule_files"]
    assert (DEPLOY / rules).resolve() == ALERTS
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = [m.rsplit(":", 1)[0] if m.endswith(":ro") else m for m in compose["services"]["prometheus"]["volumes"]]
    assert f"./prometheus/alerts.yml:/etc/prometheus/{rules}" in mounts
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["services"]["prometheus"]["command"]
    # Kubernetes: the jobs to merge name alerts.yml beside them, which is the same file
    k8s = DEPLOY / "k8s" / "prometheus"
    (k8s_rules,) = yaml.safe_load((k8s / "prometheus.yml").read_text())["rule_files"]
    assert (k8s / k8s_rules).read_text() == ALERTS.read_text()


def test_each_alert_has_a_runbook_section() -> None:
    headings = {line.removeprefix("## ").strip() for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    for rule in _rules():
        assert rule["alert"] in headings, rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/runbook.md#{rule['alert'].lower()}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
