"""Airflow DAG file: ``minimax_archive_file``, built by artifact_harvest.pipelines.minimax."""

from artifact_harvest.pipelines.minimax import build_minimax_archive_file

dag = build_minimax_archive_file()
