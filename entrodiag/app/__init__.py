"""The Streamlit dashboard (``entrodiag dashboard``): the entry script ``streamlit_app.py``, one
script per page (``page_*.py``), the cached loaders (``app_data``) and the shared widgets
(``app_ui``). Streamlit runs the scripts by path; they import the helpers as ``entrodiag.app.*``.
Importing the package imports nothing of streamlit.
"""
