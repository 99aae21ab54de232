"""Archive upload to S3 (moto's server) against boto3's ``upload_file`` (what ``aws s3 cp`` does), in one run.

moto runs in its own process (``python -m moto.server`` on 127.0.0.1) so its CPU never shares a GIL with the
client; both sides upload the same file to the same server, interleaved, and the fastest of ``--repeat`` runs
counts. Each measurement runs in a fresh child; peak RSS is its VmHWM. The archiver's child imports Airflow
(~200 MB before a byte moves), boto3's does not, so the memory the *transfer* takes is peak minus the child's
RSS right after its imports; "flat in file size" compares ours at ``--size`` and at a quarter of it.

Ours = ``Archiver.archive`` on an ``s3://`` root: multipart with a SHA-256 per part, ``If-None-Match: *``,
the staged file's sha256 re-checked, HeadObject verification, then the manifest.

Targets: ours >= 0.7 x boto3's throughput; transfer memory <= 150 MB; flat (the two sizes within 32 MB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "include"), str(ROOT)]
MiB = 1 << 20
BUCKET = "bench-archive"
TARGET_RATIO, TRANSFER_LIMIT_MB, FLAT_MB = 0.7, 150, 32


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


# -- the measured workloads (run in child processes) ---------------------------------------------------
def _child(mode: str, endpoint: str, path: str, size: int, sha256: str, key: str) -> None:
    if mode == "ours":
        from airflow.sdk import ObjectStoragePath

        from artifact_harvest.core.archive import Archiver
        from artifact_harvest.core.transfer import DownloadedFile

        archiver = Archiver(ObjectStoragePath(f"s3://{BUCKET}/{key}", conn_id="archive_s3"))
        file = DownloadedFile(Path(path), "blob.bin", size, sha256, None, 0.0, 0)
        run = lambda: archiver.archive(file, provider="bench", artifact_key="k", source={}, dag_id="b",  # noqa: E731
                                       run_id="r")
    else:
        from harvest_emulator.object_store import ObjectStore

        store = ObjectStore.__new__(ObjectStore)
        store.url = endpoint
        client = store.client()
        run = lambda: client.upload_file(path, BUCKET, f"{key}/blob.bin")  # noqa: E731
    base = _rss_mb("VmRSS")
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_mb": _rss_mb("VmHWM"), "base_mb": base}))


# -- the harness ------------------------------------------------------------------------------------------
def _start_moto() -> tuple[subprocess.Popen, str]:
    from benchmarks.bench_download import _free_port

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)


def _measure(env: dict, mode: str, endpoint: str, path: Path, size: int, sha256: str, key: str) -> dict:
    link = path.with_name(f"{path.name}.{key}")  # the archiver removes its staging copy: give it a hard link
    os.link(path, link)
    try:
        out = subprocess.run([sys.executable, __file__, "--child", mode, endpoint, str(link), str(size), sha256, key],
                             env=env, stdout=subprocess.PIPE, check=True).stdout
    finally:
        link.unlink(missing_ok=True)
    return json.loads([line for line in out.decode().splitlines() if line.startswith('{"seconds"')][-1])


def _make_file(directory: Path, size: int) -> tuple[Path, str]:
    path, digest = directory / f"blob-{size}.bin", hashlib.sha256()
    block = os.urandom(MiB)
    with path.open("wb") as f:
        for i in range(size // MiB):
            chunk = block[i % 251:] + block[:i % 251]  # no two MiB alike
            f.write(chunk)
            digest.update(chunk)
    return path, digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1 << 30, help="file size in bytes (default 1 GiB)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; the fastest run of a row counts")
    args = parser.parse_args()

    from harvest_emulator.credentials import archive_s3_env
    from harvest_emulator.object_store import ObjectStore

    from scripts.airflow_home import project_airflow_env

    proc, endpoint = _start_moto()
    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        env = {**os.environ, **project_airflow_env(work / "airflow"), **archive_s3_env(endpoint, f"s3://{BUCKET}/x"),
               "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "include"), str(ROOT)])}
        store = ObjectStore.__new__(ObjectStore)
        store.url = endpoint
        store.create_bucket(BUCKET)
        sizes = [args.size // 4, args.size]
        files = {size: _make_file(work, size) for size in sizes}
        best: dict[tuple[str, int], dict] = {}
        for round_ in range(args.repeat):
            for size in sizes:
                for mode in ("boto3", "ours") if round_ % 2 == 0 else ("ours", "boto3"):
                    path, sha256 = files[size]
                    result = _measure(env, mode, endpoint, path, size, sha256, f"{mode}-{size}-{round_}")
                    store.empty_bucket(BUCKET)  # moto keeps objects in memory
                    if (mode, size) not in best or result["seconds"] < best[(mode, size)]["seconds"]:
                        best[(mode, size)] = result
        return _report(best, sizes)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for p in work.glob("*.bin"):
            p.unlink()


def _report(best: dict[tuple[str, int], dict], sizes: list[int]) -> int:
    print("\nupload to moto's S3 server, fastest run of each (other work may share the 2 cores)")
    print(f"{'client':<8} {'size':>9} {'seconds':>8} {'MB/s':>8} {'peak RSS':>9} {'transfer':>9}")
    for (mode, size), r in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{mode:<8} {size / MiB:>6.0f} MiB {r['seconds']:>8.2f} {size / MiB / r['seconds']:>8.1f} "
              f"{r['peak_mb']:>6.0f} MB {r['peak_mb'] - r['base_mb']:>6.0f} MB")
    big, small = sizes[-1], sizes[0]
    ratio = best[("boto3", big)]["seconds"] / best[("ours", big)]["seconds"]
    transfer = {s: best[("ours", s)]["peak_mb"] - best[("ours", s)]["base_mb"] for s in sizes}
    checks = [
        (f"throughput ours / boto3 upload_file at {big / MiB:.0f} MiB = {ratio:.2f}", ratio >= TARGET_RATIO,
         f">= {TARGET_RATIO}"),
        (f"transfer memory at {big / MiB:.0f} MiB = {transfer[big]:.0f} MB", transfer[big] <= TRANSFER_LIMIT_MB,
         f"<= {TRANSFER_LIMIT_MB} MB"),
        (f"flat in size: {transfer[small]:.0f} MB at {small / MiB:.0f} MiB, {transfer[big]:.0f} MB at "
         f"{big / MiB:.0f} MiB", abs(transfer[big] - transfer[small]) <= FLAT_MB, f"within {FLAT_MB} MB"),
    ]
    failed = 0
    for text, ok, target in checks:
        print(f"{'ok ' if ok else 'MISS'} {text} (target {target})")
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7])
    else:
        sys.exit(main())
