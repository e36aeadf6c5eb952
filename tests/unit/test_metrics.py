"""PipelineMetrics registers every family on the registry it is given, never the global one."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streams.metrics import PipelineMetrics


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def _exercise(m: PipelineMetrics) -> None:
    m.articles_consumed.inc(3)
    m.articles_invalid.labels(reason="not_json").inc()
    m.articles_duplicate.labels("content").inc(2)
    m.embedding_batch_size.observe(8)
    m.embedding_duration.observe(0.3)
    m.clustering_decisions.labels("new").inc()
    m.clustering_decisions.labels("joined").inc(4)
    m.clustering_duration.observe(0.0002)
    m.active_stories.set(7)
    m.alerts_emitted.labels("emerging").inc()
    m.end_to_end_latency.observe(1.5)


def test_all_families_are_exposed(registry: CollectorRegistry) -> None:
    metrics = PipelineMetrics(registry)
    assert metrics.registry is registry
    _exercise(metrics)
    text = generate_latest(registry).decode()
    for needle in (
        "storywatch_articles_consumed_total 3.0",
        'storywatch_articles_invalid_total{reason="not_json"} 1.0',
        'storywatch_articles_duplicate_total{kind="content"} 2.0',
        'storywatch_embedding_batch_size_bucket{le="8.0"} 1.0',
        'storywatch_embedding_batch_size_bucket{le="4.0"} 0.0',
        'storywatch_embedding_duration_seconds_bucket{le="0.5"} 1.0',
        'storywatch_embedding_duration_seconds_bucket{le="0.25"} 0.0',
        'storywatch_clustering_decisions_total{decision="new"} 1.0',
        'storywatch_clustering_decisions_total{decision="joined"} 4.0',
        "storywatch_clustering_duration_seconds_bucket",
        "storywatch_active_stories 7.0",
        'storywatch_alerts_emitted_total{rule="emerging"} 1.0',
        'storywatch_end_to_end_latency_seconds_bucket{le="2.0"} 1.0',
        'storywatch_end_to_end_latency_seconds_bucket{le="1.0"} 0.0',
        "storywatch_end_to_end_latency_seconds_count 1.0",
    ):
        assert needle in text, needle


def test_types_are_declared(registry: CollectorRegistry) -> None:
    PipelineMetrics(registry)
    text = generate_latest(registry).decode()
    assert "# TYPE storywatch_articles_consumed_total counter" in text
    assert "# TYPE storywatch_active_stories gauge" in text
    assert "# TYPE storywatch_end_to_end_latency_seconds histogram" in text
    assert "# TYPE storywatch_embedding_batch_size histogram" in text


def test_two_instances_on_two_registries_do_not_collide() -> None:
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    m1, m2 = PipelineMetrics(r1), PipelineMetrics(r2)  # would raise on a shared registry
    m1.articles_consumed.inc(5)
    m2.articles_consumed.inc(1)
    assert r1.get_sample_value("storywatch_articles_consumed_total") == 5.0
    assert r2.get_sample_value("storywatch_articles_consumed_total") == 1.0


def test_same_registry_twice_is_rejected(registry: CollectorRegistry) -> None:
    PipelineMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        PipelineMetrics(registry)


def test_nothing_lands_in_the_global_registry(registry: CollectorRegistry) -> None:
    before = {m.name for m in prometheus_client.REGISTRY.collect()}
    _exercise(PipelineMetrics(registry))
    after = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert after == before
    assert not [name for name in after if name.startswith("storywatch")]
    assert b"storywatch" not in generate_latest(prometheus_client.REGISTRY)
