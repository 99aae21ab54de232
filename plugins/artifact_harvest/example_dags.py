"""All eight pipelines for your own Airflow: importing this module defines the DAGs below as module globals.

One file in your dags folder gives them all (Airflow's safe mode parses only files that mention both
"airflow" and "dag", hence the comment)::

    from artifact_harvest.example_dags import *  # airflow DAGs: the artifact-harvest pipelines

Import it from one file only: the DAGs are registered to the file Airflow is parsing when they are made, so two
files importing this module give duplicate DAG ids. Nothing in the package imports it (this repository's
``dags/`` call one builder of ``artifact_harvest.pipelines`` each).
"""

from __future__ import annotations

from artifact_harvest.pipelines.flighthub2 import (
    build_flighthub2_archive_project_models,
    build_flighthub2_download_model,
    build_flighthub2_reconstruct_model,
)
from artifact_harvest.pipelines.minimax import (
    build_minimax_archive_file,
    build_minimax_archive_new_files,
    build_minimax_generate_speech,
    build_minimax_generate_video,
)
from artifact_harvest.pipelines.qianfan import build_qianfan_export_model

__all__ = [
    "flighthub2_archive_project_models",
    "flighthub2_download_model",
    "flighthub2_reconstruct_model",
    "minimax_archive_file",
    "minimax_archive_new_files",
    "minimax_generate_speech",
    "minimax_generate_video",
    "qianfan_export_model",
]

flighthub2_archive_project_models = build_flighthub2_archive_project_models()
flighthub2_download_model = build_flighthub2_download_model()
flighthub2_reconstruct_model = build_flighthub2_reconstruct_model()
minimax_archive_file = build_minimax_archive_file()
minimax_archive_new_files = build_minimax_archive_new_files()
minimax_generate_speech = build_minimax_generate_speech()
minimax_generate_video = build_minimax_generate_video()
qianfan_export_model = build_qianfan_export_model()
