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
import urllib.request
import uuid

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint URL of a moto S3 server started for this test session."""
    try:
        import moto.server  # noqa: F401
    except ImportError as e:
        pytest.skip(f"moto[server] is not installed ({e}); pip install 'moto[server]'")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # the server logs every request on stderr: a file, not a pipe nobody reads (a full pipe
    # blocks the server after a few hundred requests)
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=log,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                err = log.read().decode(errors="replace")[-500:]
                pytest.skip(f"the moto S3 server did not start on {url}: {err}")
            time.sleep(0.2)
    yield url
    log.close()
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Point the environment at the test server and create an empty bucket; yields the bucket name."""
    env = {
        "AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import pyarrow.fs as pafs

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    fs = pafs.S3FileSystem(endpoint_override=s3_server, access_key="testing", secret_key="testing",
                           region="us-east-1", scheme="http", allow_bucket_creation=True)
    fs.create_dir(bucket)
    yield bucket
