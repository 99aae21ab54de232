"""One writer per key across hosts: the lease in the archive store, raced by separate processes (each its own
staging directory, like two workers) on a local root, on moto's S3 server and on an fsspec store that is not
the LocalStore path (``shareddisk://``: fsspec's local filesystem under another name, so ``FsspecStore``)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from artifact_harvest.core.archive import ArchiveConflict, Archiver
from artifact_harvest.core.lease import LeaseLost, LeaseSettings
from tests.integration.core.test_archive import staged

MiB = 1 << 20
KEY = "export-1"
SETTINGS = {"LEASE_RENEW_INTERVAL": "0.2", "LEASE_EXPIRY": "2", "LEASE_WAIT_TIMEOUT": "120",
            "LEASE_POLL_INTERVAL": "0.2"}
CTX = multiprocessing.get_context("spawn")  # a fresh interpreter each, like two workers


class SharedDisk(LocalFileSystem):
    """A local directory reached through fsspec (not LocalStore): exclusive create is ``open(..., "xb")``."""

    protocol = ("shareddisk",)

    @classmethod
    def _strip_protocol(cls, path):
        path = path[len("shareddisk://"):] if str(path).startswith("shareddisk://") else path
        return super()._strip_protocol(path)


def register_shareddisk() -> None:
    import fsspec
    from airflow.sdk.io.store import attach

    fsspec.register_implementation("shareddisk", SharedDisk, clobber=True)
    attach("shareddisk", fs=SharedDisk())


@pytest.fixture(params=["local", "s3", "fsspec"])
def store(request, monkeypatch, tmp_path):
    """The archive root of one kind, set as the Variable the child processes inherit; yields a lister of it."""
    for name, value in SETTINGS.items():
        monkeypatch.setenv(f"AIRFLOW__ARTIFACT_HARVEST__{name}", value)
    if request.param == "s3":
        request.getfixturevalue("s3_archive")
        object_store = request.getfixturevalue("object_store")
        from harvest_emulator.object_store import ARCHIVE_BUCKET

        def names() -> list[str]:
            listing = object_store.client().list_objects_v2(Bucket=ARCHIVE_BUCKET, Prefix="archive/")
            return sorted(o["Key"][len("archive/"):] for o in listing.get("Contents", []))

        return request.param, names
    root = tmp_path / "archive"
    root.mkdir()
    if request.param == "fsspec":
        register_shareddisk()
        monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT", f"shareddisk://{root}")
    else:
        monkeypatch.setenv("AIRFLOW_VAR_ARTIFACT_ARCHIVE_ROOT", str(root))
    return request.param, lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- what runs in the child processes ---------------------------------------------------------------------
def _child_setup(kind: str, staging: str | None = None) -> None:
    if kind == "fsspec":
        register_shareddisk()
    if staging:
        os.environ["AIRFLOW_VAR_ARTIFACT_STAGING_DIR"] = staging


def _download(kind: str, staging: str, blob: dict, start, results) -> None:
    """One worker's ``download_and_archive`` of the key; reports the event it would emit and how long it took."""
    _child_setup(kind, staging)
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from artifact_harvest.core.assets import asset_for
    from artifact_harvest.core.transfer import RemoteFile
    from artifact_harvest.core.operators import download_and_archive

    context = {"run_id": f"run-{os.getpid()}", "outlet_events": OutletEventAccessors()}
    fresh = lambda: RemoteFile(blob["url"], blob["filename"], blob["size"], blob["md5"])  # noqa: E731
    start.wait(timeout=60)
    started = time.monotonic()
    try:
        manifest = download_and_archive("qianfan", KEY, fresh, {"task_id": 1}, context)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        results.put({"error": repr(exc)})
        return
    results.put({"pid": os.getpid(), "seconds": time.monotonic() - started, "manifest": manifest,
                 "event": dict(context["outlet_events"][asset_for("qianfan")].extra)})


def _hold_until_killed(kind: str, results) -> None:
    """Take the lease and never release it: the parent SIGKILLs this process (a worker dying mid-transfer)."""
    _child_setup(kind)
    lease = Archiver().lease("qianfan", KEY, owner={"host": "doomed", "pid": os.getpid()})
    results.put(lease.acquire())
    multiprocessing.Event().wait()


