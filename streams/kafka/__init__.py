"""Everything that talks to Kafka below the Faust app: the one connection layer every client is
built from (``connection``), topic creation (``admin``), readers, the local broker the demo and
tests start (``local``, ``local_security``, ``certs``), diagnosis of a refused connection, and
the overrides of Faust's and aiokafka's internals (``transport``)."""
