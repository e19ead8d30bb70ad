"""deploy/k8s works as shipped: valid for a pinned Kubernetes, and every name, port and setting in it agrees.

The base, the staging overlay and the base with each autoscaling component are rendered by
``kustomize.py`` (no kustomize binary installs here) and validated with ``kubernetes-validate``
against Kubernetes ``K8S_VERSION``'s schemas, strictly (an unknown field is an error); KEDA's
ScaledObject against KEDA's own CRD schema (deploy/k8s/schemas), made as strict with ``jsonschema``.
What a container runs is found by running the image's entrypoint on its arguments (``entrypoint.py``).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession, web
from pydantic import BaseModel

from notifyq.api.app import create_app
from notifyq.api.metrics import ClusterMetrics
from notifyq.cli import commands as cli
from notifyq.settings import Settings
from notifyq.simulator import Simulator, SimulatorConfig, make_app
from notifyq.worker.metrics import WorkerMetrics, serve_metrics

from .entrypoint import ROOT, command_of, image_env, instructions
from .kustomize import Object, containers, identity, image_name, load_documents, render, render_kustomization

K8S = ROOT / "deploy" / "k8s"
# the oldest Kubernetes the manifests are for: preStop's sleep action is there, on by default, since 1.30
K8S_VERSION = "1.33.0"
NAMESPACE = "notifyq"
COMPONENTS = ("keda-autoscaling", "hpa-autoscaling")
SECRET_EXAMPLE = K8S / "base" / "secret.example.yaml"
KEDA_SCHEMA = K8S / "schemas" / "keda-scaledobject-v1alpha1.yaml"
MEMORY = json.loads((ROOT / "bench" / "results" / "details-memory.json").read_text())


def with_component(name: str) -> list[Object]:
    """The base with one component, as an overlay that adds it renders it (docs/deploy.md shows one)."""
    overlay = {
        "namespace": NAMESPACE,
        "resources": [str(K8S / "base")],
        "components": [str(K8S / "components" / name)],
    }
    return render_kustomization(overlay, K8S)


RENDERED: dict[str, Callable[[], list[Object]]] = {
    "base": lambda: render(K8S / "base"),
    "staging": lambda: render(K8S / "overlays" / "staging"),
    **{name: partial(with_component, name) for name in COMPONENTS},
}


@pytest.fixture(params=list(RENDERED))
def rendered(request: pytest.FixtureRequest) -> list[Object]:
    """Every set of objects the repository can be applied as."""
    return RENDERED[request.param]()


def of_kind(objects: list[Object], kind: str) -> list[Object]:
    return [obj for obj in objects if obj["kind"] == kind]


def pod_owners(objects: list[Object]) -> list[Object]:
    return [obj for obj in objects if obj["kind"] in {"Deployment", "Job", "CronJob"}]


def pod_template(obj: Object) -> Object:
    """The pod template of a Deployment or a Job, or of the Jobs a CronJob makes."""
    template: Object = (obj["spec"]["jobTemplate"] if obj["kind"] == "CronJob" else obj)["spec"]["template"]
    return template


def pod_spec(obj: Object) -> Object:
    spec: Object = pod_template(obj)["spec"]
    return spec


def role_of(obj: Object) -> str:
    """The entrypoint role the object's one container plays."""
    (container,) = pod_spec(obj)["containers"]
    role: str = container["args"][0]
    return role


def deployment(objects: list[Object], role: str) -> Object:
    (found,) = [obj for obj in of_kind(objects, "Deployment") if role_of(obj) == role]
    return found


def secret_example() -> Object:
    (secret,) = load_documents(SECRET_EXAMPLE)
    return secret


def container_env(objects: list[Object], container: Object) -> dict[str, str]:
    """The environment a container gets: its envFrom (the example Secret for the Secret), then its env."""
    configmaps = {obj["metadata"]["name"]: obj["data"] for obj in of_kind(objects, "ConfigMap")}
    secret = secret_example()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= configmaps[source["configMapRef"]["name"]]
        else:
            assert source["secretRef"]["name"] == secret["metadata"]["name"], "the Secret secret.example.yaml shows"
            env |= secret["stringData"]
    return env | {item["name"]: item["value"] for item in container.get("env", [])}