def _hold_in_turn(kind: str, start, results) -> None:
    """Take the lease, hold it 0.3 s, release it unarchived: the next taker gets it at once."""
    _child_setup(kind)
    lease = Archiver().lease("qianfan", KEY, owner={"pid": os.getpid()}, is_done=lambda: False)
    start.wait(timeout=60)
    assert lease.acquire()
    held = (time.time(), lease.generation)
    time.sleep(0.3)  # the work done under the lease, not a synchronisation
    lease.check()
    results.put((held[0], time.time(), held[1]))
    lease.release(archived=False)


def _put(kind: str, staging: str, data: bytes, start, results) -> None:
    """``Archiver.put`` without a lease: only the store's own create arbitrates."""
    _child_setup(kind)
    file = staged(Path(staging), data)
    start.wait(timeout=60)
    try:
        outcome = Archiver().put(file, provider="minimax", artifact_key="job-1", source={}, dag_id="d", run_id="r")
        results.put(("created" if outcome.created else "found", outcome.manifest["sha256"]))
    except ArchiveConflict as exc:
        results.put(("conflict", str(exc)))


def _spawn(target, *args) -> multiprocessing.Process:
    proc = CTX.Process(target=target, args=args)
    proc.start()
    return proc


def _collect(results, procs: list, count: int, timeout: float = 180) -> list:
    outcomes = [results.get(timeout=timeout) for _ in range(count)]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0, proc.exitcode
    assert not [o for o in outcomes if isinstance(o, dict) and "error" in o], outcomes
    return outcomes


def _blob(emu, size: int) -> dict:
    blob = emu.control.create_blob(size, filename="export.tar")
    emu.control.configure(per_connection_rate=MiB)  # ~3 s each: the second worker arrives while the first fetches
    return blob


def _body_gets(emu, blob: dict) -> list[dict]:
    return [r for r in emu.control.requests(path=f"^/blobs/{blob['blob_id']}/") if r["method"] == "GET"]


def _check_one_copy(kind: str, names, outcomes: list[dict], blob: dict) -> None:
    firsts = [o for o in outcomes if not o["event"].get("already_archived")]
    repeats = [o for o in outcomes if o["event"].get("already_archived")]
    assert len(firsts) == 1 and len(repeats) == len(outcomes) - 1, [o["event"] for o in outcomes]
    assert all(o["manifest"] == firsts[0]["manifest"] for o in outcomes)
    assert firsts[0]["manifest"]["sha256"] == blob["sha256"] and firsts[0]["manifest"]["size_bytes"] == blob["size"]
    assert names() == [f"qianfan/{KEY}/export.tar", f"qianfan/{KEY}/manifest.json"], "no lease left, no temp"
    assert "Signature" not in json.dumps(firsts[0]["manifest"])


def test_two_workers_race_one_downloads_the_other_waits_then_finds_the_archive(store, emu, tmp_path):
    kind, names = store
    blob = _blob(emu, 3 * MiB)
    start, results = CTX.Barrier(2), CTX.Queue()
    procs = [_spawn(_download, kind, str(tmp_path / f"staging-{i}"), blob, start, results) for i in range(2)]
    outcomes = _collect(results, procs, 2)

    _check_one_copy(kind, names, outcomes, blob)
    assert len(_body_gets(emu, blob)) == 1, "the body was downloaded once, by the lease holder"
    waiter = next(o for o in outcomes if o["event"].get("already_archived"))
    assert waiter["seconds"] > 1.5, "the waiter waited for the holder's ~3 s transfer"
    staged_files = [p for p in tmp_path.glob("staging-*/**/*") if p.is_file() and p.name != ".lock"]
    assert staged_files == [], "nothing left in either worker's staging"


def test_a_killed_holders_lease_is_taken_over_by_exactly_one_of_two(store, emu, tmp_path):
    kind, names = store
    blob = _blob(emu, 2 * MiB)
    held = CTX.Queue()  # its own: SIGKILLed, the holder may leave the queue's write lock taken
    doomed = _spawn(_hold_until_killed, kind, held)
    assert held.get(timeout=120) is True
    assert any(".lease.0" in n for n in names())
    os.kill(doomed.pid, signal.SIGKILL)  # holding the lease: nothing releases it
    doomed.join(timeout=30)

    start, results = CTX.Barrier(2), CTX.Queue()
    procs = [_spawn(_download, kind, str(tmp_path / f"staging-{i}"), blob, start, results) for i in range(2)]
    outcomes = _collect(results, procs, 2)

    _check_one_copy(kind, names, outcomes, blob)
    assert len(_body_gets(emu, blob)) == 1, "one taker downloaded; the other waited for it"
    assert min(o["seconds"] for o in outcomes) >= 2 * 0.9, "nobody took the lease before its expiry (2 s)"


