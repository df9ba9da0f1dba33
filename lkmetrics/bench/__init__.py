"""Benchmarks of the components an agent uses, measured through LiveKit's own classes.

``bench llm`` (core in :mod:`lkmetrics.bench.llm`, the LiveKit-side driver in
:mod:`lkmetrics.bench.driver`, output in :mod:`lkmetrics.bench.render`, wiring in
:mod:`lkmetrics.cli.bench`). Nothing imported from here at start-up loads livekit.
"""
