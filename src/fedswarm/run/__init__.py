"""Runs from configuration: the TOML schema (:mod:`.config`), building a run's objects from
it (:mod:`.build`), in-memory experiments (:mod:`.experiment`), ``fedswarm run``
(:mod:`.simulate`) and what a run or a coordinator leaves on disk (:mod:`.store`)."""

__all__: list[str] = []
