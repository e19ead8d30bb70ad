"""The compose deployment works as shipped: what Prometheus scrapes is served, health checks exist, names match.

No Docker engine runs here, so the compose file is checked at the level of its relationships; what a
service's command runs is found by running the image's entrypoint on it (``entrypoint.py``). The
Prometheus config is checked by ``promtool`` when it is installed (Debian package ``prometheus``).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from notifyq.api.app import create_app
from notifyq.api.metrics import ApiMetrics, ClusterMetrics
from notifyq.settings import Settings
from notifyq.worker import WorkerMetrics

from .entrypoint import ROOT, command_of

DEPLOY = ROOT / "deploy"
# the compose file reads notifyq.env, which operators copy from the example
ENV_FILES = {"notifyq.env": DEPLOY / "notifyq.env.example"}
CLUSTER_PATH = "/metrics/cluster"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def prometheus() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    return loaded


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """The environment a compose service's container gets: its env files, then ``environment``."""
    env: dict[str, str] = {}
    files = service.get("env_file", [])
    for name in [files] if isinstance(files, str) else files:
        for line in ENV_FILES[name].read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return env | {k: str(v) for k, v in environment.items()}


def listens(service: dict[str, Any], tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[str, int], str]:
    """The (host, port) a notifyq service binds for what Prometheus scrapes, and its health check's URL.

    The service's command goes through the image's entrypoint, as in the container; the settings are
    read from the environment the entrypoint gives notifyq.
    """
    argv, env, health_url = command_of(tmp, service["command"], env_of(service))
    for key in [k for k in env if k.startswith(("NOTIFYQ_API__", "NOTIFYQ_WORKER__METRICS_"))]:
        monkeypatch.setenv(key, env[key])
    settings = Settings()
    if argv[0] == "api":
        options = dict(zip(argv[1::2], argv[2::2], strict=True))
        return (options.get("--host", settings.api.host), int(options.get("--port", settings.api.port))), health_url
    assert argv[0] == "worker", argv
    assert settings.worker.metrics_port is not None, "the worker serves no metrics: set NOTIFYQ_WORKER__METRICS_PORT"
    return (settings.worker.metrics_host, settings.worker.metrics_port), health_url


def scrape_targets() -> list[tuple[str, str, str, int]]:
    """(job, metrics path, host, port) of every target in prometheus.yml."""
    out = []
    for job in prometheus()["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.partition(":")
                out.append((job["job_name"], path, host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            out += [(job["job_name"], path, name, int(dns["port"])) for name in dns["names"]]
    return out


def test_every_scraped_target_is_a_service_that_binds_its_port_on_every_interface(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose()["services"]
    targets = scrape_targets()
    assert {host for _, _, host, _ in targets} == {"api", "worker"}
    for job, _path, host, port in targets:
        assert host in services, f"{job} scrapes {host}, which compose.yaml does not run"
        with monkeypatch.context() as patched:
            bound, _ = listens(services[host], tmp_path_factory.mktemp(host), patched)
        assert bound == ("0.0.0.0", port), f"{job}: {host}:{port}"  # noqa: S104


def test_every_replica_is_scraped_and_the_cluster_gauges_through_one_target() -> None:
    services = compose()["services"]
    jobs = {job["job_name"]: job for job in prometheus()["scrape_configs"]}
    per_replica = [job for job in jobs.values() if job.get("metrics_path", "/metrics") != CLUSTER_PATH]
    for job in per_replica:  # compose DNS: one A record per replica
        assert job.get("static_configs") is None, f"{job['job_name']} would see one replica of several"
        assert [dns["type"] for dns in job["dns_sd_configs"]] == ["A"]
    replicated = {name for name, s in services.items() if s.get("deploy", {}).get("replicas", 1) > 1}
    assert replicated <= {name for job in per_replica for dns in job["dns_sd_configs"] for name in dns["names"]}
    cluster = [job for job in jobs.values() if job.get("metrics_path") == CLUSTER_PATH]
    assert len(cluster) == 1
    assert [t for s in cluster[0]["static_configs"] for t in s["targets"]] == ["api:8080"]


def test_the_api_serves_each_path_prometheus_scrapes() -> None:
    app = create_app(Settings(), redis_url="redis://127.0.0.1:1/0")  # built, not started: nothing connects
    routes = {route.resource.canonical for route in app.router.routes() if route.method == "GET"}
    assert {path for _, path, host, _ in scrape_targets() if host == "api"} <= routes


def test_every_service_has_a_health_check_on_the_port_it_serves(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose()["services"]
    for name, service in services.items():
        if "build" in service:
            # the image's HEALTHCHECK (docker-entrypoint.sh healthcheck), unless replaced by one like it
            test = service.get("healthcheck", {}).get("test", ["CMD", "docker-entrypoint.sh", "healthcheck"])
            assert test == ["CMD", "docker-entrypoint.sh", "healthcheck"], f"{name}: {test}"
        else:
            test = service.get("healthcheck", {}).get("test") or [None]
            assert test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no health check"
        if service.get("command", [None])[0] in {"api", "worker"}:
            with monkeypatch.context() as patched:
                (_, port), health_url = listens(service, tmp_path_factory.mktemp(name), patched)
            assert health_url == f"http://127.0.0.1:{port}/healthz", name


def test_the_services_start_once_redis_and_postgresql_answer_and_the_schema_is_migrated() -> None:
    services = compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert migrate["restart"] == "no", "a one-shot job"
    for name, service in services.items():
        if service.get("command", [None])[0] in {"api", "worker"}:
            assert service["depends_on"] == {
                "redis": {"condition": "service_healthy"},
                "postgres": {"condition": "service_healthy"},
                "migrate": {"condition": "service_completed_successfully"},
            }, name


def test_every_image_built_here_has_its_build_context() -> None:
    built = {name: s["build"] for name, s in compose()["services"].items() if "build" in s}
    assert {"api", "worker"} <= set(built)
    for name, build in built.items():
        context = DEPLOY / build["context"]
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), f"{name}: no Dockerfile in {context}"
        assert (context / "pyproject.toml").is_file()


def test_promtool_accepts_the_prometheus_config(require_tool: Callable[[str, str], str]) -> None:
    promtool = require_tool("promtool", "prometheus")
    done = subprocess.run(  # noqa: S603 - a fixed command on a file of ours
        [promtool, "check", "config", str(DEPLOY / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _sample_names(registry: CollectorRegistry) -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    return {family.name + suffix for family in registry.collect() for suffix in suffixes[family.type]}


def test_the_dashboard_asks_only_for_metrics_that_exist() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "notifyq-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bnotifyq_[a-z0-9_]+", expr)}
    exported: set[str] = set()
    for metrics in (ApiMetrics(), ClusterMetrics(), WorkerMetrics()):
        exported |= _sample_names(metrics.registry)
    assert used
    assert used <= exported, sorted(used - exported)
