"""The deployment artefacts (deploy/Dockerfile, deploy/docker/entrypoint.sh, deploy/k8s/), checked offline.

No Docker engine and no cluster here: the manifests are validated against the Kubernetes JSON schemas bundled in
``kubernetes-validate`` (strict: an unknown field is an error), and everything they name is looked up in the code:
every environment variable is a field of the settings class of the service that reads it, every setting whose
default only works on one machine (loopback addresses, SQLite files, empty shared secrets) is set, the probe paths
are routes of the apps, the Dockerfile's COPY sources and the entrypoint's modules exist, secrets come from the
Secret, and every Deployment has probes, resource requests, an HPA, a PodDisruptionBudget and runs unprivileged.
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from pydantic_settings import BaseSettings

from actions.settings import ActionServerSettings
from analytics.settings import AnalyticsSettings
from channels.settings import ChannelSettings
from conversations.settings import GatewaySettings
from kb_index.settings import KBSettings
from workbench.settings import WorkbenchSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
KUBERNETES_VERSION = "1.30.0"
NOT_APPLIED = {"kustomization.yaml", "secret.example.yaml"}  # the Kustomization itself; the Secret's shape only

# Which settings classes each service's process reads (the gateway mounts the desk, channels, analytics, workbench).
SERVICE_SETTINGS: dict[str, list[type[BaseSettings]]] = {
    "gateway": [GatewaySettings, ChannelSettings, AnalyticsSettings, WorkbenchSettings],
    "actions": [ActionServerSettings, KBSettings],
    "rasa": [],  # Rasa's settings are the ${VARIABLES} of its endpoints file (below)
}
IMAGE_TARGET = {"csbot-gateway": "gateway", "csbot-actions": "actions", "csbot-rasa": "rasa"}
# Rasa reads this one itself (rasa/core/lock_store.py), not through endpoints.yml.
RASA_OWN_VARIABLES = {"TICKET_LOCK_LIFETIME"}
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "SALT", "DATABASE_URL", "REDIS_URL")
# Empty-by-default secrets a service refuses to work without in production (the internal services' authentication).
REQUIRED_SECRETS = {
    "gateway": {"RASA_TOKEN", "HANDOFF_INTERNAL_TOKEN", "WEB_CLIENT_SALT", "WORKBENCH_ACTION_TOKEN"},
    "actions": {"ACTION_SERVER_TOKEN", "HANDOFF_INTERNAL_TOKEN"},
    "rasa": {"RASA_TOKEN", "ACTION_SERVER_TOKEN", "REDIS_PASSWORD"},
}
# Settings whose empty default falls back to a loopback address in code (workbench/settings.py: action_base_url).
REQUIRED_EXTRA = {"gateway": {"WORKBENCH_ACTION_URL"}}


def documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def applied() -> list[dict[str, Any]]:
    return [doc for name, doc in documents() if name not in NOT_APPLIED]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in applied() if doc["kind"] == kind]


def env_names(cls: type[BaseSettings]) -> dict[str, Any]:
    """Environment variable name -> the field's default, as pydantic-settings reads them."""
    prefix = str(cls.model_config.get("env_prefix") or "").upper()
    out: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        names = [str(c).upper() for c in getattr(alias, "choices", [])] if alias is not None else []
        if isinstance(alias, str):
            names = [alias.upper()]
        default = field.get_default(call_default_factory=True)
        for env in names or [f"{prefix}{name}".upper()]:
            out[env] = default
    return out


def rasa_variables(endpoints: str) -> set[str]:
    return set(re.findall(r"\$\{(\w+)\}", (ROOT / endpoints).read_text()))


def entrypoint_variables() -> set[str]:
    return set(re.findall(r"\$\{(\w+)", ENTRYPOINT.read_text()))


def service_of(deployment: dict[str, Any]) -> str:
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return IMAGE_TARGET[image]


def container_env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every variable a Deployment's first container gets: name -> {"configmap": name} | {"secret": key} | value."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    maps = {m["metadata"]["name"]: m for m in of_kind("ConfigMap")}
    out: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        data = maps[source["configMapRef"]["name"]]["data"]
        out.update({key: {"configmap": source["configMapRef"]["name"], "value": value} for key, value in data.items()})
    for entry in container.get("env", []):
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            out[entry["name"]] = {"secret": ref["key"], "optional": ref.get("optional", False)}
        else:
            out[entry["name"]] = {"value": entry["value"]}
    return out


# ------------------------------------------------------------------------------------------------ schemas

