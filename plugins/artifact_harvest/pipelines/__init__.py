"""The pipelines as DAG builders: one module per provider, one ``build_<dag_id>()`` per DAG.

Importing a module here creates no DAG: the DAG exists once its builder is called, in the file Airflow is
parsing (a DAG made in ``with DAG(...)`` is registered to the file being parsed). ``dags/*.py`` call one
builder each; ``artifact_harvest.example_dags`` calls all eight, for a user's own dags folder.
"""
