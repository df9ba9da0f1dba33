"""``bench voice``: `core` (the matrix, figures, ranking, knee, verdict), `driver` (simulated
callers), `render`, `command`."""