@pytest.mark.parametrize("name, doc", list(documents()), ids=lambda v: v if isinstance(v, str) else v.get("kind"))
def test_every_manifest_is_valid_against_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    if doc.get("kind") == "Kustomization":
        missing = [r for r in doc["resources"] if not (K8S / r).is_file()]
        assert not missing, f"kustomization names missing files: {missing}"
        assert set(doc["resources"]) == {p.name for p in K8S.glob("*.yaml")} - NOT_APPLIED
        targets = {i["name"] for i in doc["images"]}
        assert targets == set(IMAGE_TARGET)
        return
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_catches_a_misspelt_field() -> None:
    """The check is strict: a typo in a probe is an error, not silently ignored."""
    deployment = yaml.safe_load(yaml.safe_dump(of_kind("Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_each_service_has_a_deployment_service_hpa_on_cpu_and_a_disruption_budget() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    assert {service_of(d) for d in deployments.values()} == {"gateway", "rasa", "actions"}
    services = {s["metadata"]["name"]: s for s in of_kind("Service") if s["spec"].get("type") != "ExternalName"}
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind("HorizontalPodAutoscaler")}
    pdbs = [p["spec"]["selector"]["matchLabels"] for p in of_kind("PodDisruptionBudget")]
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in s["spec"]["selector"].items()) for s in services.values()), \
            f"no Service selects {name}"
        hpa = hpas[name]
        assert hpa["spec"]["minReplicas"] >= 2, f"{name}: at least two replicas (a crash must not stop service)"
        assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
        assert any(all(labels.get(k) == v for k, v in sel.items()) for sel in pdbs), f"no PDB for {name}"
        assert deployment["spec"]["replicas"] >= 2


def test_redis_and_postgresql_are_external_services() -> None:
    external = {s["metadata"]["name"] for s in of_kind("Service") if s["spec"].get("type") == "ExternalName"}
    assert {"csbot-redis", "csbot-postgres"} <= external
    assert not [d for d in of_kind("Deployment") + of_kind("StatefulSet")
                if any(w in d["metadata"]["name"] for w in ("redis", "postgres"))], "stores are not run here"


# ------------------------------------------------------------------------------------------------ settings

