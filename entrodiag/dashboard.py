"""``entrodiag dashboard``: find the Streamlit app and start it on a runs root.

The app is the package ``entrodiag.app`` (``entrodiag/app/``, in a checkout and in the installed
package alike). The runs root reaches the app through the environment variable ``ROOT_ENV``,
which ``streamlit run entrodiag/app/streamlit_app.py`` from a checkout can set too (default: ``runs``).

The launcher runs ``entrodiag/app/dashboard_server.py`` (the app behind a Host and Origin check, against DNS
rebinding) and pins Streamlit's own protections on the command line, where a ``config.toml`` cannot
loosen them: XSRF protection and CORS on, the agent API off, ``server.allowedHosts`` the names of
the bound address (``allowed_hosts``).

Imports nothing heavy: streamlit is only looked up, and runs in its own process.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

#: The app's entry script (``st.navigation`` over one file per page).
APP_ENTRY = "streamlit_app.py"
#: What the launcher runs: ``APP_ENTRY`` as an ``st.App`` behind the Host/Origin check.
SERVER_ENTRY = "dashboard_server.py"
#: Names of this machine that a browser may use for a dashboard bound to a loopback address.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
#: Environment variable that carries the runs root to the app.
ROOT_ENV = "ENTRODIAG_RUNS_ROOT"
#: the metric named with ``entrodiag dashboard --metric`` (R of the law, in each run that has it)
METRIC_ENV = "ENTRODIAG_METRIC"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8501


class DashboardError(RuntimeError):
    """The dashboard cannot start (streamlit missing, app files missing); the message says why."""


def app_dir() -> Path:
    """The folder holding the app: the package ``entrodiag.app`` (found without importing it)."""
    folder = Path(__file__).resolve().parent / "app"
    if (folder / APP_ENTRY).is_file() and (folder / SERVER_ENTRY).is_file():
        return folder
    raise DashboardError(f"the dashboard's files ({APP_ENTRY}, {SERVER_ENTRY}) are not in {folder}; reinstall entrodiag")


def allowed_hosts(host: str) -> list[str]:
    """The Host names the dashboard answers to when bound to ``host``: the loopback names and
    ``host`` itself; for a wildcard address (``0.0.0.0``, ``::``) also this machine's name, full
    name and their addresses. Any other name (a DNS-rebinding page's) is refused."""
    names = [*LOOPBACK_HOSTS]
    if host in WILDCARD_HOSTS:
        import socket

        names += [socket.gethostname(), socket.getfqdn()]
        try:
            names += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)]
        except OSError:  # a machine whose own name does not resolve: its names above still count
            pass
    else:
        names.append(host)
    return list(dict.fromkeys(n.strip("[]").lower() for n in names if n))


def streamlit_command(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> list[str]:
    """The ``streamlit run`` command line for the app (headless, no usage statistics, no file
    watcher: the app's files do not change while it runs; the protections of the module
    docstring)."""
    hosts = [flag for name in allowed_hosts(host) for flag in ("--server.allowedHosts", name)]
    return [
        sys.executable, "-m", "streamlit", "run", str(app_dir() / SERVER_ENTRY),
        "--server.address", host,
        "--server.port", str(int(port)),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
        "--server.enableXsrfProtection", "true",
        "--server.enableCORS", "true",
        "--server.enableAgentApi", "false",
        *hosts,
    ]


def run_dashboard(root: str | os.PathLike = "runs", *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                  replace_process: bool = True, metric: str | None = None) -> int:
    """Start the dashboard on ``root`` (a folder of runs, or one run; a local path or a URL such as
    ``s3://bucket/runs``, read with the environment's endpoint and credentials) at http://host:port.

    With ``replace_process`` (POSIX) the current process becomes the streamlit server, so that
    stopping it (Ctrl-C, a signal to its pid) stops the server; otherwise streamlit runs as a
    child and its exit code is returned. ``metric`` is R of the law in every run that logs it
    (the others keep their default choice, and the pages say which is used and why).

    Raises:
        DashboardError: streamlit is not installed, or the app files are missing.
    """
    if importlib.util.find_spec("streamlit") is None or importlib.util.find_spec("plotly") is None:
        raise DashboardError("the dashboard needs streamlit and plotly: pip install 'entrodiag[dashboard]'")
    from .store.location import LocationError, is_url, locate

    cmd = streamlit_command(host, port)
    try:
        remote = is_url(root)
        root_path = locate(root).url if remote else Path(root).expanduser().resolve()
    except LocationError as e:  # an unsupported scheme, a query string or credentials in the URL
        raise DashboardError(str(e)) from None
    env = {**os.environ, ROOT_ENV: str(root_path)}
    env.pop(METRIC_ENV, None)
    if metric:
        env[METRIC_ENV] = metric
    shown = f"[{host}]" if ":" in host else host
    print(f"entrodiag dashboard: runs under {root_path}\n  open http://{shown}:{port}  (Ctrl-C stops it)",
          flush=True)
    if not remote and not root_path.is_dir():
        print(f"  note: {root_path} does not exist yet; the dashboard shows it once it does", flush=True)
    if replace_process and os.name == "posix":
        os.execve(cmd[0], cmd, env)  # does not return
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130

