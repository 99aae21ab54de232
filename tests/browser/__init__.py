"""A package so that `airflow_ui` (package scope) stops after the last browser test, not at the end of the
session: an idle `airflow standalone` would take CPU from every later test."""
