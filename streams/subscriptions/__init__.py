"""Alert subscriptions: what users ask for (model), which stories it fits (matching), the
alerts and outbox entries that follow (alerts), and signed webhook delivery (webhooks,
ssrf, sender). Plain Python; the Faust glue lives in agents/ and streams/web/."""
