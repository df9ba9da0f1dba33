"""Reports, comparisons, budgets and costs over the store (the figures are lkmetrics.figures)."""
