"""Airflow DAG file: ``flighthub2_archive_project_models``, built by artifact_harvest.pipelines.flighthub2."""

from artifact_harvest.pipelines.flighthub2 import build_flighthub2_archive_project_models

dag = build_flighthub2_archive_project_models()
