"""What the tracker sinks and the tracker importers share: the one-line error of a tracker
package that is not installed, passwords masked in URIs and in trackers' messages, and MLflow's
HTTP retries and timeout bounded while entrodiag talks to a server.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

#: a URI's password: from the user part's ':' to the LAST '@' before the host (a password may hold '@')
_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^/\s]*@")


def missing_package(package: str, extra: str, what: str, error: type[Exception] = ValueError) -> Exception:
    """The one-line error (of class ``error``) for an optional tracker package that is not
    installed: ``what`` needs ``package``, installed by the extra ``extra``."""
    return error(f"{what} needs the {package} package, which is not installed: "
                 f"pip install 'entrodiag[{extra}]'")


def redacted(text: str) -> str:
    """``text`` with the password of every URI's user part masked (``postgresql://me:***@host/db``):
    for a URI given by the user, and for a tracker's messages that repeat it.

    >>> redacted("http://u:p@ss@host/x")
    'http://u:***@host/x'
    """
    return _PASSWORD.sub(r"\1***@", text)


@contextmanager
def mlflow_env(retries: int = 2, timeout_s: int = 60, file_store: bool = False) -> Iterator[None]:
    """MLflow's switches while entrodiag talks to a store: a server's retries and per-request
    timeout bounded (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``/``_TIMEOUT``) unless the user set them;
    with ``file_store``, MLflow 3's file store allowed. The environment is restored after."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries), "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s)}
    if file_store:
        wanted["MLFLOW_ALLOW_FILE_STORE"] = "true"
    saved = {k: os.environ.get(k) for k in wanted}
    for k, v in wanted.items():
        if k == "MLFLOW_ALLOW_FILE_STORE" or saved[k] is None:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
