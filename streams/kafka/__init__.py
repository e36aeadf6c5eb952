"""Everything that talks to Kafka below the Faust app: the one connection layer every client is
built from (``connection``), topic creation (``admin``), the one reader of a window of a
topic (``window``) and the one follower of a topic into memory (``follower``), both on the
group-free consumer of ``readers``; the local broker the demo and tests start (``local``,
``local_security``, ``certs``), diagnosis of a refused connection, and the overrides of
Faust's and aiokafka's internals (``transport``), each listed in ``overrides``."""
