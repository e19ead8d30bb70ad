"""schemathesis against the OpenAPI document a running stack serves: cases per operation and every failure.

Each operation gets positive cases (data the document allows) and negative ones (data it refuses);
the Twilio-facing routes only negative ones, since a valid request needs a signature. Every answer is
checked: no 5xx but a documented 503, the status, content type, headers and body as documented, and
no 2xx for a request that breaks the document.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SEED: Final = 22
# the bearer token is sent with every request: a case's data reaches the handler, not only the auth guard
CONFIG: Final = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})


def _no_undocumented_5xx(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """A 5xx is a failure unless the operation documents it (the database's 503)."""
    if response.status_code == 503 and "503" in case.operation.definition.raw.get("responses", {}):
        return None
    return not_a_server_error(ctx, response, case)


CHECKS: Final = [
    _no_undocumented_5xx,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass
class Tally:
    """What the run sent to each operation, and what went wrong."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def report(self) -> str:
        width = max(map(len, self.statuses), default=0)
        lines = [f"{'operation':<{width}}  {'positive':>8}  {'negative':>8}  statuses"]
        for label in sorted(self.statuses):
            pos, neg = self.cases[f"{label} positive"], self.cases[f"{label} negative"]
            answered = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses[label].items()))
            lines.append(f"{label:<{width}}  {pos:>8}  {neg:>8}  {answered}")
        lines.append(f"{'total':<{width}}  {sum(self.cases.values()):>8} cases")
        return "\n".join(lines)


def modes_for(path: str) -> list[GenerationMode]:
    """Twilio signs what it sends: only a request that breaks the document can be made without its key."""
    if path.startswith("/twilio/"):
        return [GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def fuzz(api_url: str, doc: dict[str, Any], token: str, examples: int, known: dict[str, str] | None = None) -> Tally:
    """Run ``examples`` cases of each mode against each operation of ``doc`` at ``api_url``.

    ``known`` names path parameters' values that exist (a batch id, an account's name): an operation
    with such parameters also gets positive cases with them, which reach past the 404.
    """
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(doc)), config=CONFIG)
    tally = Tally()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                tally.failures.append(f"the document: {result.err()}")
                continue
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            tally.statuses[label] = Counter()
            target = Target(api_url, session, token, label, examples)
            runs: list[tuple[GenerationMode, dict[str, str] | None]] = [(m, None) for m in modes_for(operation.path)]
            names = {p["name"] for p in operation.definition.raw.get("parameters", []) if p.get("in") == "path"}
            if names and known and names <= known.keys() and GenerationMode.POSITIVE in modes_for(operation.path):
                runs.append((GenerationMode.POSITIVE, {n: known[n] for n in names}))
            for mode, path_parameters in runs:
                try:
                    _run(operation, mode, target, tally, path_parameters)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE, label  # nothing the document constrains to break
                except (Exception, FailureGroup) as failure:  # noqa: BLE001 - every operation runs; the test lists all
                    tally.failures.append(f"{label} ({mode.value}): {failure}")
    return tally


@dataclass(frozen=True)
class Target:
    """Where the cases of one operation go, and how many."""

    api_url: str
    session: requests.Session
    token: str
    label: str
    examples: int


def _run(
    operation: APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    target: Target,
    tally: Tally,
    path_parameters: dict[str, str] | None = None,
) -> None:
    auth = {"Authorization": f"Bearer {target.token}"}

    @seed(SEED)
    @settings(
        max_examples=target.examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def one(case: Case[Any]) -> None:
        response = case.call(base_url=target.api_url, session=target.session, headers=auth, allow_redirects=False)
        tally.cases[f"{target.label} {mode.value}"] += 1
        tally.statuses[target.label][response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=auth, transport_kwargs={"base_url": target.api_url})

    one()
