# The project's Airflow image: the official apache/airflow:3.3.2 (on the Python the suite runs on) plus this provider
# package (hooks, triggers, sensors, operators, the Artifacts page, the emulator) with its s3:// archive, Redis
# pace and OpenLineage extras, installed at build time rather than through _PIP_ADDITIONAL_REQUIREMENTS, so every container starts
# from the same, already-resolved environment: the tested one, every version taken from constraints.txt
# (tests/deployment/test_image_pins.py checks that nothing here pins otherwise or is left unpinned).
FROM apache/airflow:3.3.2-python3.11

# pip runs as the airflow user, as the official image requires; apache-airflow==${AIRFLOW_VERSION} keeps pip from
# upgrading or downgrading the Airflow the image ships; the Celery and Postgres providers and Celery itself are
# named so that constraints.txt pins them too (celery 5.7 breaks providers-celery 3.26, see requirements.txt)
COPY --chown=airflow:0 pyproject.toml constraints.txt /opt/artifact-harvest/
COPY --chown=airflow:0 plugins /opt/artifact-harvest/plugins
COPY --chown=airflow:0 include /opt/artifact-harvest/include
RUN pip install --no-cache-dir --constraint /opt/artifact-harvest/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" \
        apache-airflow-providers-celery \
        apache-airflow-providers-postgres \
        celery \
        "/opt/artifact-harvest[s3,redis,lineage]"

# the DAG files are baked in too (docker-compose.yaml also mounts ./dags over them for development), with the
# sample data they find beside them (dags/../include/sample_data)
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 include/sample_data /opt/airflow/include/sample_data
