"""The composition root: nothing is built when a module is imported; ``build_app`` builds a
whole worker, as often as asked, each with its own state, and its agents keep their names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from config.settings import load_settings
from streams.pipeline import AGENT_MODULES, build_app, build_pipeline

ROOT = Path(__file__).resolve().parents[2]

# Import every module of the product (as Faust's autodiscovery or a test would), then look
# for what importing must not create: a Faust app, a thread, a started Kafka client.
_IMPORT_EVERYTHING = """
import gc, importlib, pkgutil, threading, sys
import faust
names = []
for package in ("config", "streams", "agents"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
        names.append(info.name)
apps = [o for o in gc.get_objects() if isinstance(o, faust.App)]
print(len(names), len(apps), threading.active_count())
"""


def test_importing_every_module_builds_no_app_and_starts_no_thread() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERYTHING],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    modules, apps, threads = (int(n) for n in probe.stdout.split()[-3:])
    assert modules > 100  # the walk saw the product, not an empty package
    assert (apps, threads) == (0, 1), probe.stdout


def test_build_app_registers_each_agent_module_under_its_fixed_name() -> None:
    """The agents' names are part of the deployment (Faust names its agents' consumers and
    the topics it derives from them): the composition root keeps the pre-refactor names."""
    pipeline = build_app(load_settings())
    assert set(pipeline.agents) == set(AGENT_MODULES)
    assert sorted(agent.name for agent in pipeline.app.agents.values()) == [
        "agents.alerts.evaluate_alerts",
        "agents.cluster.cluster_articles",
        "agents.deliveries.deliver_webhooks",
        "agents.embed.embed_articles",
        "agents.feeds.feed_partitions",
    ]


def test_two_workers_built_in_one_process_share_no_state() -> None:
    """Tests (and a future multi-app process) build their own: two builds give two apps,
    two engines, two registries, two subscription stores."""
    first, second = build_app(load_settings()), build_app(load_settings())
    assert first.app is not second.app
    assert first.registry is not second.registry
    assert first.subscription_store is not second.subscription_store
    engines = [p.agents["agents.cluster"].engine for p in (first, second)]
    assert engines[0] is not engines[1]
    first.agents["agents.cluster"].restore_needed = False
    assert second.agents["agents.cluster"].restore_needed is True


def test_the_pipeline_without_agents_has_its_routes_and_no_agent() -> None:
    pipeline = build_pipeline(load_settings())
    assert pipeline.agents == {}
    assert not pipeline.app.agents
    router = pipeline.app.web.web_app.router  # type: ignore[attr-defined]
    paths = {resource.canonical for resource in router.resources()}
    assert {"/api/stories", "/metrics"} <= paths, sorted(paths)
