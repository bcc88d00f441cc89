"""The event contract, shared by everything that writes or reads events: the generator, the streaming job and the
operators' recomputation (verify). Fields, types and enumerations (`contract.events`), the reference validator
(`contract.validation`), time (`contract.times`), in plain Python with no dependency, so every side can import it;
and the clock a topic's records carry (`contract.topics`, which asks the broker through confluent-kafka when
called)."""
