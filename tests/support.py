"""Shared test helpers: loading DAGs for dag.test(), reading task states, a task state store stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[1] / "dags"


def load_dag(dag_id: str):
    """The DAG from its file in dags/, the way the dag-processor loads it (import errors fail the test)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{dag_id}.py"), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


@contextmanager
def dag_test_with_deadlines() -> Iterator[None]:
    """Let ``dag.test()`` end a run of a DAG with a Deadline Alert (every waiting pipeline: docs/deadlines.md).

    Airflow 3.3.2's ``dag.test()`` keeps the DAG's alerts in their encoded form where the scheduler holds their
    ids, and ``DagRun.update_state`` fails on them when the run succeeds (``'dict' object has no attribute
    'hex'``; apache/airflow#73428, open). As the fix proposed there does, an encoded alert is read as it is instead
    of looked up by id. Only ``dag.test()`` meets encoded alerts; the scheduler is unaffected.
    """
    from airflow.models.deadline_alert import DeadlineAlert

    by_id = DeadlineAlert.get_by_id.__func__

    def get_by_id(cls, deadline_alert_id, *args, **kwargs):
        if isinstance(deadline_alert_id, dict):
            data = deadline_alert_id.get("__var", deadline_alert_id)
            return cls(reference=data["reference"], interval=data["interval"], callback_def=data["callback"],
                       name=data.get("name"))
        return by_id(cls, deadline_alert_id, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DeadlineAlert, "get_by_id", classmethod(get_by_id))
        yield


def scheduler_dag(dag_id: str):
    """The DAG written to the metadata DB as the DAG processor writes it (its Deadline Alerts to their table), and
    read back as the scheduler and the API server read it: ``create_dagrun`` on it is what they call."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    bundle = manager.get_bundle("dags-folder")
    bag = BundleDagBag(dag_folder=str(DAGS / f"{dag_id}.py"), bundle_path=bundle.path, bundle_name=bundle.name)
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, bundle.name, None)
    with create_session() as session:
        return SerializedDagModel.get_dag(dag_id, session=session)


def task_states(run) -> dict[str, str]:
    """``{task_id: state}``, mapped task instances as ``task_id[i]``."""
    return {
        ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": ti.state
        for ti in run.get_task_instances()
    }


class StateStore:
    """Airflow's per-task-instance store (get/set), in memory: a retry is a new run with the same store.

    The real one lives behind the task supervisor, which no test server can stand in for.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")  # as the real store does
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def uploaded_photos(object_store, resource_uuid: str) -> dict[str, dict]:
    """``{file name: {"etag", "body"}}`` of the photos uploaded for ``resource_uuid`` to FlightHub 2's bucket."""
    from harvest_emulator.flighthub2 import UPLOAD_BUCKET

    client = object_store.client()
    listing = client.list_objects_v2(Bucket=UPLOAD_BUCKET).get("Contents", [])
    return {o["Key"].rsplit("/", 1)[1]: {"etag": o["ETag"].strip('"'),
                                        "body": client.get_object(Bucket=UPLOAD_BUCKET, Key=o["Key"])["Body"].read()}
            for o in listing if f"/{resource_uuid}/" in o["Key"]}


def archived_files(root: Path) -> list[str]:
    """Files of artifacts under an archive root: data and manifests, not the released lease markers a failed
    download leaves (core.lease: a marker is never deleted before the key is archived)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".lease."))
