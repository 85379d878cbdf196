"""The deployment files, validated without Docker or a cluster: Kubernetes manifests
against the Kubernetes schemas (kubernetes-validate), the Compose file against the
Compose specification (check-jsonschema), the Prometheus config with promtool, and the
fields the service relies on (ports, probes, settings, mounts) against the service."""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from points_service.http.routes import ROUTES
from points_service.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent
SETTINGS_SOURCE = (ROOT / "points_service" / "settings.py").read_text()


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in documents(p) if d["kind"] == kind]


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)


def known_setting(name: str) -> bool:
    return f'"{name}"' in SETTINGS_SOURCE or name == "PROMETHEUS_MULTIPROC_DIR"


BUILT_IN = [p for p in sorted(K8S.glob("*.yaml")) if p.name != "servicemonitor.yaml"]


@pytest.mark.parametrize("path", BUILT_IN, ids=lambda p: p.name)
def test_kubernetes_manifests_match_the_kubernetes_schemas(path: Path) -> None:
    checked = run([str(BIN / "kubernetes-validate"), "--strict", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "passed" in checked.stdout


def test_the_kubernetes_validator_can_fail(tmp_path: Path) -> None:
    broken = (K8S / "deployment.yaml").read_text().replace("replicas: 2", 'replicas: "two"')
    (tmp_path / "deployment.yaml").write_text(broken)
    checked = run([str(BIN / "kubernetes-validate"), "--strict", str(tmp_path / "deployment.yaml")])
    assert checked.returncode != 0


def test_the_deployment_runs_the_service_as_it_is() -> None:
    [deployment] = by_kind("Deployment")
    [service] = [s for s in by_kind("Service") if s["spec"]["type"] == "ClusterIP"]
    pod = deployment["spec"]["template"]["spec"]
    app = next(c for c in pod["containers"] if c["name"] == "points-service")
    paths = {path for route in ROUTES for path in getattr(route, "paths", [])}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert app[probe]["httpGet"]["path"] in paths, probe
    assert app["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    env = {e["name"]: e for e in app["env"]}
    assert all(known_setting(name) for name in env), sorted(env)
    values = {name: e["value"] for name, e in env.items() if "value" in e}
    settings = load_settings(values | {"DATABASE_URL": "postgresql://x@db/points"})
    assert settings.redis_cluster and settings.redis_url and settings.workers == 1
    assert "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]  # no password in the file
    assert {p["containerPort"] for p in app["ports"]} == {Settings().port}
    assert service["spec"]["ports"][0]["targetPort"] == app["ports"][0]["name"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    # Longer than uvicorn's own graceful shutdown (cli.py: 30 s) plus the preStop sleep.
    assert pod["terminationGracePeriodSeconds"] > 30 + 5
    assert app["resources"]["requests"] and app["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in app["volumeMounts"]}
    assert {values["POINTS_RULES_DIR"], values["POINTS_LEADERBOARDS_DIR"]} <= mounts
    externals = {
        s["metadata"]["name"] for s in by_kind("Service") if s["spec"]["type"] == "ExternalName"
    }
    assert (
        "points-redis" in values["REDIS_URL"] and {"points-redis", "points-postgres"} <= externals
    )


def test_the_config_maps_are_the_shipped_files() -> None:
    maps = {m["metadata"]["name"]: m["data"] for m in by_kind("ConfigMap")}
    for name, folder in (("points-rules", "rules"), ("points-leaderboards", "leaderboards")):
        files = {p.name: p.read_text() for p in sorted((ROOT / folder).glob("*.toml"))}
        assert maps[name] == files, f"deploy/k8s/config.yaml is out of date with {folder}/"
    [deployment] = by_kind("Deployment")
    mounted = {
        v["configMap"]["name"]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "configMap" in v
    }
    assert mounted == set(maps)


SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "required": ["matchLabels"],
                    "properties": {"matchLabels": {"type": "object"}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port", "path"],
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        },
                    },
                },
            },
        },
    },
}


def test_the_service_monitor_scrapes_the_metrics_port() -> None:
    [monitor] = documents(K8S / "servicemonitor.yaml")
    jsonschema.validate(monitor, SERVICE_MONITOR)
    [service] = [s for s in by_kind("Service") if s["spec"]["type"] == "ClusterIP"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert all(e["port"] in ports and e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])


def test_the_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    check = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    checked = run([*check, str(DEPLOY / "compose.yaml")])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text((DEPLOY / "compose.yaml").read_text().replace("    ports:", "    portz:", 1))
    assert run([*check, str(broken)]).returncode != 0


def test_the_compose_stack_wires_up() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"points", "redis", "postgres", "prometheus", "grafana"} <= services.keys()
    points = services["points"]
    assert all(known_setting(name) for name in points["environment"])
    assert (DEPLOY / points["build"]["context"] / points["build"]["dockerfile"]).exists()
    assert "--appendonly" in services["redis"]["command"]
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["points:8000"]


def test_the_prometheus_config_checks(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: `make test` installs Debian's prometheus"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(DEPLOY / "prometheus" / "alerts.yml")]  # as compose mounts it
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = run([promtool, "check", "config", str(tmp_path / "prometheus.yml")])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    [source] = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http://prometheus:")
    [provider] = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/points-service.yaml").read_text()
    )["providers"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(m.split(":")[1].startswith(provider["options"]["path"]) for m in mounts)


def _stages(dockerfile: str) -> list[list[str]]:
    stages: list[list[str]] = []
    logical = re.sub(r"\\\n", " ", dockerfile)
    for raw in logical.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_the_dockerfile_builds_in_one_stage_and_runs_in_another() -> None:
    stages = _stages((ROOT / "Dockerfile").read_text())
    assert len(stages) >= 2
    final = stages[-1]
    text = "\n".join(final)
    words = {line.split()[0].upper() for line in final}
    assert {"USER", "HEALTHCHECK", "CMD", "EXPOSE"} <= words
    user = next(line.split()[1] for line in final if line.upper().startswith("USER "))
    assert user.split(":")[0] not in {"root", "0"}
    assert not re.search(r"build-essential|\bgcc\b|\bg\+\+|apt-get install", text)
    assert "COPY --from=" in text and "--no-index" in text  # wheels from the build stage
    assert f"EXPOSE {Settings().port}" in text and "/health/live" in text
    assert 'CMD ["points-service", "serve"]' in text
    assert "COPY rules" in text and "COPY leaderboards" in text
    env = re.findall(r"\b(POINTS_[A-Z_]+)=", text)
    assert env and all(known_setting(name) for name in env)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "var"} <= set(ignored)
