"""docker/ checked without a Docker engine: the compose file against the Compose
Specification's schema and against the settings the code reads, pinned images, the
Dockerfile's entry point against the CLI, Prometheus' config and rules with promtool, the
Grafana files against each other, and docs/DEPLOYMENT.md's settings against config/settings.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from kafka import KafkaAdminClient
from prometheus_client import CollectorRegistry

from config.reference import SECTION, default_text, replace_table
from config.settings import Settings
from streams.cli import main
from streams.feeds.metrics import FeedMetrics
from streams.kafka.admin import pipeline_topic_partitions
from streams.metrics import PipelineMetrics
from tests.conftest import PROJECT_ROOT
from tests.prometheus_files import (
    DASHBOARD,
    DOCKER,
    PROMETHEUS_CONFIG,
    RULES,
    RULES_TESTS,
    binary,
    dashboard,
    dashboard_exprs,
    dashboard_panels,
    rule_exprs,
    walk_exprs,
)

COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
SCHEMA = DOCKER / "schema" / "compose-spec.json"
DEPLOYMENT_DOC = PROJECT_ROOT / "docs" / "DEPLOYMENT.md"
GRAFANA = DOCKER / "grafana"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]  # type: ignore[no-any-return]


def _resolve(value: str) -> str:
    """Compose's ``${NAME:-default}`` / ``${NAME:?error}`` with nothing set in the shell."""
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    # A value the operator must set: long enough for any setting's own checks (secret keys).
    return re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "set-by-the-operator-at-deploy-time", value)


def storywatch_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {k: _resolve(str(v)) for k, v in env.items() if k.startswith("STORYWATCH_")}


def settings_of(service: dict[str, Any]) -> Settings:
    """The settings a container of ``service`` reads: its env plus the image's ENV lines."""
    env = {**dockerfile_env(), **storywatch_env(service)}
    fields = {name.removeprefix("STORYWATCH_").lower(): value for name, value in env.items()}
    return Settings(**{k: v for k, v in fields.items() if v != ""})


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of docker/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def dockerfile_env() -> dict[str, str]:
    """The STORYWATCH_* variables the worker stage sets with ENV."""
    stage = dockerfile()[[i for i, (op, _) in enumerate(dockerfile()) if op == "FROM"][-1] :]
    found: dict[str, str] = {}
    for op, args in stage:
        if op == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                if name.startswith("STORYWATCH_"):
                    found[name] = value
    return found


def dockerfile_json(op: str) -> list[str]:
    values = [args for name, args in dockerfile() if name == op]
    assert len(values) == 1, f"one {op} expected, found {values}"
    return json.loads(values[0])  # type: ignore[no-any-return]


def cli_command(argv: list[str]) -> click.Command:
    """The click command that ``argv`` (after the entry point) runs; fails if none does."""
    command: click.Command = main
    for arg in argv:
        if arg.startswith("-"):
            break
        if not isinstance(command, click.Group):
            break
        assert arg in command.commands, f"`storywatch {' '.join(argv)}`: no command {arg!r}"
        command = command.commands[arg]
    assert not isinstance(command, click.Group), f"`storywatch {' '.join(argv)}` is a group"
    return command


# --- the compose file ------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    readme = (SCHEMA.parent / "README.md").read_text()
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() in readme, "schema changed unnoted"
    assert (SCHEMA.parent / "LICENSE").exists()
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []
    # the validator does reject a broken file
    broken = compose()
    broken["services"]["worker"]["deploy"]["replicas"] = "three"
    broken["services"]["kafka"]["no_such_key"] = True
    assert len(list(validator.iter_errors(broken))) == 2