def test_every_variable_the_manifests_set_is_a_setting_of_the_service_that_reads_it() -> None:
    for deployment in of_kind("Deployment"):
        service = service_of(deployment)
        known: set[str] = set(entrypoint_variables())
        for cls in SERVICE_SETTINGS[service]:
            known |= set(env_names(cls))
        if service == "rasa":
            env = container_env(deployment)
            endpoints = env.get("RASA_ENDPOINTS", {}).get("value", "endpoints.yml")
            known |= rasa_variables(endpoints) | RASA_OWN_VARIABLES | {"RASA_TOKEN"}
        unknown = sorted(set(container_env(deployment)) - known)
        assert not unknown, f"{deployment['metadata']['name']} sets variables no settings class reads: {unknown}"
    for job in of_kind("Job"):
        names = {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        assert names <= set(env_names(ActionServerSettings)), names


def test_every_setting_that_only_works_on_one_machine_is_set() -> None:
    """Defaults that point at loopback, at SQLite files or are empty shared secrets are set in the cluster."""
    for deployment in of_kind("Deployment"):
        service = service_of(deployment)
        env = container_env(deployment)
        required = set(REQUIRED_SECRETS[service]) | REQUIRED_EXTRA.get(service, set())
        for cls in SERVICE_SETTINGS[service]:
            for name, default in env_names(cls).items():
                text = str(getattr(default, "get_secret_value", lambda d=default: d)())
                if any(local in text for local in ("127.0.0.1", "localhost", "sqlite:")):
                    required.add(name)
        if service == "rasa":
            required |= rasa_variables(env.get("RASA_ENDPOINTS", {}).get("value", "endpoints.yml"))
        # A variable may be given under any of its names (e.g. DATABASE_URL or ORDERS_DATABASE_URL).
        aliases = [{n.upper() for n in getattr(f.validation_alias, "choices", [])}
                   for cls in SERVICE_SETTINGS[service] for f in cls.model_fields.values()]
        missing = sorted(name for name in required
                         if not any(n in env for n in next((a for a in aliases if name in a), {name})))
        assert not missing, f"{deployment['metadata']['name']} leaves unset: {missing}"
        for name, source in env.items():
            if "value" in source and "configmap" in source:
                assert "127.0.0.1" not in source["value"] and "localhost" not in source["value"], name


def test_secrets_come_from_the_secret_and_never_from_a_configmap() -> None:
    example = next(doc for name, doc in documents() if name == "secret.example.yaml")
    for config in of_kind("ConfigMap"):
        leaked = [k for k in config["data"] if any(w in k for w in SECRET_WORDS)]
        assert not leaked, f"{config['metadata']['name']} holds secrets: {leaked}"
    for deployment in of_kind("Deployment"):
        for name, source in container_env(deployment).items():
            if any(w in name for w in SECRET_WORDS):
                assert "secret" in source, f"{deployment['metadata']['name']}: {name} must come from the Secret"
                assert source["secret"] in example["stringData"], f"{name}: key {source['secret']} undocumented"


# ------------------------------------------------------------------------------------------------ probes

def probe_paths(deployment: dict[str, Any]) -> set[str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    paths = set()
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        assert probe, f"{deployment['metadata']['name']} has no {kind}"
        if "httpGet" in probe:
            paths.add(probe["httpGet"]["path"])
    return paths


def test_probe_paths_are_routes_of_the_apps() -> None:
    from rasa_sdk.endpoint import create_app as sdk_app
    from rasa_sdk.executor import ActionExecutor

    from actions.server import OPEN_PATHS
    from channels.app import create_app

    gateway = {getattr(route, "path", None) for route in create_app().routes}
    actions = {route.path.rstrip("/") or "/" for route in sdk_app(ActionExecutor(), cors_origins=[]).router.routes}
    actions = {"/" + p.lstrip("/") for p in actions}
    rasa_server = next((ROOT / ".venv-rasa").glob("lib/python3.*/site-packages/rasa/server.py")).read_text()
    for deployment in of_kind("Deployment"):
        service, paths = service_of(deployment), probe_paths(deployment)
        assert paths, f"{service}: at least one HTTP probe"
        for path in paths:
            if service == "gateway":
                assert path in gateway, path
            elif service == "actions":
                assert path in actions and path in OPEN_PATHS, f"{path}: a route the action server answers " \
                                                               "without the token"
            else:
                assert f'@app.get("{path}")' in rasa_server, path


# ------------------------------------------------------------------------------------------------ images

def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(fileobj=DOCKERFILE.open("rb"))
    return parser


def test_dockerfile_copy_sources_exist_and_the_targets_match_the_manifests() -> None:
    parser = dockerfile()
    stages: list[str] = []
    missing = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            stages.append(words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else words[0])
        if instruction["instruction"] != "COPY":
            continue
        words = shlex.split(instruction["value"])
        if any(w.startswith("--from=") for w in words):
            assert words[0].split("=", 1)[1] in stages, f"COPY from an unknown stage: {instruction['value']}"
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        missing += [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"COPY sources missing from the build context: {missing}"
    assert {"gateway", "actions", "rasa"} <= set(stages)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("models", "var/kb_index", "var/models"):
        assert needed not in ignored, f"{needed} is needed by the image and must not be in .dockerignore"
    for secret in ("var/redis", ".env"):
        assert secret in ignored, f"{secret} must never be sent to the build"


def test_entrypoint_starts_modules_that_exist_for_every_command_the_manifests_use() -> None:
    script = ENTRYPOINT.read_text()
    commands = set(re.findall(r"^\s+(\w+)\)", script, flags=re.M))
    used = set()
    for workload in of_kind("Deployment") + of_kind("Job"):
        container = workload["spec"]["template"]["spec"]["containers"][0]
        used.add(container["args"][0])
    assert used <= commands, used - commands
    locks = {"rasa": (ROOT / "requirements/rasa.lock").read_text(),
             "uvicorn": (ROOT / "requirements/app.lock").read_text()}
    for module in re.findall(r"python -m ([\w.]+)", script):
        if module in locks:
            assert re.search(rf"^{module}==", locks[module], flags=re.M), f"{module} is not in its lock file"
            continue
        path = ROOT / Path(*module.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module
    app_module, factory = re.search(r"uvicorn ([\w.]+):(\w+)", script).groups()
    assert f"def {factory}(" in (ROOT / Path(*app_module.split("."))).with_suffix(".py").read_text()
    assert "models/CURRENT" in script and (ROOT / "models" / "CURRENT").is_file()


def test_workloads_run_unprivileged_with_resource_requests() -> None:
    for workload in of_kind("Deployment") + of_kind("Job"):
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec.get("automountServiceAccountToken") is False
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    users = [i["value"] for i in dockerfile().structure if i["instruction"] == "USER"]
    assert users and all(u == "10001" for u in users)


def test_rasa_and_the_action_server_accept_only_their_callers() -> None:
    policies = {p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]: p
                for p in of_kind("NetworkPolicy")}
    allowed = {name: {s["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                      for rule in p["spec"]["ingress"] for s in rule["from"]} for name, p in policies.items()}
    assert allowed["csbot-rasa"] == {"csbot-gateway"}
    assert allowed["csbot-actions"] == {"csbot-rasa", "csbot-gateway"}
