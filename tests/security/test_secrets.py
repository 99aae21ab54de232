"""Run every pipeline's demo runs, then look for the secrets they used everywhere Airflow keeps things.

Secrets = the connections' token, API key, AK and SK, every credential-like query parameter and
Authorization header value the emulator saw (signed-URL signatures included), and signed-URL query syntax in
general. Places = task logs (captured output and ``$AIRFLOW_HOME/logs``), XCom values, manifests, DAG-run conf.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_CREDENTIAL_PARAM = re.compile(r"sign|token|key|credential|auth|security|policy", re.I)
#: signed-URL query syntax of the object stores involved (S3/OSS/BOS/emulator), whatever the values
SIGNED_QUERY = re.compile(
    r"[?&](Signature|X-Amz-Signature|X-Amz-Credential|x-oss-signature|OSSAccessKeyId|authorization|Expires)=", re.I
)


from harvest_emulator.app import demo_runs  # noqa: E402
from harvest_emulator.credentials import SECRETS  # noqa: E402


def used_secrets(requests_seen: list[dict]) -> set[str]:
    """The fixed credentials plus every credential-like value that went over the wire to the emulator."""
    found = set(SECRETS)
    for entry in requests_seen:
        for name, value in entry.get("query", {}).items():
            if _CREDENTIAL_PARAM.search(name) and len(value) >= 8:
                found.add(value)
        for name, value in entry.get("headers", {}).items():
            if _CREDENTIAL_PARAM.search(name) and len(value) >= 8:
                found.add(value.split(" ", 1)[-1] if value.lower().startswith("bearer ") else value)
    return found


def leaks(text: str, secrets: set[str]) -> list[str]:
    """What of ``secrets`` (shown shortened) or signed-URL query syntax appears in ``text``."""
    hits = [f"{s[:6]}…" for s in secrets if s in text]
    hits += [f"signed-URL query {m.group(0)!r}" for m in SIGNED_QUERY.finditer(text)]
    return hits


def _xcom_and_conf(dag_id: str, run_id: str) -> list[str]:
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id).all()
        texts = [f"xcom {r.task_id}/{r.key}: {json.dumps(r.value, default=str)}" for r in rows]
        run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        texts.append(f"dag-run conf: {json.dumps(run.conf, default=str)}")
    return texts


RUNS = demo_runs()


@pytest.mark.skipif(not RUNS, reason="no provider emulator module has DEMO_RUNS yet")
@pytest.mark.parametrize(("dag_id", "conf"), RUNS, ids=[f"{d}-{i}" for i, (d, _) in enumerate(RUNS)])
def test_no_secret_anywhere_after_a_run(dag_id, conf, airflow_db, emu, archive_root, staging_dir, capfd):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert dag_id in bag.dags, bag.import_errors
    run = bag.dags[dag_id].test(run_conf=conf)
    captured = capfd.readouterr()
    assert run.state == "success", captured.out[-3000:] + captured.err[-3000:]

    seen = emu.control.requests()
    secrets = used_secrets(seen)
    sent = json.dumps(seen)
    assert any(s in sent for s in SECRETS), "no credential went over the wire: is the scan looking at the right thing?"
    places = {"task output": captured.out + captured.err}
    for log in Path(os.environ["AIRFLOW_HOME"], "logs").rglob("*"):
        if log.is_file():
            places[str(log)] = log.read_text(errors="replace")
    for manifest in archive_root.rglob("manifest.json"):
        places[str(manifest)] = manifest.read_text()
    places["xcom and conf"] = "\n".join(_xcom_and_conf(dag_id, run.run_id))

    found = {place: hits for place, text in places.items() if (hits := leaks(text, secrets))}
    assert not found, found


def test_the_scan_finds_what_it_looks_for():
    from harvest_emulator.credentials import MINIMAX_API_KEY

    assert leaks(f"header x-api-key {MINIMAX_API_KEY}!", set(SECRETS))
    assert leaks("GET /blobs/1/a.bin?Expires=1790000000&Signature=00ff", set())
    assert not leaks("GET https://host/blobs/1/a.bin?<redacted>", set(SECRETS))
    seen = [{"query": {"Signature": "deadbeefcafe"}, "headers": {"Authorization": "Bearer tok-123456789"}}]
    assert {"deadbeefcafe", "tok-123456789"} <= used_secrets(seen)
