"""Airflow DAG file: ``minimax_generate_video``, built by artifact_harvest.pipelines.minimax."""

from artifact_harvest.pipelines.minimax import build_minimax_generate_video

dag = build_minimax_generate_video()
