"""Everything lkmetrics shows people: ``live`` and ``compact`` (a running session), ``tables``
(the store commands' tables, JSON and CSV), ``jsonl`` and ``append`` (JSON lines out); numbers
are formatted by lkmetrics.units."""
