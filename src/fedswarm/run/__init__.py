"""Runs from configuration: the TOML schema (:mod:`.config`), building a run's objects from
it (:mod:`.build`), in-memory experiments (:mod:`.experiment`), ``fedswarm run``
(:mod:`.simulate`) and what a run leaves on disk (:mod:`.rundir`)."""

__all__: list[str] = []
