"""Everything lkmetrics shows people: ``units`` (the one number formatter), ``live`` (a running
session's tables), ``tables`` (the store commands' tables, JSON and CSV)."""
