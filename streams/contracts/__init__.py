"""The wire records of the Kafka topics, one module each; every producer and consumer
imports them from here.

* :mod:`streams.contracts.records`: the Faust records of ``articles-embedded``
  (``EmbeddedArticle``) and ``stories`` (``StoryEvent``, including the ``merged`` event);
* :mod:`streams.contracts.cloudevents`: the alert CloudEvent on ``alerts`` and its headers;
* :mod:`streams.contracts.outbox`: the webhook outbox entry on ``deliveries`` and its
  webhook-id;
* :mod:`streams.contracts.dead_letters`: the dead letter of ``articles-dlq``, and of
  ``alerts-dlq`` (the same shape with the delivery's fields);
* :mod:`streams.contracts.headers`: the Kafka record headers Storywatch sets.

Nothing is re-exported here: :mod:`streams.contracts.headers` stays importable without Faust
(the replay CLI reads headers without paying for Faust's import).
"""

from __future__ import annotations

__all__: list[str] = []
