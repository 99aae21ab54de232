"""Airflow DAG file: ``flighthub2_reconstruct_model``, built by artifact_harvest.pipelines.flighthub2."""

from artifact_harvest.pipelines.flighthub2 import build_flighthub2_reconstruct_model

dag = build_flighthub2_reconstruct_model()
