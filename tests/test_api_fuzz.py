"""Schemathesis fuzzes every operation of the published OpenAPI schema
(/api/schema/) in process, through modelport.wsgi: no request may end in a
server error, and every documented answer must match its schema.

Path parameters name seeded objects (half of the random cases keep their
fuzzed ones, mostly 404s), so fuzzed bodies and queries reach the real views.
Each case runs in a savepoint rolled back afterwards: a DELETE of a seeded
model or token is fuzzed like any call and the next case finds it again."""

from __future__ import annotations

import socket
import zlib

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import response_schema_conformance

from accounts.models import AccessToken
from modelport.wsgi import application
from registry import links, services
from registry.models import Version
from tests.test_serving import make_ready_version
from tests.tokens import api_token
from webhooks import services as webhooks
from webhooks.models import Delivery, Event

pytestmark = pytest.mark.django_db

CHECKS = [not_a_server_error, response_schema_conformance]
HOOK_URL = "http://127.0.0.1:9/hook"


def no_resolver(host, port, *args, **kwargs):
    """The fuzzer invents webhook hosts: answer them as a resolver that knows
    no names would, so no lookup leaves the machine and every run is the same."""
    if host in ("localhost", "127.0.0.1"):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def in_process_requests(monkeypatch):
    """Requests run on the test's own connection, inside its transaction, as
    Django's test client arranges: the handler must not close it between requests."""
    monkeypatch.setattr(socket, "getaddrinfo", no_resolver)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _delivery(hook) -> Delivery:
    return Delivery.objects.create(webhook=hook, event=Event.VERSION_READY, body='{"type": "version.ready"}')


@pytest.fixture
def seeded(owner, people, acme, detector, public_model, private_model, settings) -> dict:
    """alice's models and acme's, with the objects every path parameter names,
    and a token for each persona. The seeded webhooks target loopback, as on a
    server that allows it (the production default refuses it, as it should)."""
    settings.WEBHOOKS_ALLOW_PRIVATE = "loopback"
    digits = make_ready_version(public_model, 1)
    Version.objects.filter(pk=digits.pk).update(
        layers=[{"name": "d", "class_name": "Dense", "output_shape": [None, 256]}],
        variants={"graph": {"status": "pending"}, "uint8": {"status": "failed", "error": "Too far from TensorFlow."}},
    )
    Version.objects.create(
        model=public_model, number=2, status=Version.Status.FAILED, error="Not a Keras file.",
        failure=Version.Failure.USER, upload_name="x.h5", upload_size=1, upload_sha256="0" * 64, upload_key="k",
    )  # fmt: skip
    services.move_alias(public_model, "production", 1, owner)
    make_ready_version(private_model, 1)
    services.move_alias(private_model, "staging", 1, owner)
    Version.objects.filter(model=detector, number=2).update(
        output_format=Version.OutputFormat.GRAPH,
        layers=[{"name": "StatefulPartitionedCall/d/MatMul", "class_name": "MatMul", "output_shape": [None, 4]}],
    )
    services.move_alias(detector, "production", 2, owner)  # a move to roll back

    digits_hook = webhooks.create(owner, HOOK_URL, [Event.VERSION_READY], owner, public_model)
    detector_hook = webhooks.create(acme.account, HOOK_URL, [Event.ALIAS_MOVED], owner, detector)
    acme_hook = webhooks.create(acme.account, HOOK_URL, [Event.MODEL_DELETED], owner)
    keys = {persona: api_token(user, "fuzz") for persona, user in people.items() if user is not None}
    api_token(owner, "ci", scope=AccessToken.Scope.READ, models=[public_model])
    return {
        "keys": keys,
        "models": [
            {
                "owner": "alice",
                "name": "digits",
                "number": 1,
                "alias": "production",
                "link_id": str(links.mint(public_model, "production", 3600, [], owner).uid),
                "webhook_id": str(digits_hook.uid),
                "delivery_id": str(_delivery(digits_hook).uid),
            },
            {"owner": "alice", "name": "digits", "number": 2, "alias": "latest"},
            {
                "owner": "alice",
                "name": "secret",
                "number": 1,
                "alias": "staging",
                "link_id": str(links.mint(private_model, "1", 60, ["https://app.example"], owner).uid),
            },
            {
                "owner": "acme",
                "name": "detector",
                "number": 2,
                "alias": "production",
                "webhook_id": str(detector_hook.uid),
                "delivery_id": str(_delivery(detector_hook).uid),
            },
        ],
        "orgs": [
            {
                "org": "acme",
                "username": "bob",
                "webhook_id": str(acme_hook.uid),
                "delivery_id": str(_delivery(acme_hook).uid),
            },
            {"org": "acme", "username": "carol"},
            {"org": "acme", "username": "alice"},
        ],
        "tokens": [{"token_id": str(token.uid)} for token in AccessToken.objects.filter(user=owner)],
    }


def schema_fixture(phase: str):
    """The schema as the server publishes it, for one schemathesis phase."""

    @pytest.fixture
    def load(in_process_requests, seeded):
        phases = {name: {"enabled": name == phase} for name in ("examples", "coverage", "fuzzing", "stateful")}
        config = schemathesis.Config.from_dict(
            {"phases": phases, "generation": {"max-examples": 15, "deterministic": True, "database": "none"}}
        )
        return schemathesis.openapi.from_wsgi("/api/schema/", application, config=config)

    return load


fuzzing_schema = schema_fixture("fuzzing")
coverage_schema = schema_fixture("coverage")


def scenes_for(path: str, seeded: dict) -> list[dict]:
    if "{org}" in path:
        return seeded["orgs"]
    if "{owner}" in path:
        return seeded["models"]
    return seeded["tokens"]


def aim(case, scene: dict) -> None:
    case.path_parameters = {name: scene.get(name, value) for name, value in case.path_parameters.items()}


def send(case, key: str | None) -> None:
    headers = {name: value for name, value in (case.headers or {}).items() if name.lower() != "authorization"}
    if key is not None:
        headers["Authorization"] = f"Token {key}"
    case.headers = headers
    with transaction.atomic():
        case.call_and_validate(checks=CHECKS)
        transaction.set_rollback(True)


@schemathesis.pytest.from_fixture("fuzzing_schema").parametrize()
@schemathesis.pytest.from_fixture("fuzzing_schema").given(data=st.data())
def test_fuzzed_requests_get_no_server_error_and_the_documented_answer(case, data, seeded):
    """Random bodies and queries, from each persona; path parameters fuzzed, or a seeded object's."""
    if case.path_parameters:
        scene = data.draw(st.none() | st.sampled_from(scenes_for(case.path, seeded)), label="scene")
        if scene is not None:
            aim(case, scene)
    persona = data.draw(
        st.just("admin") | st.sampled_from(["writer", "reader", "outsider", "anonymous"]), label="persona"
    )
    send(case, seeded["keys"].get(persona))


@schemathesis.pytest.from_fixture("coverage_schema").parametrize()
def test_boundary_requests_get_no_server_error_and_the_documented_answer(case, seeded):
    """Schemathesis' coverage cases (each field missing, at its limits, of
    the wrong type…) sent by the admin to a seeded object, unless the case is
    about a path parameter itself."""
    varied = case.meta.phase.data
    if case.path_parameters and varied.parameter_location != ParameterLocation.PATH:
        scenes = scenes_for(case.path, seeded)
        aim(case, scenes[zlib.crc32(varied.description.encode()) % len(scenes)])
    send(case, seeded["keys"]["admin"])
