"""The morning report (report, plots) and the summary of what a night published."""
