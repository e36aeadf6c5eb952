"""The PromQL expressions of docker/: the Grafana dashboard's targets and the alert rules.

One reader for both the structural tests (tests/test_deployment.py) and the real-Prometheus
test (tests/integration/test_observability.py), so the expressions checked structurally are
exactly the ones evaluated against a worker.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "docker"
PROMETHEUS_DIR = DOCKER / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TESTS = PROMETHEUS_DIR / "rules.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "storywatch.json"


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[tuple[str, list[str]]]:
    """(panel title, its target expressions), in the dashboard's order."""
    return [
        (panel["title"], [target["expr"] for target in panel.get("targets", [])])
        for panel in dashboard()["panels"]
    ]


def dashboard_exprs() -> list[str]:
    return [expr for _, exprs in dashboard_panels() for expr in exprs]


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def rule_exprs() -> dict[str, str]:
    """Alert name -> its expression."""
    return {rule["alert"]: " ".join(str(rule["expr"]).split()) for rule in rules()}


def binary(name: str) -> str:
    """A Prometheus binary; missing FAILS the test (``make system-deps`` installs it)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: run `make system-deps` (Debian package `prometheus`)")
    return path


def walk_exprs(node: Any) -> list[str]:
    """Every value of an ``expr`` key anywhere in a JSON document (nothing can hide)."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for k, v in node.items() if k != "expr" for e in walk_exprs(v)]
    if isinstance(node, list):
        return [e for item in node for e in walk_exprs(item)]
    return []


__all__ = [
    "DASHBOARD",
    "DOCKER",
    "PROMETHEUS_CONFIG",
    "PROMETHEUS_DIR",
    "RULES",
    "RULES_TESTS",
    "Path",
    "binary",
    "dashboard",
    "dashboard_exprs",
    "dashboard_panels",
    "rule_exprs",
    "rules",
    "walk_exprs",
]
