"""entrodiag for coding agents: the tools of ``entrodiag mcp`` (an MCP server over the runs
under one root) as plain functions, the confinement that keeps them under that root, and the
server that publishes them.

- ``confine``: run paths checked against the root (``..``, symlinks out, absolute paths elsewhere
  are refused) and a ``RunsIndex`` that lists only the runs inside it;
- ``tools``: ``list_runs``, ``diagnose``, ``compare``, ``tail``, ``query``, ``forecast``: JSON-ready
  dicts built from the analysis and query functions (``analyze_run``, ``compare_runs``,
  ``store.query``), never a second implementation;
- ``server``: the MCP server (the official ``mcp`` SDK, the optional extra ``entrodiag[mcp]``).

The tools read; nothing here writes into a run folder (the query index lives in the cache folder).
"""
