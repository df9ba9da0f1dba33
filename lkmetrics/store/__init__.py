"""The embedded SQLite store of every recorded session.

One database file (``$LKMETRICS_HOME/metrics.db`` unless ``--db`` says otherwise) holds a
``sessions`` row per session and a ``records`` row per record: the whole JSON record plus the
figures that reports read in numeric columns with partial indexes. Modules: ``schema``
(migrations), ``rows`` (record -> row), ``db`` (opening and writing), ``queries`` (reading),
``importer``, ``export`` and ``recorder`` (the live writer). Nothing here imports livekit.
"""

from __future__ import annotations

from lkmetrics.figures import FIGURE_COLUMNS
from lkmetrics.store.db import DB_NAME, default_db_path
from lkmetrics.store.importer import ImportResult, check_import_paths
from lkmetrics.store.queries import Scope, SessionRow, Store
from lkmetrics.store.recorder import FLUSH_INTERVAL, StoreWriter
from lkmetrics.store.rows import check_record, extract, row_of
from lkmetrics.store.schema import LATEST_VERSION

__all__ = [
    "DB_NAME", "FIGURE_COLUMNS", "FLUSH_INTERVAL", "LATEST_VERSION", "ImportResult", "Scope",
    "SessionRow", "Store", "StoreWriter", "check_import_paths", "check_record",
    "default_db_path", "extract", "row_of",
]
