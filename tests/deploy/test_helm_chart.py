"""examples/helm/fkllmproxy: the chart rendered by Helm itself, offline, then held to what
examples/kubernetes is held to.

The renderer is helm-python-sdk: Helm v4's Go SDK in a C library inside its wheel, so
``Chart.render`` is Helm's own engine (what ``helm template`` runs, values.schema.json
included), with no helm binary, cluster or network. Every rendered object is validated
strictly against the Kubernetes schemas, for the defaults and for changed values; the
defaults must come out as the plain manifests; the cross-checks pin what no schema sees.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fkllmproxy
from tests.conftest import REPO
from tests.deploy.conftest import KUBERNETES_VERSION, check_config, required_module

yaml = required_module("yaml", "reads the manifests")
kubernetes_validate = required_module("kubernetes_validate", "the Kubernetes schemas")

CHART = REPO / "examples" / "helm" / "fkllmproxy"
MANIFESTS = REPO / "examples" / "kubernetes"

# Labels Helm charts add to every object; the plain manifests have none of them.
HELM_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
}

# What operators change, as values files would: (release name, values).
SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "defaults": ("fkllmproxy", {}),
    "fixed-replicas-external-redis": (
        "fkllm",
        {
            "replicaCount": 3,
            "autoscaling": {"enabled": False},
            "podDisruptionBudget": {"minAvailable": 2},
            "resources": {
                "requests": {"cpu": "1", "memory": "256Mi"},
                "limits": {"cpu": "2", "memory": "1Gi"},
            },
            "redis": {
                "enabled": False,
                "url": "rediss://redis.internal:6380/2",
                "onFailure": "closed",
                "keyPrefix": "fkllm-eu:",
            },
            "secret": {"existingSecret": "gateway-keys"},
            "image": {"repository": "registry.internal/fkllmproxy", "tag": "0.1.1"},
        },
    ),
    "long-drain-other-port": (
        "gateway",
        {
            "config": '[server]\nhost = "0.0.0.0"\nport = 8080\ndrain_timeout_secs = 120\n'
            '[logging]\nformat = "json"\n',
            "preStopSleepSeconds": 10,
            "autoscaling": {
                "minReplicas": 3,
                "maxReplicas": 30,
                "targetCPUUtilizationPercentage": 60,
            },
            "service": {"port": 80},
            "secret": {
                "env": {
                    "APP_AUTH__MASTER_KEY": "a" * 64,
                    "OPENAI_API_KEY": None,  # Helm drops a default key set to null
                    "ANTHROPIC_API_KEY": "sk-ant-x",
                }
            },
            "nodeSelector": {"kubernetes.io/arch": "amd64"},
            "tolerations": [{"key": "llm", "operator": "Exists", "effect": "NoSchedule"}],
            "podAnnotations": {"prometheus.io/scrape": "true"},
        },
    ),
}
# An env for the scenario whose Secret is not the chart's (secret.existingSecret).
EXISTING_SECRET_ENV = {"APP_AUTH__MASTER_KEY": "b" * 64, "OPENAI_API_KEY": "sk-test"}


@pytest.fixture(scope="module")
def helm() -> Any:
    return required_module("helm_python", "helm-python-sdk renders the chart offline")


@pytest.fixture(scope="module")
def chart(helm: Any) -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


class Rendered:
    """One ``helm template``: the objects, the NOTES, and lookups into them."""

    def __init__(self, chart: Any, release: str, values: dict[str, Any]) -> None:
        files = chart.render(values, name=release, namespace="llm")
        self.notes: str = files.pop(f"{CHART.name}/templates/NOTES.txt", "")
        self.objects: list[dict[str, Any]] = [
            doc for text in files.values() for doc in yaml.safe_load_all(text) if doc
        ]
        self.values = chart.merge_values(values)

    def find(self, kind: str, suffix: str = "") -> list[dict[str, Any]]:
        return [
            o for o in self.objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)
        ]

    def one(self, kind: str, suffix: str = "") -> dict[str, Any]:
        matches = self.find(kind, suffix)
        if not suffix:  # the gateway's, not Redis's
            matches = [o for o in matches if not o["metadata"]["name"].endswith("-redis")]
        assert len(matches) == 1, (kind, suffix, [o["metadata"]["name"] for o in matches])
        return matches[0]

    @property
    def gateway(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.gateway["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        (c,) = self.pod["containers"]
        return dict(c)

    @property
    def config_toml(self) -> str:
        text: str = self.one("ConfigMap", "-config")["data"]["config.toml"]
        return text

    @property
    def config(self) -> dict[str, Any]:
        return tomllib.loads(self.config_toml)


def render(chart: Any, scenario: str) -> Rendered:
    release, values = SCENARIOS[scenario]
    return Rendered(chart, release, values)


def plain_manifests() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


each_scenario = pytest.mark.parametrize("scenario", list(SCENARIOS))


@each_scenario
def test_every_rendered_object_validates_against_the_kubernetes_schema(
    chart: Any, scenario: str
) -> None:
    """Strict, as the plain manifests: unknown fields (a typo in a template) fail too."""
    rendered = render(chart, scenario)
    assert rendered.objects
    for obj in rendered.objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validation_catches_a_misspelt_field_in_a_rendered_object(chart: Any) -> None:
    gateway = render(chart, "defaults").gateway
    probe = gateway["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGett"] = probe.pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError, match="httpGett"):
        kubernetes_validate.validate(gateway, KUBERNETES_VERSION, strict=True)


def _without_helm_labels(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_helm_labels(v) for k, v in node.items() if k not in HELM_LABELS}
    if isinstance(node, list):
        return [_without_helm_labels(v) for v in node]
    return node


def _comparable(objects: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """By kind and name, without Helm's labels, the pod annotations (a revision counter
    there, checksums here) and with config.toml parsed (comments differ)."""
    found = {}
    for obj in _without_helm_labels(objects):
        template = obj.get("spec", {}).get("template", {}).get("metadata", {})
        template.pop("annotations", None)
        if obj["kind"] == "ConfigMap":
            obj["data"]["config.toml"] = tomllib.loads(obj["data"]["config.toml"])
        found[obj["kind"], obj["metadata"]["name"]] = obj
    return found


def test_the_defaults_render_the_plain_manifests(chart: Any) -> None:
    """A release named fkllmproxy with default values is examples/kubernetes, but for one
    thing: with the HPA on, the chart leaves the Deployment's replicas to it, so that
    `helm upgrade` does not reset the count the HPA reached."""
    plain = _comparable(plain_manifests())
    chart_objects = _comparable(render(chart, "defaults").objects)
    assert set(chart_objects) == set(plain)
    starting = plain["Deployment", "fkllmproxy"]["spec"].pop("replicas")
    assert starting == plain["HorizontalPodAutoscaler", "fkllmproxy"]["spec"]["minReplicas"]
    for key, obj in plain.items():
        assert chart_objects[key] == obj, key


def test_chart_metadata_and_lint(helm: Any, chart: Any) -> None:
    assert chart.name == "fkllmproxy"
    assert chart.metadata["appVersion"] == fkllmproxy.__version__
    assert chart.metadata["kubeVersion"] == ">=1.30.0-0"  # preStop sleep
    report = helm.lint(CHART, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # warnings, errors


@each_scenario
def test_selectors_match_their_pods_and_only_theirs(chart: Any, scenario: str) -> None:
    rendered = render(chart, scenario)
    labels = rendered.gateway["spec"]["template"]["metadata"]["labels"]
    selector = rendered.gateway["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert rendered.one("Service")["spec"]["selector"].items() <= labels.items()
    for pdb in rendered.find("PodDisruptionBudget"):
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for redis in rendered.find("Deployment", "-redis"):
        redis_labels = redis["spec"]["template"]["metadata"]["labels"]
        assert redis["spec"]["selector"]["matchLabels"].items() <= redis_labels.items()
        assert rendered.one("Service", "-redis")["spec"]["selector"].items() <= redis_labels.items()
        assert not selector.items() <= redis_labels.items()  # the gateway never selects Redis


@each_scenario
def test_probes_use_the_daemons_routes_and_the_configs_port(chart: Any, scenario: str) -> None:
    rendered = render(chart, scenario)
    c = rendered.container
    server = rendered.config["server"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": server.get("port", 4000)}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert server["host"] == "0.0.0.0"
    (port,) = rendered.one("Service")["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (rendered.values["service"]["port"], "http")


@each_scenario
def test_grace_period_outlasts_pre_stop_and_drain(chart: Any, scenario: str) -> None:
    rendered = render(chart, scenario)
    pre_stop = rendered.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = rendered.config["server"]["drain_timeout_secs"]
    assert pre_stop == rendered.values["preStopSleepSeconds"]
    assert rendered.pod["terminationGracePeriodSeconds"] > pre_stop + drain


def test_a_grace_period_set_by_hand_is_kept_or_refused(helm: Any, chart: Any) -> None:
    kept = Rendered(chart, "fkllmproxy", {"terminationGracePeriodSeconds": 90})
    assert kept.pod["terminationGracePeriodSeconds"] == 90
    with pytest.raises(helm.HelmRenderError, match="must be above preStopSleepSeconds"):
        chart.render({"terminationGracePeriodSeconds": 35}, name="fkllmproxy")


@each_scenario
def test_autoscaler_or_fixed_replicas(chart: Any, scenario: str) -> None:
    rendered = render(chart, scenario)
    autoscaling = rendered.values["autoscaling"]
    hpas = rendered.find("HorizontalPodAutoscaler")
    if not autoscaling["enabled"]:
        assert hpas == []
        assert rendered.gateway["spec"]["replicas"] == rendered.values["replicaCount"]
        return
    (hpa,) = hpas
    assert "replicas" not in rendered.gateway["spec"]  # the HPA's to set
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": rendered.gateway["metadata"]["name"],
    }
    spec = hpa["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (
        autoscaling["minReplicas"],
        autoscaling["maxReplicas"],
    )
    (metric,) = spec["metrics"]
    assert metric["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": autoscaling["targetCPUUtilizationPercentage"],
    }
    assert rendered.container["resources"]["requests"]["cpu"]  # utilization's base


def test_autoscaler_is_min_2_max_10_at_80_percent_cpu_by_default(chart: Any) -> None:
    spec = render(chart, "defaults").one("HorizontalPodAutoscaler")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    assert spec["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


@each_scenario
def test_disruption_budget_stays_below_the_replicas(chart: Any, scenario: str) -> None:
    rendered = render(chart, scenario)
    (pdb,) = rendered.find("PodDisruptionBudget")
    autoscaling = rendered.values["autoscaling"]
    floor = (
        autoscaling["minReplicas"] if autoscaling["enabled"] else rendered.values["replicaCount"]
    )
    assert pdb["spec"]["minAvailable"] < floor


def test_changed_resources_reach_the_container(chart: Any) -> None:
    resources = render(chart, "fixed-replicas-external-redis").container["resources"]
    assert resources == SCENARIOS["fixed-replicas-external-redis"][1]["resources"]


@each_scenario
def test_state_follows_the_redis_values(chart: Any, scenario: str) -> None:
    rendered = render(chart, scenario)
    redis = rendered.values["redis"]
    state = rendered.config["state"]
    assert state["backend"] == "redis"
    assert state["on_failure"] == redis["onFailure"]
    if redis["enabled"]:
        service = rendered.one("Service", "-redis")
        port = service["spec"]["ports"][0]["port"]
        assert state["url"] == f"redis://{service['metadata']['name']}:{port}/0"
        assert len(rendered.find("Deployment", "-redis")) == 1
    else:
        assert state["url"] == redis["url"]
        assert state["key_prefix"] == redis["keyPrefix"]
        assert rendered.find("Deployment", "-redis") == rendered.find("Service", "-redis") == []


@each_scenario
def test_the_pods_config_and_env_pass_check_config(
    chart: Any, scenario: str, tmp_path: Path
) -> None:
    """What the pods get: config.toml from the ConfigMap, the env from the Secret they
    reference (the chart's, or for secret.existingSecret one made here)."""
    rendered = render(chart, scenario)
    (ref,) = [e["secretRef"]["name"] for e in rendered.container["envFrom"]]
    existing = rendered.values["secret"]["existingSecret"]
    if existing:
        assert ref == existing
        assert rendered.find("Secret") == []
        env = EXISTING_SECRET_ENV
    else:
        secret = rendered.one("Secret")
        assert secret["metadata"]["name"] == ref
        env = secret["stringData"]
    result = check_config(tmp_path, rendered.config_toml, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replace-with-your-provider-key" not in result.stdout


@each_scenario
def test_pod_runs_as_the_images_user_with_a_read_only_root(chart: Any, scenario: str) -> None:
    rendered = render(chart, scenario)
    pod, security = rendered.pod, rendered.container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # deploy/Containerfile's USER
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {m["mountPath"] for m in rendered.container["volumeMounts"]} >= {
        "/etc/fkllmproxy/config.toml",
        "/tmp",
    }


def _annotations(chart: Any, values: dict[str, Any]) -> dict[str, str]:
    rendered = Rendered(chart, "fkllmproxy", values)
    annotations: dict[str, str] = rendered.gateway["spec"]["template"]["metadata"]["annotations"]
    return annotations


def test_a_config_change_changes_the_pods_checksum(chart: Any) -> None:
    """`helm upgrade` with another config rolls the pods; anything else leaves it be."""
    default = render(chart, "defaults")
    checksum = default.gateway["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum == hashlib.sha256(default.config_toml.encode()).hexdigest()
    config = default.values["config"].replace("workers = 1", "workers = 2")
    assert _annotations(chart, {"config": config})["checksum/config"] != checksum
    redis_moved = {"redis": {"enabled": False, "url": "redis://elsewhere:6379/0"}}
    assert _annotations(chart, redis_moved)["checksum/config"] != checksum  # [state] follows
    unrelated = {"resources": {"requests": {"cpu": "2"}}, "image": {"tag": "0.2.0"}}
    assert _annotations(chart, unrelated)["checksum/config"] == checksum


def test_a_key_change_in_the_charts_secret_changes_the_pods_checksum(chart: Any) -> None:
    before = _annotations(chart, {})["checksum/env"]
    after = _annotations(chart, {"secret": {"env": {"OPENAI_API_KEY": "sk-new"}}})
    assert after["checksum/env"] != before
    assert "checksum/env" not in _annotations(chart, {"secret": {"existingSecret": "keys"}})


def test_notes_warn_while_a_placeholder_key_is_left(chart: Any) -> None:
    """Helm merges secret.env into the defaults: a release that sets only its own keys
    keeps the OpenAI placeholder, and is told so."""
    defaults = render(chart, "defaults").notes
    assert "WARNING: secret.env.APP_AUTH__MASTER_KEY is still the chart's placeholder" in defaults
    assert "helm -n llm rollback fkllmproxy REVISION" in defaults
    partial = {"secret": {"env": {"APP_AUTH__MASTER_KEY": "a" * 64, "GROQ_API_KEY": "gsk"}}}
    notes = Rendered(chart, "fkllmproxy", partial).notes
    assert "secret.env.OPENAI_API_KEY is still" in notes
    assert "APP_AUTH__MASTER_KEY is still" not in notes
    replaced = render(chart, "long-drain-other-port")
    assert "WARNING" not in replaced.notes
    assert "OPENAI_API_KEY" not in replaced.one("Secret")["stringData"]  # set to null


@pytest.mark.parametrize(
    ("values", "error"),
    [
        pytest.param({"autoscalling": {}}, "additional properties 'autoscalling'", id="typo"),
        pytest.param({"redis": {"enabled": False}}, "set redis.url to an existing", id="no-redis"),
        pytest.param(
            {"redis": {"enabled": False, "url": "http://redis:6379"}},
            "does not match pattern",
            id="redis-url-scheme",
        ),
        pytest.param(
            {"config": '[server]\nhost = "0.0.0.0"\n[state]\n'},
            "must not have a \\[state\\]",
            id="state-in-config",
        ),
        pytest.param({"config": "[server]\nport = 4000\n"}, 'host is "127.0.0.1"', id="loopback"),
        pytest.param({"config": "[server\n"}, "config is not valid TOML", id="bad-toml"),
        pytest.param(
            {"podDisruptionBudget": {"minAvailable": 2}}, "must be below the replica", id="pdb"
        ),
        pytest.param({"autoscaling": {"minReplicas": 12}}, "is above autoscaling.max", id="hpa"),
        pytest.param(
            {"resources": {"requests": {"cpu": None}}}, "needs resources.requests.cpu", id="no-cpu"
        ),
    ],
)
def test_bad_values_are_refused_with_a_clear_error(
    helm: Any, chart: Any, values: dict[str, Any], error: str
) -> None:
    """Refused at `helm install` / `upgrade` time, naming the value, not left to a pod
    that never becomes ready."""
    with pytest.raises(helm.HelmError, match=error):
        chart.render(values, name="fkllmproxy")
