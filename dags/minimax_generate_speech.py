"""Airflow DAG file: ``minimax_generate_speech``, built by artifact_harvest.pipelines.minimax."""

from artifact_harvest.pipelines.minimax import build_minimax_generate_speech

dag = build_minimax_generate_speech()
