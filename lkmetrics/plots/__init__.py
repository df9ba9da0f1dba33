"""Charts of recorded sessions: :mod:`~lkmetrics.plots.data` prepares them (pure),
:mod:`~lkmetrics.plots.html` writes one offline HTML file (inline SVG), :mod:`~.image` PNG or
SVG (matplotlib) and :mod:`~.terminal` terminal charts (plotext); the last two need the
``plots`` extra."""
