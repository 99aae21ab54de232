"""Airflow DAG file: ``qianfan_export_model``, built by artifact_harvest.pipelines.qianfan."""

from artifact_harvest.pipelines.qianfan import build_qianfan_export_model

dag = build_qianfan_export_model()