def is_setting(name: str) -> bool:
    """Whether NOTIFYQ_... names a field of Settings (pydantic-settings ignores names that do not)."""
    if not name.startswith("NOTIFYQ_"):
        return False
    model: type[BaseModel] = Settings
    *groups, leaf = name.removeprefix("NOTIFYQ_").lower().split("__")
    for group in groups:
        field = model.model_fields.get(group)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return False
        model = field.annotation
    return leaf in model.model_fields


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings() as a process with exactly ``env`` reads them."""
    with monkeypatch.context() as patched:
        for key in [k for k in os.environ if k.startswith("NOTIFYQ_")]:
            patched.delenv(key)
        for key, value in env.items():
            patched.setenv(key, value)
        return Settings()


def port_number(container: Object, port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return int(number)


def probes(container: Object) -> Iterator[Object]:
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if kind in container:
            yield container[kind]


def quantity(value: str) -> float:
    """A Kubernetes quantity in bytes (memory) or cores (cpu)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 1e-3, "": 1}
    parsed = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", value)
    assert parsed is not None, value
    return float(parsed.group(1)) * units[parsed.group(2)]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def strict(schema: Any) -> Any:
    """An OpenAPI schema of a CRD with ``additionalProperties: false`` where it lists the properties.

    The API server prunes fields a CRD's schema does not know, silently: a misspelt field would
    be dropped, not refused. Refusing it here is what ``kubernetes-validate --strict`` does for
    Kubernetes' own kinds.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@pytest.fixture
def keda_validator(require_dev_module: Callable[[str, str], ModuleType]) -> Any:
    jsonschema = require_dev_module("jsonschema", "jsonschema")
    schema = strict(yaml.safe_load(KEDA_SCHEMA.read_text()))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


# ---- valid for Kubernetes and for KEDA ----------------------------------------------------------------


def test_every_object_is_valid_for_the_pinned_kubernetes(
    rendered: list[Object], require_dev_module: Callable[[str, str], ModuleType], keda_validator: Any
) -> None:
    kubernetes_validate = require_dev_module("kubernetes_validate", "kubernetes-validate")
    assert rendered
    for obj in rendered:
        if obj["apiVersion"].startswith("keda.sh/"):
            errors = [e.message for e in keda_validator.iter_errors(obj)]
            assert not errors, f"{identity(obj)}: {errors}"
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_the_secret_example_is_valid_and_is_never_applied(
    require_dev_module: Callable[[str, str], ModuleType],
) -> None:
    kubernetes_validate = require_dev_module("kubernetes_validate", "kubernetes-validate")
    kubernetes_validate.validate(secret_example(), K8S_VERSION, strict=True)
    for make in RENDERED.values():
        assert not of_kind(make(), "Secret"), "the real Secret is created by hand (docs/deploy.md), never applied"
    text = SECRET_EXAMPLE.read_text()
    assert "kubectl -n notifyq create secret generic notifyq-secrets" in text
    for key, value in secret_example()["stringData"].items():
        if key != "NOTIFYQ_TWILIO__ACCOUNTS":
            assert "FAKE" in value, f"{key}: clearly fake"
    accounts = json.loads(secret_example()["stringData"]["NOTIFYQ_TWILIO__ACCOUNTS"])
    assert all("FAKE" in v for a in accounts.values() for k, v in a.items() if k in {"auth_token", "api_key_secret"})


def test_kedas_schema_refuses_a_misspelt_field(keda_validator: Any) -> None:
    (scaled,) = load_documents(K8S / "components" / "keda-autoscaling" / "scaledobject.yaml")
    assert not list(keda_validator.iter_errors(scaled))
    misspelt = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 4}}
    assert [e.message for e in keda_validator.iter_errors(misspelt)], "maxReplicas is the HPA's word, not KEDA's"
    bad_type = {**scaled, "spec": {**scaled["spec"], "minReplicaCount": "two"}}
    assert list(keda_validator.iter_errors(bad_type))


def test_the_keda_schema_is_kedas_with_its_licence() -> None:
    header = KEDA_SCHEMA.read_text().split("\ndescription:", 1)[0]
    assert "github.com/kedacore/keda at tag v2" in header
    assert "Apache License 2.0" in header
    assert "Apache License" in (K8S / "schemas" / "KEDA-LICENSE").read_text()


# ---- names agree --------------------------------------------------------------------------------------


def test_every_namespaced_object_is_in_the_namespace(rendered: list[Object]) -> None:
    (namespace,) = of_kind(rendered, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, identity(obj)


def test_selectors_select_their_own_pods_and_only_those(rendered: list[Object]) -> None:
    owners = of_kind(rendered, "Deployment")
    templates = {identity(d): pod_template(d)["metadata"]["labels"] for d in pod_owners(rendered)}
    for owner in owners:
        assert selects(owner["spec"]["selector"]["matchLabels"], templates[identity(owner)]), identity(owner)
        for spread in pod_spec(owner).get("topologySpreadConstraints", []):
            assert spread["labelSelector"]["matchLabels"] == owner["spec"]["selector"]["matchLabels"]
    selectors = [(obj, obj["spec"]["selector"]) for obj in of_kind(rendered, "Service")]
    selectors += [(obj, obj["spec"]["selector"]["matchLabels"]) for obj in of_kind(rendered, "PodDisruptionBudget")]
    selectors += [(obj, obj["spec"]["podSelector"]["matchLabels"]) for obj in of_kind(rendered, "NetworkPolicy")]
    for obj, selector in selectors:
        chosen = [key for key, labels in templates.items() if selects(selector, labels)]
        assert len(chosen) == 1, f"{identity(obj)} selects {chosen}"
    for pdb in of_kind(rendered, "PodDisruptionBudget"):
        assert [d for d in owners if identity(d)[1] == pdb["metadata"]["name"]], "named after its Deployment"


def test_every_service_port_is_a_port_its_pods_serve(rendered: list[Object]) -> None:
    for service in of_kind(rendered, "Service"):
        (owner,) = [
            d
            for d in of_kind(rendered, "Deployment")
            if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        (container,) = pod_spec(owner)["containers"]
        for port in service["spec"]["ports"]:
            assert port_number(container, port["targetPort"]) == port["port"], identity(service)


def test_every_env_var_the_manifests_set_is_a_notifyq_setting_that_reads(
    rendered: list[Object], monkeypatch: pytest.MonkeyPatch
) -> None:
    for owner in pod_owners(rendered):
        for container in containers(owner):
            env = container_env(rendered, container)
            unknown = sorted(name for name in env if not is_setting(name))
            assert not unknown, f"{identity(owner)}: no such setting {unknown}"
            settings_of(env, monkeypatch)  # and the values, the example Secret's included, are valid


def test_the_images_are_the_one_the_overlay_names() -> None:
    images = {c["image"] for obj in render(K8S / "base") for c in containers(obj)}
    assert images == {"notifyq"}, "the base names the image; an overlay says where it is"
    staging = yaml.safe_load((K8S / "overlays" / "staging" / "kustomization.yaml").read_text())
    (image,) = staging["images"]
    assert image["name"] == "notifyq"
    rendered = {c["image"] for obj in render(K8S / "overlays" / "staging") for c in containers(obj)}
    assert rendered == {f"{image['newName']}:{image['newTag']}"}
    assert image_name(next(iter(rendered))) == image["newName"]


# ---- what each container runs, and the ports it serves ------------------------------------------------


def _simulator_default_port() -> int:
    (param,) = [p for p in cli.simulator.params if p.name == "port"]
    return int(param.default)


def _routes(role: str) -> set[str]:
    """The GET paths a role serves (the metrics server of the worker and the applier is checked running, below)."""
    if role == "api":
        app = create_app(Settings(), redis_url="redis://127.0.0.1:1/0")  # built, not started: nothing connects
    elif role == "simulator":
        app = make_app(Simulator(SimulatorConfig()))
    else:
        return {"/metrics", "/healthz"}
    return {route.resource.canonical for route in app.router.routes() if route.method == "GET" and route.resource}


def test_each_container_listens_where_its_ports_probes_and_annotations_say(
    rendered: list[Object], tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for owner in of_kind(rendered, "Deployment"):
        (container,) = pod_spec(owner)["containers"]
        env = container_env(rendered, container)
        argv, started_env, health_url = command_of(tmp_path_factory.mktemp(role_of(owner)), container["args"], env)
        settings = settings_of(started_env, monkeypatch)
        options = dict(zip(argv[1::2], argv[2::2], strict=False))
        if argv[0] == "api":
            host, port = options.get("--host", settings.api.host), int(options.get("--port", settings.api.port))
        elif argv[0] == "worker":
            assert settings.worker.metrics_port is not None
            host, port = settings.worker.metrics_host, settings.worker.metrics_port
        elif argv[0] == "simulator":
            host, port = options["--host"], int(options.get("--port", _simulator_default_port()))
        else:
            assert argv[0] == "applier", argv
            assert settings.applier.metrics_port is not None
            host, port = settings.applier.metrics_host, settings.applier.metrics_port
        assert host == "0.0.0.0", f"{identity(owner)} must be reachable from the kubelet and Prometheus"  # noqa: S104
        assert [p["containerPort"] for p in container["ports"]] == [port], identity(owner)
        assert health_url.startswith(f"http://127.0.0.1:{port}/"), "the image's HEALTHCHECK asks the same port"
        served = _routes(argv[0])
        assert list(probes(container)), f"{identity(owner)} has no probes"
        for probe in probes(container):
            assert port_number(container, probe["httpGet"]["port"]) == port, identity(owner)
            assert probe["httpGet"]["path"] in served, f"{identity(owner)}: {probe['httpGet']['path']}"
        annotations = owner["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            assert int(annotations["prometheus.io/port"]) == port
            assert annotations["prometheus.io/path"] in served


async def test_the_workers_metrics_server_serves_what_its_probes_ask() -> None:
    worker = deployment(render(K8S / "base"), "worker")
    (container,) = pod_spec(worker)["containers"]

    async def healthy() -> bool:
        return True

    runner = await serve_metrics(WorkerMetrics().registry, "127.0.0.1", 0, healthy)
    try:
        site = runner.addresses[0]
        async with ClientSession() as http:
            for probe in probes(container):
                async with http.get(f"http://127.0.0.1:{site[1]}{probe['httpGet']['path']}") as answer:
                    assert answer.status == 200, probe
    finally:
        await runner.cleanup()


def test_the_purge_cronjob_runs_notifyq_purge_one_at_a_time_with_a_retention_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = render(K8S / "base")
    (cron,) = of_kind(base, "CronJob")
    (container,) = pod_spec(cron)["containers"]
    assert container["command"] == ["notifyq"], "an operator's command: not one of the entrypoint's roles"
    name, *options = container["args"]
    assert name == "purge"
    cli.main.commands[name].make_context(name, options)  # parsed as the command parses them: no unknown option
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod_spec(cron)["restartPolicy"] == "Never"
    assert cron["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    # without --older-than, purge needs the setting: the ConfigMap gives it
    assert "--older-than" not in container["args"]
    assert settings_of(container_env(base, container), monkeypatch).retention.days is not None


def test_the_migration_job_runs_migrate_once(tmp_path: Path) -> None:
    (job,) = of_kind(render(K8S / "base"), "Job")
    (container,) = pod_spec(job)["containers"]
    argv, _, _ = command_of(tmp_path, container["args"], {})
    assert argv == ["migrate", "--wait"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["activeDeadlineSeconds"] > 0, "--wait waits for the database; the Job does not wait forever"


def test_the_api_leaves_the_callbacks_to_the_appliers_when_they_run(rendered: list[Object]) -> None:
    appliers = [d for d in of_kind(rendered, "Deployment") if role_of(d) == "applier"]
    (api,) = pod_spec(deployment(rendered, "api"))["containers"]
    assert ("--no-applier" in api["args"]) == bool(appliers)


# ---- stopping, security, resources ---------------------------------------------------------------------


def test_a_worker_is_given_its_whole_stop_timeout_and_a_margin(
    rendered: list[Object], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = deployment(rendered, "worker")
    (container,) = pod_spec(worker)["containers"]
    settings = settings_of(container_env(rendered, container), monkeypatch)
    assert "NOTIFYQ_WORKER__STOP_TIMEOUT_S" in container_env(rendered, container), "set where the grace period is"
    assert pod_spec(worker)["terminationGracePeriodSeconds"] >= settings.worker.stop_timeout_s + 5
    assert "lifecycle" not in container, "SIGTERM drains a worker (docs/operations.md, Stopping)"


def test_the_api_is_given_its_pre_stop_wait_and_aiohttps_shutdown_timeout(rendered: list[Object]) -> None:
    api = deployment(rendered, "api")
    (container,) = pod_spec(api)["containers"]
    shutdown = inspect.signature(web.run_app).parameters["shutdown_timeout"].default
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod_spec(api)["terminationGracePeriodSeconds"] >= sleep + shutdown


def test_every_pod_runs_as_the_images_user_without_privileges_on_a_read_only_root(rendered: list[Object]) -> None:
    (user,) = [arg for instruction, arg in instructions() if instruction == "USER"]
    uid = int(user.split(":")[0])
    for owner in pod_owners(rendered):
        pod = pod_spec(owner)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid, identity(owner)
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False, "no pod talks to the Kubernetes API"
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in containers(owner):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            data_dir = container_env(rendered, container).get("NOTIFYQ_DATA_DIR", image_env()["NOTIFYQ_DATA_DIR"])
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get(data_dir) in empty_dirs, f"{identity(owner)}: NOTIFYQ_DATA_DIR is writable"


def test_every_container_asks_for_cpu_and_memory_and_is_held_to_a_memory_limit(rendered: list[Object]) -> None:
    for owner in pod_owners(rendered):
        for container in containers(owner):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), identity(owner)
            assert quantity(resources["limits"]["memory"]) >= quantity(resources["requests"]["memory"])
            # no CPU limit: throttling would stall the event loop past pacing's tolerance (docs/deploy.md)
            assert "cpu" not in resources["limits"], identity(owner)


@pytest.mark.parametrize(("role", "peak"), [("api", "api_vmhwm_mb"), ("worker", "worker_vmhwm_mb")])
def test_memory_limits_leave_half_again_above_the_measured_peak(role: str, peak: str) -> None:
    (container,) = pod_spec(deployment(render(K8S / "base"), role))["containers"]
    assert quantity(container["resources"]["limits"]["memory"]) >= 1.5 * MEMORY[peak] * 1e6
    assert quantity(container["resources"]["requests"]["memory"]) >= MEMORY[peak] * 1e6


# ---- staging -------------------------------------------------------------------------------------------


def test_staging_sends_to_the_simulator_and_the_simulator_calls_the_api_back(monkeypatch: pytest.MonkeyPatch) -> None:
    staging = render(K8S / "overlays" / "staging")
    (config,) = of_kind(staging, "ConfigMap")
    settings = settings_of(config["data"], monkeypatch)

    def service_url(role: str) -> str:
        target = deployment(staging, role)["spec"]["template"]["metadata"]["labels"]
        (service,) = [s for s in of_kind(staging, "Service") if selects(s["spec"]["selector"], target)]
        (port,) = service["spec"]["ports"]
        return f"http://{service['metadata']['name']}:{port['port']}"

    assert settings.twilio.base_url == service_url("simulator")
    assert settings.public_base_url == service_url("api")
    (base_config,) = of_kind(render(K8S / "base"), "ConfigMap")
    assert "NOTIFYQ_TWILIO__BASE_URL" not in base_config["data"], "the base sends to Twilio"
    defaults = {p.name: p.default for p in cli.simulator.params}
    text = (K8S / "overlays" / "staging" / "config.yaml").read_text()
    assert f"account_sid {defaults['account_sid']}" in text
    assert f"auth_token {defaults['auth_token']}" in text


# ---- autoscaling and scraping --------------------------------------------------------------------------


def _autoscaler(name: str) -> Object:
    rendered = with_component(name)
    kind = "ScaledObject" if name.startswith("keda") else "HorizontalPodAutoscaler"
    (scaler,) = of_kind(rendered, kind)
    worker = deployment(rendered, "worker")
    ref = scaler["spec"]["scaleTargetRef"]
    assert (ref.get("apiVersion"), ref.get("kind"), ref["name"]) == (
        "apps/v1",
        "Deployment",
        worker["metadata"]["name"],
    )
    assert "replicas" not in worker["spec"], "the autoscaler owns the count; apply must not reset it"
    return scaler


def test_both_autoscalers_scale_the_workers_on_the_deliveries_due_now_within_the_same_bounds() -> None:
    keda, hpa = _autoscaler("keda-autoscaling"), _autoscaler("hpa-autoscaling")
    assert "replicas" in deployment(render(K8S / "base"), "worker")["spec"], "without an autoscaler"
    gauge = ClusterMetrics().queue_deliveries
    (trigger,) = keda["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == f'sum({gauge._name}{{when="due"}})'
    assert "when" in gauge._labelnames
    metric = hpa["spec"]["metrics"][0]["external"]
    assert metric["metric"] == {"name": gauge._name, "selector": {"matchLabels": {"when": "due"}}}
    assert (keda["spec"]["minReplicaCount"], keda["spec"]["maxReplicaCount"]) == (
        hpa["spec"]["minReplicas"],
        hpa["spec"]["maxReplicas"],
    )
    assert trigger["metadata"]["threshold"] == metric["target"]["averageValue"]
    assert keda["spec"]["minReplicaCount"] >= 2, "the reconciler's cron runs in the workers"


def test_the_adapter_rule_serves_the_metric_the_hpa_asks_for() -> None:
    (rule,) = yaml.safe_load((K8S / "prometheus" / "adapter-rules.yaml").read_text())["externalRules"]
    metric = _autoscaler("hpa-autoscaling")["spec"]["metrics"][0]["external"]["metric"]
    assert rule["name"]["as"] == metric["name"]
    assert rule["seriesQuery"].startswith(metric["name"] + "{")
    assert rule["metricsQuery"] == "sum(<<.Series>>{<<.LabelMatchers>>})", "the HPA's selector goes into the query"


def test_the_maximum_replica_count_is_the_one_docs_deploy_derives() -> None:
    docs = (ROOT / "docs" / "deploy.md").read_text()
    (in_flight,) = {int(n.replace(",", "")) for n in re.findall(r"C = ([0-9,]+) requests in flight", docs)}
    per_worker = Settings().worker.max_jobs
    assert f"J = {per_worker}" in docs
    maximum = _autoscaler("keda-autoscaling")["spec"]["maxReplicaCount"]
    assert maximum == math.ceil(in_flight / per_worker)


def test_prometheus_scrapes_each_pod_and_the_cluster_gauges_through_one_service() -> None:
    config = yaml.safe_load((K8S / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    pods = jobs["notifyq-pods"]
    assert [sd["role"] for sd in pods["kubernetes_sd_configs"]] == ["pod"]
    assert [sd["namespaces"]["names"] for sd in pods["kubernetes_sd_configs"]] == [[NAMESPACE]]
    relabelled = {tuple(r.get("source_labels", [])) for r in pods["relabel_configs"]}
    for annotation in ("scrape", "path"):
        assert (f"__meta_kubernetes_pod_annotation_prometheus_io_{annotation}",) in relabelled
    cluster = jobs["notifyq-cluster"]
    assert cluster["metrics_path"] == "/metrics/cluster"
    assert "/metrics/cluster" in _routes("api")
    assert [sd["role"] for sd in cluster["kubernetes_sd_configs"]] == ["service"], "one target per Service port"
    (keep,) = [r for r in cluster["relabel_configs"] if r.get("action") == "keep"]
    service_name, port_name = keep["regex"].split(";")
    base = render(K8S / "base")
    (service,) = [s for s in of_kind(base, "Service") if s["metadata"]["name"] == service_name]
    assert [p["name"] for p in service["spec"]["ports"]] == [port_name]
    assert selects(service["spec"]["selector"], deployment(base, "api")["spec"]["template"]["metadata"]["labels"])
    assert service["spec"].get("clusterIP") != "None", "a headless Service would be a target per pod"
