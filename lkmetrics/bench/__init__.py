"""Benchmarks of the components an agent uses, measured through LiveKit's own classes.

``bench llm`` in :mod:`lkmetrics.bench.llm` (``core``, ``driver``, ``workers``, ``runner``,
``render``, ``command``), ``bench voice`` in :mod:`lkmetrics.bench.voice` (``core``, ``driver``,
``render``, ``command``), what both use in :mod:`lkmetrics.bench.shared`; the Typer wiring in
:mod:`lkmetrics.cli.bench`. Nothing imported from here at start-up loads livekit.
"""