def test_every_image_is_pinned() -> None:
    for name, service in services().items():
        image = service.get("image")
        assert image, f"service {name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag not in {"latest", "stable", "main"}, f"{name}: {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: {image} has no version"
    froms = [args.split()[0] for op, args in dockerfile() if op == "FROM"]
    default = next(args for op, args in dockerfile() if op == "ARG" and "PYTHON_IMAGE" in args)
    image = default.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", image), image
    assert all(f in {"${PYTHON_IMAGE}"} for f in froms), froms


def test_kafka_image_is_the_version_the_project_runs() -> None:
    kafka = services()["kafka"]
    assert kafka["image"] == f"apache/kafka:{Settings().kafka_version}"
    env = kafka["environment"]
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env  # KRaft
    assert "kafka-data" in {v.split(":")[0] for v in kafka["volumes"]}
    assert env["KAFKA_LOG_DIRS"] in {v.split(":")[1] for v in kafka["volumes"]}


def test_storywatch_services_read_only_real_settings() -> None:
    fields = {f"STORYWATCH_{name.upper()}" for name in Settings.model_fields}
    workers = [s for s in services().values() if s.get("image", "").startswith("storywatch:")]
    assert len(workers) == 2  # the topic creation and the workers
    for service in workers:
        env = storywatch_env(service)
        assert env, service
        assert set(env) <= fields, set(env) - fields
        settings = settings_of(service)  # every value parses as the worker would parse it
        # the broker address is the kafka service's advertised listener
        advertised = services()["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        assert f"PLAINTEXT://{settings.bootstrap}" in advertised.split(",")
        assert settings.web_host == "0.0.0.0"  # reachable from Prometheus and the healthcheck


def test_worker_ports_agree_with_the_web_port() -> None:
    worker = services()["worker"]
    settings = settings_of(worker)
    for mapping in worker["ports"]:
        assert mapping.rsplit(":", 1)[1] == str(settings.web_port), mapping
    host_ports = worker["ports"][0].split(":")[1]
    first, _, last = host_ports.partition("-")
    # one host port per replica
    assert int(last or first) - int(first) + 1 == worker["deploy"]["replicas"]
    assert f"EXPOSE {settings.web_port}" in [f"{op} {args}" for op, args in dockerfile()]
    # Prometheus finds every replica by the service's name, on the web port
    scrape = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    (job,) = scrape
    assert job["job_name"] == "storywatch"  # the rules and the dashboard select this job
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == settings.web_port


def test_worker_replicas_fit_the_partition_plan() -> None:
    worker = services()["worker"]
    settings = settings_of(worker)
    plan = pipeline_topic_partitions(settings.topics)
    # more workers than articles partitions would leave some with no embedding to do
    assert 1 < worker["deploy"]["replicas"] <= plan[settings.topic_articles]
    assert plan[settings.topic_embedded] == 1
    assert settings_of(services()["topics"]) == settings  # the topics are the workers' topics


def test_volumes_are_named_or_files_of_this_folder() -> None:
    declared = set(compose()["volumes"])
    used = set()
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
            assert target.startswith("/")
    assert used == declared, "declared volumes nobody mounts"


def test_prometheus_and_grafana_mounts_agree_with_their_files() -> None:
    prometheus = services()["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus["volumes"]}
    config_flag = next(c for c in prometheus["command"] if c.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    folder, _, file = config_path.rpartition("/")
    assert (DOCKER / mounts[folder] / file).resolve() == PROMETHEUS_CONFIG.resolve()
    rule_files = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"]
    assert [(PROMETHEUS_CONFIG.parent / f).resolve() for f in rule_files] == [RULES.resolve()]

    grafana = services()["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    provisioning = DOCKER / mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "storywatch.yml").read_text())[
        "providers"
    ]
    dashboards_dir = DOCKER / mounts[provider["options"]["path"]]
    assert (dashboards_dir / DASHBOARD.name).resolve() == DASHBOARD.resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    port = prometheus["ports"][0].rsplit(":", 1)[1]
    assert source["url"] == f"http://prometheus:{port}"
    uids = {
        node["uid"]
        for panel in dashboard()["panels"]
        for node in [panel["datasource"], *[t["datasource"] for t in panel["targets"]]]
    }
    assert uids == {source["uid"]}


# --- the image ---------------------------------------------------------------------------


def test_dockerfile_entrypoint_is_a_real_cli_command() -> None:
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint, cmd = dockerfile_json("ENTRYPOINT"), dockerfile_json("CMD")
    assert entrypoint == ["storywatch"] and scripts["storywatch"] == "streams.cli:main"
    assert cli_command(cmd).name == "worker"
    for name, service in services().items():
        if service.get("image", "").startswith("storywatch:"):
            assert "entrypoint" not in service, name
            assert cli_command(service["command"]).callback is not None, name
    assert cli_command(services()["topics"]["command"]).name == "topics"
    with pytest.raises(AssertionError):
        cli_command(["no-such-command"])


def test_storywatch_services_build_the_image_from_this_dockerfile() -> None:
    for name, service in services().items():
        if service["image"].startswith("storywatch:"):
            build = service["build"]  # built here: a registry has no storywatch image
            context = (DOCKER / build["context"]).resolve()
            assert context == PROJECT_ROOT.resolve(), name
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve(), name
    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert services()["worker"]["image"] == f"storywatch:{version}"


def test_dockerfile_is_multi_stage_cpu_only_non_root_with_healthcheck() -> None:
    ops = dockerfile()
    stages = [args for op, args in ops if op == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build") and " AS " in stages[1]
    runs = " ".join(args for op, args in ops if op == "RUN")
    assert "--index-url https://download.pytorch.org/whl/cpu torch==" in runs
    torch_pin = next(
        d
        for d in tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"][
            "dependencies"
        ]
        if d.startswith("torch==")
    )
    assert f"{torch_pin}+cpu" in runs  # the CPU build of the version the project pins
    assert "torch.version.cuda is None" in runs
    assert "Embedder" in runs and ".load()" in runs  # the model loads offline at build time
    assert any(op == "COPY" and args.startswith("--from=build ") for op, args in ops)
    user = [args for op, args in ops if op == "USER"]
    assert user and not user[-1].startswith(("root", "0"))
    (health,) = [args for op, args in ops if op == "HEALTHCHECK"]
    assert "/healthz" in health and "CMD" in health
    assert dockerfile_env()["STORYWATCH_WEB_HOST"] == "0.0.0.0"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    lines = (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    copied = [
        source
        for op, args in dockerfile()
        if op == "COPY" and "--from" not in args
        for source in args.split()[:-1]
    ]
    assert copied, "no COPY"
    for path in copied:
        assert path.rstrip("/") not in ignored, path


# --- Prometheus and Grafana --------------------------------------------------------------


def _promtool(*args: str) -> str:
    result = subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_promtool_checks_the_config_and_the_rules() -> None:
    assert "SUCCESS" in _promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert "7 rules found" in _promtool("check", "rules", str(RULES))


def test_promtool_unit_tests_cover_every_rule() -> None:
    assert "SUCCESS" in _promtool("test", "rules", str(RULES_TESTS))
    tests = yaml.safe_load(RULES_TESTS.read_text())["tests"]
    tested = {case["alertname"] for t in tests for case in t.get("alert_rule_test", [])}
    firing = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert tested == firing == set(rule_exprs())


def test_dashboard_expressions_are_the_ones_evaluated_against_prometheus() -> None:
    # tests/integration/test_observability.py evaluates dashboard_exprs(): every "expr" of
    # the JSON is in it, so no query escapes the real-Prometheus test
    assert walk_exprs(dashboard()) == dashboard_exprs()
    titles = [title for title, _ in dashboard_panels()]
    assert len(titles) == len(set(titles))
    for needed in (
        "Throughput by stage",
        "End-to-end latency",
        "Consumer lag",
        "Active stories",
        "Story decisions",
        "Alerts",
        "Dead letters by reason",
        "Embedding batch size",
        "Embedding time",
        "Webhook deliveries",
    ):
        assert any(title.startswith(needed) for title in titles), needed


def _exposed_names() -> set[str]:
    """Every sample name a worker's /metrics can show: ours and Faust's sensor's."""
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    FeedMetrics(registry)
    FaustMetrics.create(registry, "storywatch_faust")
    names = {"up"}
    for family in registry.collect():
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_every_metric_in_rules_and_dashboard_exists() -> None:
    exposed = _exposed_names()
    functions = {
        "sum",
        "rate",
        "increase",
        "deriv",
        "histogram_quantile",
        "clamp_min",
        "vector",
        "max",
        "time",
        "topk",
    }
    keywords = {"by", "and", "or", "le", "job", "topic", "partition", "outcome"}
    for expr in [*dashboard_exprs(), *rule_exprs().values()]:
        without_labels = re.sub(r"\{[^}]*\}|\([a-z_, ]*\)\s*\(|\[[^\]]*\]", " ", expr)
        for name in re.findall(r"\b[a-z_][a-z0-9_]*\b", without_labels):
            if name in functions or name in keywords:
                continue
            assert name in exposed, f"{name} (in {expr}) is not a metric a worker exposes"


# --- docs/DEPLOYMENT.md ------------------------------------------------------------------


def test_deployment_doc_table_is_the_one_generated_from_the_settings() -> None:
    # Every setting, its default and its "why", exactly as config.reference writes them.
    text = DEPLOYMENT_DOC.read_text()
    assert replace_table(text) == text, (
        "regenerate: python -m config.reference --write docs/DEPLOYMENT.md"
    )
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(STORYWATCH_[A-Z0-9_]+)` \| ([^|]*) \|", section, re.MULTILINE)
    expected = {f"STORYWATCH_{name.upper()}": default_text(name) for name in Settings.model_fields}
    assert {name: default.strip() for name, default in rows} == expected


# --- the topic service, on the real broker -----------------------------------------------


@pytest.mark.kafka
def test_topics_command_creates_the_partition_plan(kafka_bootstrap: str) -> None:
    """`storywatch kafka topics` (the compose file's topic service) on the real broker."""
    env_settings = storywatch_env(services()["topics"])
    run_id = uuid.uuid4().hex[:8]
    names = {
        f"STORYWATCH_TOPIC_{n}": f"{n.lower()}-{run_id}"
        for n in (
            "ARTICLES",
            "DLQ",
            "EMBEDDED",
            "STORIES",
            "ALERTS",
            "SUBSCRIPTIONS",
            "DELIVERIES",
            "ALERTS_DLQ",
            "FEEDS",
            "FEED_STATE",
            "FEED_SEEN",
        )
    }
    env = {
        **{k: v for k, v in env_settings.items() if v},
        **names,
        "STORYWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap,
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STORYWATCH_")}
    result = subprocess.run(
        [sys.executable, "-m", "streams.cli", *services()["topics"]["command"]],
        env={**full_env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    plan = pipeline_topic_partitions(
        Settings(**{k.removeprefix("STORYWATCH_").lower(): v for k, v in env.items()}).topics
    )
    assert plan[names["STORYWATCH_TOPIC_ARTICLES"]] == 6
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = admin.describe_topics(list(plan))
    finally:
        admin.close()
    assert {t.get("topic", t.get("name")): len(t["partitions"]) for t in described} == plan, (
        described[:1]
    )
    assert all(line.endswith("created") for line in result.stdout.splitlines())
    again = subprocess.run(
        [sys.executable, "-m", "streams.cli", "kafka", "topics"],
        env={**full_env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0 and all(
        line.endswith("exists") for line in again.stdout.splitlines()
    ), again.stdout


# --- docker/compose.tls.yaml (the TLS broker override) -------------------------------------

COMPOSE_TLS = DOCKER / "compose.tls.yaml"


def test_the_tls_override_validates_and_uses_what_kafka_certs_writes(tmp_path: Path) -> None:
    """The override is valid Compose, sets only real settings, names its listener so the
    apache/kafka image takes PEM files, and mounts exactly the files `kafka certs` makes."""
    from click.testing import CliRunner

    from streams.cli import main

    override = yaml.safe_load(COMPOSE_TLS.read_text())
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    assert [e.message for e in validator.iter_errors(override)] == []
    fields = {f"STORYWATCH_{name.upper()}" for name in Settings.model_fields}
    for name in ("topics", "worker"):
        env = override["services"][name]["environment"]
        assert set(env) <= fields
        assert env["STORYWATCH_KAFKA_SECURITY_PROTOCOL"] == "SSL"
        assert set(env) | set(services()[name]["environment"]) >= {"STORYWATCH_KAFKA_BOOTSTRAP"}
    kafka = override["services"]["kafka"]["environment"]
    assert "SSL" not in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_SSL_KEYSTORE_TYPE"] == kafka["KAFKA_SSL_TRUSTSTORE_TYPE"] == "PEM"
    done = CliRunner().invoke(main, ["kafka", "certs", "--out", str(tmp_path), "--host", "kafka"])
    assert done.exit_code == 0, done.output
    mounted = {
        Path(volume.split(":")[0]).name
        for service in override["services"].values()
        for volume in service.get("volumes", [])
    }
    inside = {Path(kafka[k]).name for k in kafka if k.endswith("_LOCATION")}
    written = {path.name for path in tmp_path.iterdir()}
    assert (mounted - {"tls"}) | inside <= written
    assert "kafka-client.properties" in written  # the healthcheck's --command-config
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "broker-keystore.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["kafka"]
