"""The cost of TLS and SCRAM: headlines/s through the real pipeline over SASL_SSL
(SCRAM-SHA-512, a private CA) against PLAINTEXT, side by side in one run.

One broker (``streams.kafka.local.start_broker``, temp dir, free ports) with two client
listeners, PLAINTEXT and SASL_SSL, so both workers talk to the same JVM. Two real workers
(``streams.worker_run.WorkerRun``, isolated topics), one per listener, both
warmed up (the model loads on the first batch). Then ROUNDS rounds; in each, the same CHUNK
headlines go through each worker in turn (the order alternates between rounds, so drift from
the shared machine's load falls on both): the clock starts when the first headline is
produced and stops when its last story event is read, both over the worker's own
connection. Reported: headlines/s per round and the median, per protocol; and the producer
alone (kafka-python, ``acks=all``, 1 KiB records): records/s over each listener.

Run: nice -n 10 .venv/bin/python bench/kafka_tls.py [--chunk 200 --rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.settings import Settings  # noqa: E402
from streams.engine.offline import read_jsonl  # noqa: E402
from streams.kafka.certs import local_tls_files  # noqa: E402
from streams.kafka.connection import KafkaConnection  # noqa: E402
from streams.kafka.local import (  # noqa: E402
    BrokerSecurity,
    ClientListener,
    free_port,
    start_broker,
    stop_broker,
)
from streams.producer import produce_rows  # noqa: E402
from streams.worker_run import WorkerRun  # noqa: E402

UCI = Path("/work/shared/data/uci-headlines-dev.jsonl")
UCI_FALLBACK = ROOT / "streams/samples/uci-headlines-sample.jsonl"
USER = "bench"
# Why 32: one embedding batch; the worker loads its model on it (not timed).
WARM = 32
# Why 1 KiB x 5,000: the size of a headline record, enough records that the run takes
# seconds and per-request TLS and SCRAM costs show next to the network path's.
PRODUCER_RECORDS, PRODUCER_BYTES = 5_000, 1024


def _env(connection: KafkaConnection, tls_dir: Path) -> dict[str, str]:
    if connection.security_protocol == "PLAINTEXT":
        return {"STORYWATCH_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    assert connection.sasl_password is not None
    return {
        "STORYWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STORYWATCH_KAFKA_SASL_MECHANISM": connection.sasl_mechanism,
        "STORYWATCH_KAFKA_SASL_USERNAME": USER,
        "STORYWATCH_KAFKA_SASL_PASSWORD": connection.sasl_password.get_secret_value(),
        "STORYWATCH_KAFKA_SSL_CAFILE": str(tls_dir / "ca.pem"),
    }


def _wait(connection: KafkaConnection, topic: str, ids: set[str], timeout_s: float) -> None:
    consumer = connection.consumer(topic, group_id=None, auto_offset_reset="earliest")
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while not ids <= seen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ids - seen)} story events missing on {topic}")
            for batch in consumer.poll(timeout_ms=200).values():
                seen.update(json.loads(m.value)["article_id"] for m in batch)
    finally:
        consumer.close()


def _through(connection: KafkaConnection, worker: WorkerRun, rows: list[dict]) -> float:
    """headlines/s: first produce to last story event read."""
    started = time.perf_counter()
    produce_rows(rows, connection, worker.topic("articles"))
    _wait(connection, worker.topic("stories"), {str(r["id"]) for r in rows}, 600)
    return len(rows) / (time.perf_counter() - started)


def _producer_rate(connection: KafkaConnection, topic: str) -> float:
    producer = connection.producer(acks="all", linger_ms=5)
    payload = b"x" * PRODUCER_BYTES
    try:
        producer.send(topic, payload).get(timeout=30)  # topic and connection before the clock
        started = time.perf_counter()
        for _ in range(PRODUCER_RECORDS):
            producer.send(topic, payload)
        producer.flush(timeout=120)
        return PRODUCER_RECORDS / (time.perf_counter() - started)
    finally:
        producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk", type=int, default=200, help="headlines per round and worker")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    source = UCI if UCI.exists() else UCI_FALLBACK
    rows = [{k: v for k, v in r.items() if k != "label"} for r in read_jsonl(source)]
    need = WARM + args.chunk * args.rounds
    if len(rows) < need:
        raise SystemExit(f"{source} has {len(rows)} rows; --chunk x --rounds needs {need - WARM}")
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-kafka-tls-") as tmp:
        folder = Path(tmp)
        tls = local_tls_files(folder / "tls")
        plain_port, secure_port = free_port(), free_port()
        password = "bench-" + str(time.time_ns())
        security = BrokerSecurity(
            (
                ClientListener("PLAINTEXT", "PLAINTEXT", plain_port),
                ClientListener("SASL_SSL", "SASL_SSL", secure_port),
            ),
            tls,
            {USER: password},
        )
        info = start_broker(
            settings.kafka_dir,
            settings.kafka_version,
            port=plain_port,
            data_dir=folder / "broker",
            security=security,
        )
        from pydantic import SecretStr

        connections = {
            "PLAINTEXT": KafkaConnection(f"127.0.0.1:{plain_port}"),
            "SASL_SSL": KafkaConnection(
                f"127.0.0.1:{secure_port}",
                "SASL_SSL",
                "SCRAM-SHA-512",
                USER,
                SecretStr(password),
                ssl_cafile=tls.ca.cert,
            ),
        }
        workers: dict[str, WorkerRun] = {}
        results: dict[str, Any] = {"source": str(source), "chunk": args.chunk}
        try:
            for name, connection in connections.items():
                worker = WorkerRun(
                    connection.bootstrap,
                    folder / name,
                    settings=_env(connection, folder / "tls"),
                )
                worker.start()
                workers[name] = worker
                _through(connection, worker, rows[:WARM])  # the model loads here
            rates: dict[str, list[float]] = {name: [] for name in connections}
            for number in range(args.rounds):
                chunk = rows[WARM + number * args.chunk : WARM + (number + 1) * args.chunk]
                order = list(connections) if number % 2 == 0 else list(connections)[::-1]
                for name in order:
                    rates[name].append(_through(connections[name], workers[name], chunk))
                    print(f"round {number + 1} {name}: {rates[name][-1]:.1f} headlines/s")
            for name, values in rates.items():
                results[f"{name}_headlines_per_s"] = [round(v, 1) for v in values]
                results[f"{name}_median"] = round(statistics.median(values), 1)
            for name, connection in connections.items():
                rate = _producer_rate(connection, f"bench-producer-{name.lower()}")
                results[f"{name}_producer_records_per_s"] = round(rate)
        finally:
            for worker in workers.values():
                worker.stop()
            stop_broker(info.data_dir)
    ratio = results["SASL_SSL_median"] / results["PLAINTEXT_median"]
    results["sasl_ssl_over_plaintext"] = round(ratio, 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
