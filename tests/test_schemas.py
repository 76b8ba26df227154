"""The published JSON Schemas (``entrodiag/schemas/``): valid schemas, shipped with the package, and
followed by real outputs: ``analyze --json`` and ``watch --json`` on the sample run, on a damaged
run and on a run with no step rows; ``query --json``."""

from __future__ import annotations

import json

import jsonschema
import pytest

from entrodiag.cli import main
from entrodiag.store.reader import load_run
from entrodiag.schemas import SCHEMA_VERSION, SCHEMAS, SchemaError, schema, validate
from run_damage import SAMPLE_RUN, copy_sample_run, truncate_part
from schema_check import diagnosis, query_rows, watch_events


@pytest.mark.parametrize("name", SCHEMAS)
def test_each_schema_is_a_valid_draft_2020_12_schema_of_this_version(name):
    doc = schema(name)
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    errors = jsonschema.Draft202012Validator(doc).iter_errors({"schema_version": "0.9"})
    assert any(list(e.absolute_path) == ["schema_version"] for e in errors)  # another version is refused


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("schemas")
    damaged = copy_sample_run(base / "damaged")
    truncate_part(sorted((damaged / "steps").glob("*.parquet"))[0])
    empty = copy_sample_run(base / "empty")
    for table in ("steps", "evals", "tokens", "samples", "spans", "events"):
        for part in (empty / table).glob("*.parquet"):
            part.unlink()
    return {"sample": SAMPLE_RUN, "damaged": damaged, "empty": empty}


@pytest.mark.parametrize("name", ["sample", "damaged", "empty"])
def test_analyze_and_watch_json_follow_their_schemas(runs, capsys, name):
    assert main(["analyze", str(runs[name]), "--json"]) == 0
    doc = diagnosis(capsys.readouterr().out)
    assert doc["run"]["steps"] == (0 if name == "empty" else doc["run"]["steps"])
    assert main(["watch", str(runs[name]), "--json", "--no-events"]) == 0
    events = watch_events(capsys.readouterr().out)
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "end" and events[-1]["exit_code"] == 0 and "status" in kinds
    status = next(e for e in events if e["event"] == "status")
    assert status["step"] == doc["run"]["last_step"]
    assert [e["flag"]["kind"] for e in events if e["event"] == "flag"] == [f["kind"] for f in doc["flags"]["items"]]


def test_a_doc_that_breaks_the_schema_is_named(runs, capsys):
    assert main(["analyze", str(runs["sample"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    doc["flags"]["items"][0]["severity"] = "dire"
    with pytest.raises(SchemaError, match=r"at flags/items/0/severity"):
        validate("diagnosis", doc)


def test_query_json_follows_its_schema(runs, tmp_path, capsys):
    sql = "select run_id, count(*) as n, last(entropy_hist order by step) as hist from steps group by run_id order by run_id"
    assert main(["query", str(runs["damaged"].parent), sql, "--json", "--index", str(tmp_path)]) == 0
    rows = query_rows(capsys.readouterr().out)
    assert [(r["run_id"], r["n"]) for r in rows] == [("damaged", load_run(runs["damaged"]).steps.height)]
    assert rows[0]["hist"] == load_run(runs["damaged"]).steps["entropy_hist"][-1].to_list()
