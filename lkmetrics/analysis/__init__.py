"""Figures, percentiles, reports and budgets: pure functions over records and the store."""
