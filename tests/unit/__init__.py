"""Fast, pure unit tests: no Kafka, no model, no network."""
