"""Live watch of a running run: incremental collapse detection, an entropy forecast, events,
``on_flag`` callbacks and alert sinks (console, webhook, Slack, e-mail).

    from entrodiag.watch import Watcher
    w = Watcher("runs/demo")
    w.on_flag(lambda flag, status: print(flag.kind, status.line()))
    w.poll()                         # call it every few steps (or run `entrodiag watch --follow`)
"""

from .alerts import AlertDispatcher, load_alert_config
from .follow import follow
from .watcher import Watcher, WatchStatus, describe_flag

__all__ = ["AlertDispatcher", "WatchStatus", "Watcher", "describe_flag", "follow",
           "load_alert_config"]
