"""examples/kubernetes: every manifest valid against the Kubernetes schemas, and consistent.

Validation is offline, with the schemas the ``kubernetes-validate`` package ships. The
cross-checks pin what no schema sees: probes on the daemon's real routes and port, a
grace period above preStop plus the configured drain, the HPA the issue asks for, the
selectors matching, the ConfigMap's config.toml passing ``fkllm check-config`` with the
Secret's variables, and Redis as the shared state backend at the Service's name.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.deploy.conftest import KUBERNETES_VERSION, check_config

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

MANIFESTS = REPO / "examples" / "kubernetes"


def documents() -> list[dict[str, Any]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        d for d in documents() if d["kind"] == kind and name in (None, d["metadata"]["name"])
    ]
    assert len(matches) == 1, (kind, name, len(matches))
    return matches[0]


def gateway() -> dict[str, Any]:
    return one("Deployment", "fkllmproxy")


def container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = gateway()["spec"]["template"]["spec"]["containers"]
    return containers[0]


def config() -> dict[str, Any]:
    text: str = one("ConfigMap", "fkllmproxy-config")["data"]["config.toml"]
    return tomllib.loads(text)


@pytest.mark.parametrize(
    "document", documents(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}"
)
def test_manifest_validates_against_the_kubernetes_schema(document: dict[str, Any]) -> None:
    """Strict: unknown fields (a typo) fail too."""
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk


def test_probes_use_the_daemons_routes_and_port() -> None:
    c = container()
    port = config()["server"]["port"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": port}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert config()["server"]["host"] == "0.0.0.0"


def test_grace_period_outlasts_pre_stop_and_drain() -> None:
    """SIGKILL must not cut the drain short (as the unit's TimeoutStopSec)."""
    spec = gateway()["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = config()["server"]["drain_timeout_secs"]
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain


def test_rolling_update_keeps_capacity_and_history() -> None:
    spec = gateway()["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["revisionHistoryLimit"] >= 2  # kubectl rollout undo


def test_autoscaler_is_min_2_max_10_at_80_percent_cpu() -> None:
    hpa = one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "fkllmproxy"}  # fmt: skip
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}
    # Utilization is relative to the request: without one the HPA cannot work.
    assert container()["resources"]["requests"]["cpu"]
    assert config()["server"]["workers"] == 1


def test_selectors_match_the_pods() -> None:
    labels = gateway()["spec"]["template"]["metadata"]["labels"]
    assert gateway()["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one("Service", "fkllmproxy")["spec"]["selector"].items() <= labels.items()
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one("PodDisruptionBudget")["spec"]["minAvailable"] < 2  # below minReplicas


def test_pod_runs_as_the_images_user_with_a_read_only_root() -> None:
    pod = gateway()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # deploy/Containerfile's USER
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert {"/etc/fkllmproxy/config.toml", "/tmp"} <= mounts


def test_state_is_shared_through_the_redis_service() -> None:
    state = config()["state"]
    redis_service = one("Service", "fkllmproxy-redis")
    assert state["backend"] == "redis"
    assert state["url"] == f"redis://fkllmproxy-redis:{redis_service['spec']['ports'][0]['port']}/0"


def test_config_map_and_secret_pass_check_config(tmp_path: Path) -> None:
    """What the pods get: config.toml from the ConfigMap, the env from the Secret."""
    secret = one("Secret", "fkllmproxy-env")
    refs = {e["secretRef"]["name"] for e in container()["envFrom"]}
    assert refs == {secret["metadata"]["name"]}
    config_toml = one("ConfigMap", "fkllmproxy-config")["data"]["config.toml"]
    result = check_config(tmp_path, config_toml, secret["stringData"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replace-with-your-provider-key" not in result.stdout


def test_the_validation_catches_a_misspelt_field() -> None:
    """The check above has teeth: a typo in a probe is a schema error."""
    deployment = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGett"] = probe.pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError, match="httpGett"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
