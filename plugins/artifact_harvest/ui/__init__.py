"""The Artifacts page in the Airflow UI: an AirflowPlugin (``airflow.plugins`` entry point) with a FastAPI app
mounted in the API server, indexed by the Asset events the download tasks emit (docs/ui.md)."""
