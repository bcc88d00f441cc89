"""The event contract, shared by everything that writes or reads events: the generator, the streaming job and the
operators' recomputation (verify). Fields, types and enumerations (`contract.events`) and the reference validator
(`contract.validation`), in plain Python with no dependency, so every side can import it."""
