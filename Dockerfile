# The project's Airflow image: the official apache/airflow:3.3.2 plus this provider package (hooks, triggers,
# sensors, operators, and the emulator), installed at build time rather than through _PIP_ADDITIONAL_REQUIREMENTS,
# so every container starts from the same, already-resolved environment.
FROM apache/airflow:3.3.2

# pip runs as the airflow user, as the official image requires; pinning apache-airflow keeps pip from
# upgrading or downgrading the Airflow the image ships (its Celery, Redis and Postgres providers are kept too)
COPY --chown=airflow:0 pyproject.toml /opt/artifact-harvest/
COPY --chown=airflow:0 plugins /opt/artifact-harvest/plugins
COPY --chown=airflow:0 include /opt/artifact-harvest/include
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        "bce-python-sdk==0.9.79" \
        "boto3==1.44.5" \
        /opt/artifact-harvest

# the DAG files are baked in too (docker-compose.yaml also mounts ./dags over them for development), with the
# sample data they find beside them (dags/../include/sample_data)
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 include/sample_data /opt/airflow/include/sample_data
