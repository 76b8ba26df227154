"""Run locations: local paths and object-store URLs (entrodiag.store.location)."""

from pathlib import Path

import pytest

from entrodiag.store.location import LocationError, is_url, locate


@pytest.mark.parametrize("text, url", [
    ("runs/a", False), ("/abs/runs/a", False), ("name:with:colon", False), (Path("s3:/x"), False),
    ("s3://bucket/runs/a", True), ("gs://bucket/a", True), ("file:///tmp/a", True), ("S3://bucket/a", True),
])
def test_is_url(text, url):
    assert is_url(text) is url


@pytest.mark.parametrize("text, words", [
    ("s3:/bucket/runs", "two slashes"), ("http://example.com/run", "unsupported URL scheme 'http'"),
    ("hdfs://nn/runs", "unsupported"),
])
def test_bad_urls_are_refused_with_a_reason(text, words):
    with pytest.raises(LocationError, match=words):
        locate(text)


@pytest.mark.parametrize("text, words", [
    ("s3://bucket/runs?endpoint_override=127.0.0.1:9&scheme=http", "takes no query string"),
    ("gs://bucket/runs?endpoint_override=127.0.0.1:9", "takes no query string"),
    ("file:///tmp/runs?a=1", "takes no query string"),  # the shape of a query: refused on every scheme
    ("s3://KEY:SECRET@bucket/runs", "takes no credentials"),
])
def test_store_settings_in_a_url_are_refused_before_any_request(text, words, monkeypatch):
    """The endpoint, scheme, region and keys come only from the environment: a URL carrying them is
    refused before pyarrow sees it (pyarrow would send requests signed with the environment's keys
    to the endpoint of the query string)."""
    from types import SimpleNamespace

    from entrodiag.store import location

    opened = SimpleNamespace(from_uri=lambda url: pytest.fail(f"pyarrow opened {url}"))
    monkeypatch.setattr(location, "pafs", SimpleNamespace(FileSystem=opened))
    with pytest.raises(LocationError, match=words) as e:
        locate(text)
    assert "AWS_ENDPOINT_URL" in str(e.value) and "\n" not in str(e.value)


def test_local_path_and_file_url_are_the_same_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    a, b = locate(tmp_path / "run"), locate(f"file://{tmp_path}/run")
    assert a.is_local and b.is_local
    assert a.local_path == b.local_path == tmp_path / "run"
    assert a.child("run.json").read_text() == b.child("run.json").read_text() == "{}"
    assert [i.base_name for i in b.list()] == ["run.json"]


def test_objects_on_s3_are_written_whole_and_listed(s3_env):
    run = locate(f"s3://{s3_env}/runs/a")
    assert not run.is_local and not run.exists()
    run.child("steps", "part-1.parquet").write_bytes(b"PAR1")
    run.child("run.json").write_bytes(b'{"a": 1}')
    assert run.is_dir() and run.child("run.json").is_file()
    assert run.child("run.json").read_text() == '{"a": 1}'
    assert [i.base_name for i in run.list()] == ["run.json", "steps"]
    assert str(run.child("run.json")) == f"s3://{s3_env}/runs/a/run.json"
    with pytest.raises(LocationError, match="object store"):
        run.local_path
