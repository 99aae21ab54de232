"""Airflow DAG file: ``minimax_archive_new_files``, built by artifact_harvest.pipelines.minimax."""

from artifact_harvest.pipelines.minimax import build_minimax_archive_new_files

dag = build_minimax_archive_new_files()
