"""A real S3-protocol server for tests: moto's standalone server on 127.0.0.1.

``s3_server`` (a session fixture, registered in conftest) starts ``moto.server`` in a subprocess
on a free port and yields its endpoint URL; ``s3_env`` (function scope) points the standard
environment at it (``AWS_ENDPOINT_URL``, fake credentials, region) and creates a fresh bucket,
yielding its name. Tests skip with the reason when moto is not installed or the server does not
start. Child processes (``entrodiag ...`` run with ``subprocess``) inherit the environment.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto_server(env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start a moto S3 server on a free port of 127.0.0.1 (``env``: more environment for the
    server, e.g. ``INITIAL_NO_AUTH_ACTION_COUNT=0`` to check credentials); returns the process and
    its endpoint URL. Skips the test with the reason when moto is missing or does not start."""
    import os

    try:
        import moto.server  # noqa: F401
    except ImportError as e:
        pytest.skip(f"moto[server] is not installed ({e}); pip install 'moto[server]'")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # its log goes to a file: a pipe nobody reads fills up (a line per request) and blocks the server
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except urllib.error.HTTPError:  # it answers (a server checking credentials refuses the root)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                log.seek(0)
                err = log.read().decode(errors="replace")[-500:]
                pytest.skip(f"the moto S3 server did not start on {url}: {err}")
            time.sleep(0.2)
    log.close()  # the server keeps its own handle on the file
    return proc, url


def stop_moto_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint URL of a moto S3 server started for this test session."""
    proc, url = start_moto_server()
    yield url
    stop_moto_server(proc)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Point the environment at the test server and create an empty bucket; yields the bucket name."""
    env = {
        "AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield make_bucket(s3_server)


def make_bucket(endpoint: str) -> str:
    """Create a fresh bucket on the moto server at ``endpoint``; returns its name."""
    import pyarrow.fs as pafs

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    fs = pafs.S3FileSystem(endpoint_override=endpoint, access_key="testing", secret_key="testing",
                           region="us-east-1", scheme="http", allow_bucket_creation=True)
    fs.create_dir(bucket)
    return bucket
