from __future__ import annotations

import logging

from streams.kafka.log_limits import RepeatLimiter, limit_kafka_client_logs


def _record(msg: str, name: str = "aiokafka.client") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)


def test_one_record_of_a_kind_per_interval_then_a_count(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("streams.kafka.log_limits.time.monotonic", lambda: clock[0])
    limiter = RepeatLimiter(interval_s=10)
    assert limiter.filter(_record("Unable connect to node %s"))
    assert not any(limiter.filter(_record("Unable connect to node %s")) for _ in range(500))
    assert limiter.filter(_record("another message"))  # other kinds pass
    clock[0] += 10
    passed = _record("Unable connect to node %s")
    assert limiter.filter(passed)
    assert "500 more like this" in str(passed.msg)


def test_installed_on_every_aiokafka_logger() -> None:
    import aiokafka.consumer.fetcher  # noqa: F401 - creates its logger

    limiter = limit_kafka_client_logs()
    # "aiokafka" itself logs the connection errors; the fetcher logs failed fetches.
    assert limiter in logging.getLogger("aiokafka").filters
    assert limiter in logging.getLogger("aiokafka.consumer.fetcher").filters
    assert limiter not in logging.getLogger("faust").filters