def test_holders_never_overlap(store):
    kind, names = store
    start, results = CTX.Barrier(4), CTX.Queue()
    procs = [_spawn(_hold_in_turn, kind, start, results) for _ in range(4)]
    held = sorted(_collect(results, procs, 4))

    for (_, end, _), (begin, _, _) in zip(held, held[1:]):
        assert begin >= end, f"two holders at once: {held}"
    assert sorted(g for _, _, g in held) == [0, 1, 2, 3], "each released lease was taken over by a new generation"
    assert [n for n in names() if ".tmp" in n] == []


@pytest.mark.parametrize("same", [True, False], ids=["same-bytes", "different-bytes"])
def test_the_store_arbitrates_the_final_write(store, tmp_path, same):
    """Without any lease, three archivers of one key: one creates, the others find (same bytes) or conflict."""
    kind, names = store
    payloads = [b"x" * MiB] * 3 if same else [bytes([i]) * MiB for i in range(3)]
    start, results = CTX.Barrier(3), CTX.Queue()
    procs = [_spawn(_put, kind, str(tmp_path / f"staging-{i}"), data, start, results)
             for i, data in enumerate(payloads)]
    outcomes = _collect(results, procs, 3)

    kinds = sorted(o[0] for o in outcomes)
    assert kinds == (["created", "found", "found"] if same else ["conflict", "conflict", "created"]), outcomes
    winner = next(o[1] for o in outcomes if o[0] == "created")
    assert names() == ["minimax/job-1/manifest.json", "minimax/job-1/model.bin"]
    archiver = Archiver()
    assert archiver.manifest("minimax", "job-1")["sha256"] == winner
    assert archiver.store.stat(archiver.root / "minimax/job-1/model.bin") == (MiB, winner), "manifest = bytes"
    for kind_, text in outcomes:
        if kind_ == "conflict":
            assert winner in text


# -- a holder that is no longer the holder (in one process: the order of events is the point) -------------
FAST = LeaseSettings(renew_interval=60, expiry=1, wait_timeout=30, poll_interval=0.1)  # A never renews here


def test_a_stalled_holder_taken_over_archives_nothing(archive_root):
    stalled = Archiver().lease("qianfan", KEY, owner={"host": "a"}, settings=FAST, is_done=lambda: False)
    assert stalled.acquire() and stalled.generation == 0
    taker = Archiver().lease("qianfan", KEY, owner={"host": "b"}, settings=FAST, is_done=lambda: False)
    started = time.monotonic()
    assert taker.acquire() and taker.generation == 1
    assert time.monotonic() - started >= FAST.expiry, "taken only after the expiry"

    with pytest.raises(LeaseLost, match="took the lease over"):
        stalled.check()
    stalled.release(archived=False)  # lost: it leaves the new holder's lease alone
    folder = archive_root / "qianfan" / KEY
    assert json.loads((folder / ".lease.1").read_text())["host"] == "b"
    assert "released" not in json.loads((folder / ".lease.0").read_text())
    taker.check()
    taker.release(archived=True)
    assert list(folder.iterdir()) == []


def test_a_renewal_notices_another_holder_in_its_object(archive_root):
    """Two creates that both passed (a store whose create is not atomic): the later write keeps the object."""
    lease = Archiver().lease("qianfan", KEY, owner={"host": "a"}, settings=FAST, is_done=lambda: False)
    assert lease.acquire()
    path = lease.folder / ".lease.0"
    lease.store.replace_text(path, json.dumps({"token": "f" * 32, "host": "b", "pid": 7}))

    lease.renew()
    with pytest.raises(LeaseLost, match="names another holder .b pid 7"):
        lease.check()
    lease.release(archived=False)
    assert json.loads(Path(path.path).read_text())["host"] == "b", "the other holder's object is left alone"


def test_a_released_lease_is_taken_at_once(archive_root):
    holder = Archiver().lease("qianfan", KEY, owner={"host": "a", "pid": 1}, settings=FAST, is_done=lambda: False)
    assert holder.acquire()
    holder.release(archived=False)  # failed before archiving: marked released
    waiter = Archiver().lease("qianfan", KEY, settings=FAST, is_done=lambda: False)
    started = time.monotonic()
    assert waiter.acquire() and waiter.generation == 1
    assert time.monotonic() - started < FAST.expiry, "no expiry to wait for"
    waiter.release(archived=True)
