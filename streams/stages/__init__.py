"""The pipeline's stages, each written once as a plain-Python batch step (explicit input,
output and state; no Faust, no Kafka): validate+embed (:mod:`.embed`), cluster
(:mod:`.cluster`), emerging alerts (:mod:`.alerts`), subscription matching (:mod:`.matching`),
and the one fold of story merges they and every other reader of ``stories`` share
(:mod:`.merges`).

The Faust agents (``agents/``) drive them over Kafka batches; replay, rebuild and the offline
``cluster``/``eval`` drive the very same steps over topic windows and files.
"""

__all__: list[str] = []
