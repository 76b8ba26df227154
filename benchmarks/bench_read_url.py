"""Reading a run from an object store: ``load_run`` + ``analyze_run`` of the sample run on a local
disk and on an S3-protocol server (moto, started here on 127.0.0.1), as shipped and compacted.

Every trial clears the reader's per-process caches (``parts.clear_caches``: verdicts and the
object-store parts held in memory; ``cold``: every part is fetched again) and then reads the run
once more (``warm``); the four variants are interleaved in each round. Times
are medians over rounds; ratios are against the local run as shipped, measured in the same rounds.
moto is a single-process Python server, far slower per request than S3 or a MinIO: the URL
numbers show the cost in requests (a recursive LIST of the run twice, then a HEAD and a GET per
part when cold, nothing more when warm), not what a real store costs.

    python benchmarks/bench_read_url.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample-run"


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(150):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"moto did not start on {url} (pip install 'moto[server]')")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    proc, endpoint = start_moto()
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    import pyarrow.fs as pafs

    from entrodiag.analysis import analyze_run
    from entrodiag.store import reader
    from entrodiag.store.compact import compact
    from entrodiag.store.location import locate
    from entrodiag.store.parts import clear_caches

    try:
        tmp = Path(tempfile.mkdtemp(prefix="bench-read-url-"))
        compacted = tmp / "compacted"
        shutil.copytree(SAMPLE, compacted)
        compact(compacted)
        pafs.S3FileSystem(endpoint_override=endpoint, access_key="bench", secret_key="bench", region="us-east-1",
                          scheme="http", allow_bucket_creation=True).create_dir("bench")
        variants = {"local": str(SAMPLE), "local, compacted": str(compacted),
                    "s3 (moto)": "s3://bench/runs/sample", "s3 (moto), compacted": "s3://bench/runs/compacted"}
        for src, url in ((SAMPLE, variants["s3 (moto)"]), (compacted, variants["s3 (moto), compacted"])):
            dest = locate(url)
            pafs.copy_files(str(src), dest.fs_path, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=dest.fs)
        parts = {name: sum(len(reader.load_run(p).parts(t)) for t in reader.TABLES) for name, p in variants.items()}
        times: dict[str, dict[str, list[float]]] = {name: {"cold": [], "warm": []} for name in variants}
        for _ in range(args.rounds):
            for name, path in variants.items():
                clear_caches()
                t = time.perf_counter()
                analyze_run(reader.load_run(path))
                times[name]["cold"].append(time.perf_counter() - t)
                t = time.perf_counter()
                analyze_run(reader.load_run(path))
                times[name]["warm"].append(time.perf_counter() - t)
        base = {k: statistics.median(times["local"][k]) for k in ("cold", "warm")}
        print(f"load_run + analyze_run of data/sample-run, median of {args.rounds} rounds")
        print(f"{'variant':24} {'parts':>6} {'cold ms':>9} {'ratio':>7} {'warm ms':>9} {'ratio':>7}")
        for name in variants:
            c, w = (statistics.median(times[name][k]) for k in ("cold", "warm"))
            print(f"{name:24} {parts[name]:>6} {c * 1000:>9.0f} {c / base['cold']:>7.2f} {w * 1000:>9.0f} "
                  f"{w / base['warm']:>7.2f}")
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
