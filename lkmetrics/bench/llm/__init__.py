"""``bench llm``: `core` (options, figures, JSON document, verdict), `driver` (LiveKit's LLM
classes), `workers` (worker processes), `runner` (a whole bench), `render`, `command`."""
