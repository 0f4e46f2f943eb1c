"""Other platforms' logs: field maps, decoders, times, profiles, joins; through the real CLI."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from ingest.sources.formats.decode import CsvRows, Lines, NotDecodable, decode
from ingest.sources.formats.fieldmap import MISSING, FieldMap, compile_path, get
from ingest.sources.formats.times import TimeError, parse_time, zone
from tests import format_samples as samples
from tests.conftest import Ingest, entry, write_log

# --- times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T12:00:16Z", datetime(2026, 11, 24, 12, 0, 16, tzinfo=UTC)),
        (
            "2026-11-24T12:00:16.420961234Z",
            datetime(2026, 11, 24, 12, 0, 16, 420961, tzinfo=UTC),
        ),  # Go, 9 digits
        ("2026-11-24T12:00:16.42Z", datetime(2026, 11, 24, 12, 0, 16, 420000, tzinfo=UTC)),
        ("2026-11-24T12:00:16.Z", datetime(2026, 11, 24, 12, 0, 16, tzinfo=UTC)),
        ("2026-11-24 13:00:16.420961+01:00", datetime(2026, 11, 24, 12, 0, 16, 420961, tzinfo=UTC)),
        ("2026-11-24T07:00:16-0500", datetime(2026, 11, 24, 12, 0, 16, tzinfo=UTC)),
        ("2026-11-24 12:00:16.420961 UTC", datetime(2026, 11, 24, 12, 0, 16, 420961, tzinfo=UTC)),  # BigQuery
        ("2026-11-24T12:00:16", datetime(2026, 11, 24, 12, 0, 16, tzinfo=UTC)),  # naive: the zone, UTC
        ("1795521616", datetime(2026, 11, 24, 12, 0, 16, tzinfo=UTC)),  # a number written as a string
        ("1795521616.5", datetime(2026, 11, 24, 12, 0, 16, 500000, tzinfo=UTC)),
    ],
)
def test_times_as_platforms_write_them(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def test_epoch_units_by_magnitude_or_configured() -> None:
    second = datetime(2026, 11, 24, 12, 0, 16, tzinfo=UTC)
    assert parse_time(1795521616) == second
    assert parse_time(1795521616123) == second + timedelta(milliseconds=123)
    assert parse_time(1795521616123456) == second + timedelta(microseconds=123456)
    assert parse_time(1795521616123456789) == second + timedelta(microseconds=123456)  # ns, no float rounding
    assert parse_time(1795521616, unit="ms") == datetime(1970, 1, 21, 18, 45, 21, 616000, tzinfo=UTC)


def test_naive_times_in_a_configured_zone() -> None:
    paris = zone("Europe/Paris")
    assert parse_time("2026-11-24T13:00:16.420961", paris) == datetime(
        2026, 11, 24, 12, 0, 16, 420961, tzinfo=UTC
    )
    assert parse_time("2026-07-01T13:00:00", paris) == datetime(2026, 7, 1, 11, 0, tzinfo=UTC)  # summer time
    assert parse_time("2026-11-24T13:00:16+05:30", paris).utcoffset() == timedelta(0)  # an offset wins
    with pytest.raises(TimeError, match="unknown time zone"):
        zone("Mars/Olympus")


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01T00:00:00Z", "", True, None, [1]])
def test_bad_times_say_why(bad: object) -> None:
    with pytest.raises(TimeError):
        parse_time(bad)


# --- field paths and decoders --------------------------------------------------------------


def test_field_paths_with_indexes_quotes_and_fallbacks() -> None:
    line = {"a": {"b": [{"c": 1}, {"c": 2}]}, "extra": {"http.path": "/x"}, "id2": "second"}
    assert get(line, compile_path("a.b[1].c")) == 2
    assert get(line, compile_path("a.b[-1].c")) == 2
    assert get(line, compile_path('extra."http.path"')) == "/x"
    assert get(line, compile_path("a.b[5].c")) is MISSING
    fields = FieldMap.from_config({"request_id": ["id1", "id2"]}, "test")
    assert fields.get(line, "request_id") == "second"
    with pytest.raises(ValueError, match="unknown field 'tim'"):
        FieldMap.from_config({"tim": "ts"}, "test")


def test_decoders_chain_until_a_json_value() -> None:
    assert decode({"inputs": "x"}) == {"inputs": "x"}  # a JSON value
    assert decode('{"inputs": "x"}\n') == {"inputs": "x"}  # JSON text, trailing newline
    assert decode("plain text") == "plain text"  # a JSON string body
    lines = decode('{"a": 1}\n{"a": 2}\n')
    assert isinstance(lines, Lines) and lines == [{"a": 1}, {"a": 2}]
    assert decode("eyJhIjogMX0=", ("json", "base64")) == {"a": 1}  # base64 of JSON text, when configured
    assert decode("eyJhIjogMX0=") == "eyJhIjogMX0="  # not guessed otherwise: short words are base64 too
    rows = decode("POSITIVE,0.9\n", encoding="CSV")
    assert isinstance(rows, CsvRows) and rows == [["POSITIVE", "0.9"]]
    assert decode("YSxi", encoding="BASE64", content_type="text/csv") == [["a", "b"]]
    with pytest.raises(NotDecodable, match="non_json_body"):
        decode('{"inputs": "cut sh')
    with pytest.raises(NotDecodable, match="streamed_response"):
        decode('data: {"token": 1}\n\ndata: [DONE]\n\n')


# --- SageMaker -----------------------------------------------------------------------------


def _counts(summary: dict, endpoint: str) -> dict:
    return summary["endpoints"][endpoint]


def test_sagemaker_data_capture(ingest: Ingest) -> None:
    samples.write_sagemaker(ingest.cwd / "capture")
    summary = ingest.json("capture/")
    assert summary["formats"] == {"sagemaker": "1 file, detected"}
    ep = _counts(summary, "nlp-sentiment-prod")  # the endpoint comes from the S3 key's layout
    assert ep["lines"] == 9
    assert ep["written"] == 8  # 1 + 2 + 1 + 1 + 1 + 2 + 0 + 0 + 0
    assert ep["skipped"] == {"input_only": 1, "response_without_request": 1}
    assert ep["rejected"] == 1
    [reject] = ingest.rejects()
    assert reject["line"] == 8 and reject["endpoint"] == "nlp-sentiment-prod"
    assert reject["reason"] == "batch size mismatch: request has 3 inputs, response 1 outputs"

    df = ingest.dataset("monitoring_nlp-sentiment-prod").sort_values(["source_line", "id"])
    got = list(zip(df["text"], df["predicted_label"], df["predicted_score"], strict=True))
    assert got == [
        ("I love this phone", "POSITIVE", 0.998),
        ("great", "POSITIVE", 0.9),
        ("awful", "NEGATIVE", 0.8),
        ("fast delivery", "POSITIVE", 0.97),  # CSV "label,score"
        ("arrived broken", "NEGATIVE", 0.91),  # base64 text/plain
        ("so-so", "NEUTRAL", 0.6),  # base64 JSON both ways
        ("first", "POSITIVE", 0.7),  # JSON Lines
        ("second", "NEGATIVE", 0.65),
    ]
    by_text = {r["inputs"]["text"]: r for r in ingest.records("monitoring_nlp-sentiment-prod")}
    assert by_text["I love this phone"]["metadata"]["request_id"] == "order-1"  # inferenceId
    assert by_text["great"]["metadata"]["request_id"] == "e-2"  # else eventId
    assert by_text["great"]["event_timestamp"] == "2026-11-24T12:00:16.000000"

    again = ingest.json("capture/")  # checkpointed: nothing new
    assert again["lines_read"] == 0
    reread = ingest.json("capture/", "--from-start")  # same ids: nothing twice
    assert _counts(reread, "nlp-sentiment-prod")["skipped"]["already_stored"] == 8
    assert _counts(reread, "nlp-sentiment-prod")["written"] == 0


def test_sagemaker_capture_whose_first_line_is_long_is_detected(ingest: Ingest) -> None:
    # A summarization endpoint's capture: the first invocation's body alone is 200 KB, more
    # than the first bytes detection used to look at. Without --format, the file must still
    # be read as SageMaker, not as the access log with every line rejected.
    article = "The quarterly report says revenue grew. " * 5000
    answer = json.dumps([{"summary_text": "Revenue grew."}])
    lines = [
        samples.capture(json.dumps({"inputs": article}), answer, event_id="long-1"),
        samples.capture(json.dumps({"inputs": "short"}), answer, event_id="s-2"),
    ]
    samples._dump(ingest.cwd / "capture" / "summarize/AllTraffic/2026/11/24/12/00-16-421-9a0c.jsonl", lines)
    summary = ingest.json("capture/")
    assert summary["formats"] == {"sagemaker": "1 file, detected"}
    assert (summary["records_written"], summary["rejected"]) == (2, 0)


def test_sagemaker_ids_are_stable_per_line_content(ingest: Ingest, tmp_path: Path) -> None:
    first = samples.write_sagemaker(ingest.cwd / "a")
    copy = ingest.cwd / "b" / "nlp-sentiment-prod/AllTraffic/2026/11/25/00/x.jsonl"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(first.read_bytes())
    summary = ingest.json("a/", "b/", "--format", "sagemaker")
    assert summary["formats"] == {"sagemaker": "2 files, given"}
    # the copy has the same content: the same ids, so it is not read twice
    assert summary["files_not_read"] == {
        str(Path("b") / copy.relative_to(ingest.cwd / "b")): "same content as another input"
    }


# --- KServe --------------------------------------------------------------------------------


KSERVE_CONFIG = """
[formats.kserve]
labels = ["NEGATIVE", "POSITIVE"]
"""


def test_kserve_events_joined_in_either_order(ingest: Ingest) -> None:
    write_log(ingest.cwd / "events.jsonl", samples.kserve_lines())
    (ingest.cwd / "ingest.toml").write_text(KSERVE_CONFIG)
    summary = ingest.json("events.jsonl", "--config", "ingest.toml")
    assert summary["formats"] == {"kserve": "1 file, detected"}
    ep = _counts(summary, "sentiment")
    assert ep["lines"] == 12
    assert ep["skipped"] == {"missing_output": 1, "response_without_request": 1, "streamed_response": 1}
    assert ep["written"] == 5  # id-1 (2), id-2, id-5, id-7
    records = ingest.records("monitoring_sentiment")
    labels = {r["inputs"]["text"]: r["prediction"]["labels"] for r in records}
    assert labels["good film"] == [{"class": "POSITIVE", "score": 1.0}]  # index 1, named by the config
    assert labels["bad film"] == [{"class": "NEGATIVE", "score": 1.0}]
    assert labels["dull"] == [{"class": "NEGATIVE", "score": 1.0}]  # the response came first
    assert labels["superb"] == [{"class": "NEGATIVE", "score": 0.1}, {"class": "POSITIVE", "score": 0.9}]
    by_text = {r["inputs"]["text"]: r for r in records}
    assert by_text["good film"]["event_timestamp"] == "2026-11-24T12:00:16.420961"  # the request's time
    assert by_text["good film"]["metadata"]["request_id"] == "id-1"


def test_kserve_class_indices_without_names_keep_the_index(ingest: Ingest) -> None:
    write_log(ingest.cwd / "events.jsonl", samples.kserve_lines()[:2])
    ingest("events.jsonl")
    labels = {
        r["inputs"]["text"]: r["prediction"]["labels"][0]["class"]
        for r in ingest.records("monitoring_sentiment")
    }
    assert labels == {"good film": "1", "bad film": "0"}


def test_kserve_pair_split_across_cron_runs_is_joined_once(ingest: Ingest, tmp_path: Path) -> None:
    events = samples.kserve_lines()
    log = ingest.cwd / "events.jsonl"
    # run 1 sees the request of id-2 only (its response came first in the sample: swap)
    first, later = [events[3]], [events[2], *events[:2]]
    write_log(log, first)
    one = ingest.json(str(log), "--format", "kserve")
    assert _counts(one, "sentiment")["written"] == 0
    assert one["notes"] == ["unjoined events kept for the next run: 1"]
    with log.open("a") as fh:
        for e in later:
            fh.write(json.dumps(e) + "\n")
    two = ingest.json(str(log), "--format", "kserve")
    assert _counts(two, "sentiment")["lines"] == 3  # only the new lines were read
    assert _counts(two, "sentiment")["written"] == 3  # id-2 joined across the runs, and id-1
    assert two["notes"] == []

    # The same pairs read in one run get the same ids: the join does not depend on run boundaries.
    other = Ingest(tmp_path / "other")
    other.cwd.mkdir()
    write_log(other.cwd / "events.jsonl", first + later)
    other("events.jsonl", "--format", "kserve")
    ids = sorted(ingest.dataset("monitoring_sentiment")["id"])
    assert ids == sorted(other.dataset("monitoring_sentiment")["id"])


def test_kserve_halves_of_an_earlier_run_that_expire_are_not_lines_of_this_run(ingest: Ingest) -> None:
    # Cron: run 1 reads two requests whose responses never come (the predictor answered
    # non-200); run 2 reads a pair half an hour later, which puts them past the window. The
    # two lines were read (and counted) by run 1: run 2's table must still add up, with no
    # endpoint at -1 mapped lines, and say what became of them.
    log = ingest.cwd / "events.jsonl"
    first = [
        samples.cloudevent("request", "r-1", {"instances": ["crash me"]}, time="2026-11-24T12:00:16Z"),
        samples.cloudevent("request", "n-1", {"instances": ["Ana"]}, time="2026-11-24T12:00:17Z", isvc="ner"),
    ]
    write_log(log, first)
    one = ingest.json(str(log), "--format", "kserve")
    assert one["lines_read"] == 2
    assert one["notes"] == ["unjoined events kept for the next run: 2"]
    with log.open("a") as fh:
        for side, data in (("request", {"instances": ["later"]}), ("response", {"predictions": [1]})):
            fh.write(json.dumps(samples.cloudevent(side, "r-2", data, time="2026-11-24T12:30:00Z")) + "\n")
    two = ingest.json(str(log), "--format", "kserve")
    assert two["lines_read"] == 2  # only the new lines were read
    for endpoint, c in two["endpoints"].items():
        assert c["lines_mapped"] >= 0, (endpoint, c)
        assert c["lines"] == c["lines_mapped"] + sum(c["lines_skipped"].values()) + sum(
            c["lines_rejected"].values()
        ), (endpoint, c)
    assert two["lines"] == {"read": 2, "mapped": 2, "skipped": {}, "rejected": {}}
    assert _counts(two, "sentiment")["written"] == 1
    assert two["notes"] == ["events read by an earlier run that never got their other half: missing_output 2"]


def test_waiting_halves_belong_to_their_target_as_checkpoints_do(ingest: Ingest) -> None:
    # One state file, two targets (two stores here; the local store, then a server, alike):
    # checkpoints are kept per target, and so must be the halves waiting with them. Target A
    # keeps a request waiting; target B reads the file from its start and joins that request
    # with its response. A's next run must still find its own waiting request.
    log = ingest.cwd / "events.jsonl"
    request = samples.cloudevent("request", "r-1", {"instances": ["good"]}, time="2026-11-24T12:00:16Z")
    write_log(log, [request])
    a, b = ("--store", "a", "--state", "shared.sqlite"), ("--store", "b", "--state", "shared.sqlite")
    assert ingest.json(str(log), *a)["notes"] == ["unjoined events kept for the next run: 1"]
    response = samples.cloudevent("response", "r-1", {"predictions": [1]}, time="2026-11-24T12:00:16.2Z")
    with log.open("a") as fh:
        fh.write(json.dumps(response) + "\n")
    assert ingest.json(str(log), *b)["records_written"] == 1
    again = ingest.json(str(log), *a)
    assert (again["lines_read"], again["records_written"], again["notes"]) == (1, 1, [])
    assert len(pd.read_parquet(ingest.cwd / "a" / "monitoring_sentiment")) == 1


def test_kserve_services_sharing_an_event_id_are_not_crossed(ingest: Ingest) -> None:
    # The event id is the caller's Ce-Id header when it sends one: two inference services
    # behind one sink can log the same id. Each request joins its own service's response.
    def event(side: str, data: object, time: str, isvc: str) -> dict:
        return samples.cloudevent(side, "ce-fixed", data, time=time, isvc=isvc)

    positive, negative = [{"label": "POSITIVE", "score": 0.9}], [{"label": "NEGATIVE", "score": 0.8}]
    write_log(ingest.cwd / "events.jsonl", [
        event("request", {"instances": ["first text"]}, "2026-11-24T12:00:00Z", "sentiment"),
        event("request", {"instances": ["second text"]}, "2026-11-24T12:00:00.1Z", "other"),
        event("response", {"predictions": positive}, "2026-11-24T12:00:00.2Z", "sentiment"),
        event("response", {"predictions": negative}, "2026-11-24T12:00:00.3Z", "other"),
    ])  # fmt: skip
    summary = ingest.json("events.jsonl")
    assert summary["records_written"] == 2 and summary["skipped"] == {}
    for dataset, text, label in (("monitoring_sentiment", "first text", "POSITIVE"),
                                 ("monitoring_other", "second text", "NEGATIVE")):  # fmt: skip
        [record] = ingest.records(dataset)
        assert (record["inputs"]["text"], record["prediction"]["labels"][0]["class"]) == (text, label)


def test_a_waiting_half_displaced_by_another_line_of_its_key_is_counted(ingest: Ingest) -> None:
    # Two requests of one service with one id, the first without a response (non-200): the
    # first cannot wait any more once the second takes its place, and is counted, not lost.
    write_log(ingest.cwd / "events.jsonl", [
        samples.cloudevent("request", "ce-1", {"instances": ["failed"]}, time="2026-11-24T12:00:00Z"),
        samples.cloudevent("request", "ce-1", {"instances": ["again"]}, time="2026-11-24T12:00:01Z"),
        samples.cloudevent("response", "ce-1", {"predictions": [1]}, time="2026-11-24T12:00:01.2Z"),
    ])  # fmt: skip
    summary = ingest.json("events.jsonl")
    c = _counts(summary, "sentiment")
    got = (c["lines"], c["lines_mapped"], c["lines_skipped"], c["written"])
    assert got == (3, 2, {"missing_output": 1}, 1)
    [record] = ingest.records("monitoring_sentiment")
    assert record["inputs"]["text"] == "again"


def test_a_pair_straddling_a_time_window_edge_is_in_the_window_of_its_request(ingest: Ingest) -> None:
    # A backfill by day (--since/--until): a request logged just before midnight, its
    # response just after. The pair belongs to its request's day, in one window, once; each
    # half judged on its own fell out of both windows.
    write_log(ingest.cwd / "events.jsonl", [
        samples.cloudevent("request", "late", {"instances": ["good night"]}, time="2026-11-24T23:59:59.9Z"),
        samples.cloudevent("response", "late", {"predictions": [1]}, time="2026-11-25T00:00:00.2Z"),
    ])  # fmt: skip
    day_one = ingest.json("events.jsonl", "--since", "2026-11-24", "--until", "2026-11-25")
    day_two = ingest.json("events.jsonl", "--since", "2026-11-25", "--until", "2026-11-26")
    assert (day_one["records_written"], day_one["skipped"]) == (1, {})
    assert (day_two["records_written"], day_two["skipped"]) == (0, {"outside_time_window": 1})


def test_kserve_halves_flushed_when_no_state_keeps_them(ingest: Ingest) -> None:
    write_log(ingest.cwd / "events.jsonl", [samples.kserve_lines()[0]])
    summary = ingest.json("events.jsonl", "--dry-run")
    assert _counts(summary, "sentiment")["skipped"] == {"missing_output": 1}


# --- Azure ML ------------------------------------------------------------------------------


def test_azureml_inputs_and_outputs_joined_by_correlation_id(ingest: Ingest) -> None:
    blob = ingest.cwd / "blobs" / "c-3.json"
    blob.parent.mkdir()
    blob.write_text(json.dumps([{"ticket": "big payload ticket"}]))
    folder = ingest.cwd / "modelDataCollector" / "tickets" / "blue"
    lines = samples.azure_lines(str(blob), str(ingest.cwd / "blobs" / "gone.json"))
    samples._dump(folder / "model_inputs" / "2026" / "11" / "24" / "12" / "0.jsonl", lines)
    summary = ingest.json("modelDataCollector/")
    assert summary["formats"] == {"azureml": "1 file, detected"}
    assert _counts(summary, "tickets-ner")["written"] == 1
    ep = _counts(summary, "tickets")
    assert ep["lines"] == 11
    assert ep["skipped"] == {"blob_unreadable": 1, "missing_output": 1}
    tc = {r["inputs"]["text"]: r["prediction"]["labels"][0] for r in ingest.records("monitoring_tickets")
          if "inputs" in r}  # fmt: skip
    assert tc == {
        "charged twice": {"class": "billing", "score": 0.9},  # a merged batch, row by row
        "app crashes": {"class": "bug", "score": 0.7},
        "big payload ticket": {"class": "billing", "score": 0.8},  # read from its blob
        "refund please": {"class": "billing", "score": 0.95},  # payload logging
        "late one": {"class": "bug", "score": 0.6},
    }


def test_azureml_collections_in_their_own_folders_join_over_hours(ingest: Ingest) -> None:
    # The collector's own layout: <endpoint>/<deployment>/<collection>/yyyy/MM/dd/HH/. Given
    # the deployment's folder, every model_inputs file is read before any model_outputs file;
    # inputs hours ahead of the first output must still wait for it, not expire against
    # the inputs' own clock.
    folder = ingest.cwd / "modelDataCollector" / "tickets" / "blue"
    for hour in (10, 11, 12, 13):
        ins, outs = [], []
        for i in range(3):
            key, time = f"c{hour}-{i}", f"2026-11-24T{hour:02d}:{i * 10:02d}:00Z"
            ins.append(samples.azure_event("model_inputs", key, [{"ticket": f"ticket {key}"}], time=time))
            if (hour, i) != (10, 2):  # scoring failed after the inputs were collected
                answer = [{"label": "bug", "score": 0.6}]
                outs.append(samples.azure_event("model_outputs", key, answer, time=time))
        for collection, lines in (("model_inputs", ins), ("model_outputs", outs)):
            samples._dump(folder / collection / "2026" / "11" / "24" / f"{hour:02d}" / "inst.jsonl", lines)
    summary = ingest.json("modelDataCollector/")
    ep = _counts(summary, "tickets")
    assert (ep["lines"], ep["written"], ep["skipped"]) == (23, 11, {"missing_output": 1})


def test_azureml_inputs_only_collection_does_not_grow_the_state_forever(ingest: Ingest) -> None:
    # A deployment that collects model_inputs only (for drift): no output will ever come.
    # At the end of a run that saw no output at all, inputs a window older than the newest
    # input are counted as missing_output instead of waiting in the state file forever.
    folder = ingest.cwd / "modelDataCollector" / "tickets" / "blue" / "model_inputs" / "2026" / "11" / "24"
    for hour in (10, 11, 12, 13):
        event = samples.azure_event(
            "model_inputs", f"c{hour}", [{"ticket": "t"}], time=f"2026-11-24T{hour}:00:00Z"
        )
        samples._dump(folder / str(hour) / "inst.jsonl", [event])
    summary = ingest.json("modelDataCollector/")
    assert summary["skipped"] == {"missing_output": 2}
    assert summary["notes"] == ["unjoined events kept for the next run: 2"]


def test_join_window_does_not_depend_on_chunk_size(ingest: Ingest) -> None:
    # A request, then an hour of other pairs, then its response (one second after it in
    # event time): whether the window has passed is decided by the lines read before the
    # response, not by where the reader happened to cut chunks.
    def event(side: str, key: str, data: object, time: str) -> dict:
        return samples.cloudevent(side, key, data, time=time)

    early = event("request", "early", {"instances": ["early"]}, "2026-11-24T12:00:00Z")
    write_log(ingest.cwd / "a.jsonl", [early])
    later = []
    for i in range(60):
        text = f"text {i} " + "x" * 60
        later.append(event("request", f"b{i}", {"instances": [text]}, "2026-11-24T13:00:00Z"))
        later.append(event("response", f"b{i}", {"predictions": [1]}, "2026-11-24T13:00:00.1Z"))
    later.append(event("response", "early", {"predictions": [0]}, "2026-11-24T12:00:01Z"))
    write_log(ingest.cwd / "b.jsonl", later)
    outcomes = []
    for chunk in ("1048576", "4096"):
        summary = ingest.json("a.jsonl", "b.jsonl", "--store", f"store-{chunk}",
                              env={"RUBRIX_INGEST_CHUNK_BYTES": chunk})  # fmt: skip
        outcomes.append((summary["lines"], summary["records"]))
    assert outcomes[0] == outcomes[1]


def test_azureml_deployments_sharing_a_correlation_id_are_not_crossed(ingest: Ingest) -> None:
    # Mirrored traffic: the same request, with its correlation id, scored by two deployments
    # of one endpoint. Each deployment's inputs join its own outputs.
    def event(kind: str, data: list, deployment: str) -> dict:
        found = samples.azure_event(kind, "c-1", data, time="2026-11-24T12:00:16Z")
        found["source"] = found["source"].replace("/deployments/blue", f"/deployments/{deployment}")
        return found

    write_log(ingest.cwd / "mdc.jsonl", [
        event("model_inputs", [{"ticket": "charged twice (to blue)"}], "blue"),
        event("model_inputs", [{"ticket": "charged twice (to green)"}], "green"),
        event("model_outputs", [{"label": "billing", "score": 0.9}], "blue"),
        event("model_outputs", [{"label": "refund", "score": 0.6}], "green"),
    ])  # fmt: skip
    summary = ingest.json("mdc.jsonl")
    assert summary["records_written"] == 2 and summary["skipped"] == {}
    got = {
        r["inputs"]["text"]: r["prediction"]["labels"][0]["class"]
        for r in ingest.records("monitoring_tickets")
    }
    assert got == {"charged twice (to blue)": "billing", "charged twice (to green)": "refund"}


def test_azureml_entity_rows_grouped_by_row_key(ingest: Ingest) -> None:
    lines = samples.azure_lines("/nonexistent", "/nonexistent")[2:4]
    samples._dump(
        ingest.cwd / "tickets" / "blue" / "model_outputs" / "2026" / "11" / "24" / "12" / "0.jsonl", lines
    )
    summary = ingest.json("tickets/", "--format", "azureml")
    assert _counts(summary, "tickets-ner")["written"] == 1
    [record] = ingest.records("monitoring_tickets-ner")
    assert record["text"] == "Ana from Paris called"
    assert [(e["label"], e["start"], e["end"]) for e in record["prediction"]["entities"]] == [
        ("PER", 0, 3),
        ("LOC", 9, 14),
    ]


# --- BentoML -------------------------------------------------------------------------------


def test_bentoml_schema_routes_each_prediction_column_to_its_dataset(ingest: Ingest) -> None:
    samples.write_bentoml(ingest.cwd)
    (ingest.cwd / "ingest.toml").write_text('[formats.bentoml]\ntime_zone = "Europe/Paris"\n')
    summary = ingest.json("monitoring/", "--config", "ingest.toml")
    assert summary["formats"] == {"bentoml": "1 file, detected"}
    assert list(summary["files_not_read"].values()) == ["a BentoML schema file, read for its columns"]
    ep = _counts(summary, "ticket_triage")
    assert ep["lines"] == 6
    assert ep["skipped"] == {"input_only": 1}
    assert ep["written"] == 15  # 5 lines with predictions x 3 tasks

    sentiment = {r["inputs"]["text"]: r for r in ingest.records("monitoring_ticket_triage_sentiment")}
    assert sentiment["Ana loves Paris"]["prediction"]["labels"] == [{"class": "positive", "score": 0.9974}]
    assert sentiment["Charged twice"]["event_timestamp"] == "2026-11-24T12:00:16.420961"  # Paris -> UTC
    assert sentiment["Charged twice"]["metadata"]["request_id"] == "14642743634293743168"
    assert "request_id" not in sentiment["caf\u00e9 \U0001f600"]["metadata"]  # "None": outside a request
    entities = {r["text"]: r for r in ingest.records("monitoring_ticket_triage_entities")}
    assert entities["Ana loves Paris"]["prediction"]["entities"] == [
        {"start": 0, "end": 3, "label": "PER", "score": 0.99}
    ]
    replies = {
        r["text"]: r["prediction"]["sentences"][0]["text"]
        for r in ingest.records("monitoring_ticket_triage_reply")
    }
    assert replies["one"] == "ok" and replies["two"] == "ko"  # log_batch: one record per line


def test_bentoml_lines_of_an_earlier_worker_start_are_read_with_its_schema(ingest: Ingest) -> None:
    # The schema file gets a line per worker start. A new model version renamed its prediction
    # column and the worker restarted: the day's data file holds lines of both starts, and
    # the older lines' prediction is the older schema's column, not a missing one.
    monitor = ingest.cwd / "monitoring" / "triage"

    def schema(prediction: str) -> dict:
        columns = [{"name": "ticket", "role": "feature", "type": "text"},
                   {"name": prediction, "role": "prediction", "type": "categorical"}]  # fmt: skip
        return {"meta_data": {"bento_name": "svc", "bento_version": prediction}, "columns": columns}

    samples._dump(monitor / "schema" / "schema.1.log", [schema("label"), schema("sentiment")])
    ids = {"request_id": "1", "trace_id": "0"}
    samples._dump(monitor / "data" / "data.1.log", [
        {"ticket": "before the restart", "label": "positive", "timestamp": "2026-11-24T10:00:00", **ids},
        {"ticket": "after it", "sentiment": "negative", "timestamp": "2026-11-24T11:00:00", **ids},
        {"ticket": "input only", "timestamp": "2026-11-24T11:00:01", **ids},
    ])  # fmt: skip
    summary = ingest.json("monitoring/")
    ep = _counts(summary, "triage")
    assert (ep["written"], ep["skipped"]) == (2, {"input_only": 1})
    labels = {
        r["inputs"]["text"]: r["prediction"]["labels"][0]["class"]
        for r in ingest.records("monitoring_triage")
    }
    assert labels == {"before the restart": "positive", "after it": "negative"}


def test_bentoml_lines_of_a_start_that_renamed_the_input_column_are_read_with_its_schema(
    ingest: Ingest,
) -> None:
    # As above, with the input column renamed (the prediction column kept): a line has the
    # columns of the start that logged it, input included, and is read with that schema.
    monitor = ingest.cwd / "monitoring" / "triage"

    def schema(feature: str) -> dict:
        columns = [{"name": feature, "role": "feature", "type": "text"},
                   {"name": "label", "role": "prediction", "type": "categorical"}]  # fmt: skip
        return {"meta_data": {"bento_name": "svc", "bento_version": feature}, "columns": columns}

    samples._dump(monitor / "schema" / "schema.1.log", [schema("text"), schema("ticket")])
    ids = {"request_id": "1", "trace_id": "0"}
    samples._dump(monitor / "data" / "data.1.log", [
        {"text": "before the restart", "label": "positive", "timestamp": "2026-11-24T10:00:00", **ids},
        {"ticket": "after it", "label": "negative", "timestamp": "2026-11-24T11:00:00", **ids},
    ])  # fmt: skip
    summary = ingest.json("monitoring/")
    assert (_counts(summary, "triage")["written"], _counts(summary, "triage")["skipped"]) == (2, {})
    texts = sorted(r["inputs"]["text"] for r in ingest.records("monitoring_triage"))
    assert texts == ["after it", "before the restart"]


def test_bentoml_schema_file_is_not_a_log_when_the_format_is_given(ingest: Ingest) -> None:
    # The README's command (`--format bentoml` on the monitor's folder) and a config's format:
    # the schema file beside the data is read for its columns, as when detected, never as a log.
    samples.write_bentoml(ingest.cwd)
    (ingest.cwd / "ingest.toml").write_text('format = "bentoml"\n')
    for args in (["--format", "bentoml", "--store", "given"], ["--config", "ingest.toml"]):
        summary = ingest.json("monitoring/ticket_triage/", *args)
        assert summary["formats"] == {"bentoml": "1 file, given"}, args
        assert summary["files_not_read"] == {
            "monitoring/ticket_triage/schema/schema.1.log": "a BentoML schema file, read for its columns"
        }
        assert summary["rejected"] == 0 and summary["rejects_file"] is None, args
        assert summary["lines_read"] == 6 and summary["records_written"] == 15, args


# --- structlog and loguru ------------------------------------------------------------------


def test_structlog_bodies_and_start_finish_events(ingest: Ingest) -> None:
    write_log(ingest.cwd / "app.log", samples.structlog_lines())
    summary = ingest.json("app.log")
    assert summary["formats"] == {"structlog": "1 file, detected"}
    gen = _counts(summary, "/generate")
    assert gen["skipped"] == {"error_status": 1, "streamed_response": 1, "non_json_body": 1}
    assert gen["written"] == 2  # r1, and r4 joined from its two events
    assert _counts(summary, "/classify")["written"] == 1  # status written as a string "200"
    assert summary["endpoints"]["-"]["skipped"] == {"not_a_request": 1}
    texts = {
        r["text"]: r["prediction"]["sentences"][0]["text"] for r in ingest.records("monitoring_generate")
    }
    assert texts == {"Write a haiku": "Autumn moonlight", "Say done": "Done"}


def test_loguru_nested_fields(ingest: Ingest) -> None:
    write_log(ingest.cwd / "app.jsonl", samples.loguru_lines())
    summary = ingest.json("app.jsonl")
    assert summary["formats"] == {"loguru": "1 file, detected"}
    assert _counts(summary, "/classify")["written"] == 3
    assert _counts(summary, "/generate")["skipped"] == {"error_status": 1}
    record = next(r for r in ingest.records("monitoring_classify") if r["inputs"]["text"] == "Great support")
    assert record["event_timestamp"] == "2026-11-24T12:00:16.420961"  # +01:00 -> UTC
    assert record["metadata"]["request_id"] == "l1"


# --- user-defined profiles, per-endpoint formats, detection --------------------------------


CUSTOM = """
[formats.my-app]
time_zone = "Europe/Paris"
labels = ["NEGATIVE", "POSITIVE"]
decoders = ["json", "base64"]
[formats.my-app.fields]
time = "when"
endpoint = "http.route"
status = "http.status"
request = "body.in"
response = "body.out"
request_id = ["ids[0]", "trace"]
latency = "took_ms"
"""


def test_inputs_prefixes_are_relative_to_the_config_file(ingest: Ingest) -> None:
    # As the store, state and rejects paths of a config file are: cron starts runs elsewhere
    # and names inputs its own way (absolute, ./, relative), and [inputs] must still match.
    line = {"when": "2026-11-24T12:00:16Z", "http": {"route": "/sentiment", "status": 200},
            "body": {"in": ["nice"], "out": {"predictions": [1]}}}  # fmt: skip
    (ingest.cwd / "logs" / "custom").mkdir(parents=True)
    write_log(ingest.cwd / "logs" / "custom" / "a.jsonl", [line])
    (ingest.cwd / "conf").mkdir()
    (ingest.cwd / "conf" / "ingest.toml").write_text('[inputs]\n"../logs/custom/" = "my-app"\n' + CUSTOM)
    for given in ("logs/", "./logs/", str(ingest.cwd / "logs")):
        summary = ingest.json(given, "--config", "conf/ingest.toml", "--dry-run")
        assert summary["formats"] == {"my-app": "1 file, given"}, given
        assert summary["lines"]["mapped"] == 1, given


def test_user_defined_profile_without_code(ingest: Ingest) -> None:
    import base64

    lines = [
        {"when": "2026-11-24 13:00:16", "http": {"route": "/sentiment", "status": "200"}, "took_ms": "12.5",
         "ids": ["req-1"], "body": {"in": base64.b64encode(b'{"instances": ["nice"]}').decode(),
                                    "out": {"predictions": [1]}}},
        {"when": 1795521617000, "http": {"route": "/sentiment", "status": 200}, "trace": "t-2",
         "body": {"in": "[\"bad\"]", "out": "[0]"}},
        {"when": "2026-11-24 13:00:18", "http": {"route": "/sentiment"}, "body": {"in": "[\"x\"]"}},
        {"http": {"route": "/sentiment"}, "body": {"in": "[\"x\"]", "out": "[0]"}},
    ]  # fmt: skip
    write_log(ingest.cwd / "custom.jsonl", lines)
    (ingest.cwd / "ingest.toml").write_text('format = "my-app"\n' + CUSTOM)
    summary = ingest.json("custom.jsonl", "--config", "ingest.toml")
    assert summary["formats"] == {"my-app": "1 file, given"}
    ep = _counts(summary, "/sentiment")
    assert (ep["written"], ep["skipped"]) == (2, {"input_only": 1})
    assert [r["reason"] for r in ingest.rejects()] == ["missing time (when)"]
    records = {r["inputs"]["text"]: r for r in ingest.records("monitoring_sentiment")}
    assert records["nice"]["prediction"]["labels"] == [{"class": "POSITIVE", "score": 1.0}]
    assert records["nice"]["metadata"]["latency_ms"] == 12.5
    assert records["nice"]["metadata"]["request_id"] == "req-1"
    assert records["nice"]["event_timestamp"] == "2026-11-24T12:00:16.000000"
    assert records["bad"]["metadata"]["request_id"] == "t-2"


def test_rejects_by_reason_group_lines_whatever_value_they_quote(ingest: Ingest) -> None:
    # Three times no parser reads: one reason in the summary (not one per value), and the
    # reason keeps its words ("ISO-8601", not "ISO-N"); the rejects file keeps each value.
    bad = ["yesterday", "n/a", "24/11/2026 13:00"]
    lines = [
        {"when": when, "http": {"route": "/sentiment", "status": 200}, "body": {"in": '["x"]', "out": "[0]"}}
        for when in bad
    ]
    write_log(ingest.cwd / "custom.jsonl", lines)
    (ingest.cwd / "ingest.toml").write_text('format = "my-app"\n' + CUSTOM)
    summary = ingest.json("custom.jsonl", "--config", "ingest.toml")
    assert summary["lines"]["rejected"] == {"time is neither ISO-8601 nor an epoch number": 3}
    assert [r["reason"] for r in ingest.rejects()] == [
        f"time is neither ISO-8601 nor an epoch number: {when!r}" for when in bad
    ]
    proc = ingest("custom.jsonl", "--config", "ingest.toml", "--from-start", "-q")
    assert "3 of 3 lines rejected (time is neither ISO-8601 nor an epoch number 3)" in proc.stderr.decode()


def test_config_errors_name_the_problem(ingest: Ingest) -> None:
    write_log(ingest.cwd / "a.jsonl", [entry()])
    (ingest.cwd / "bad.toml").write_text('[formats.x]\n[formats.x.fields]\ntime = "a..b"\n')
    proc = ingest("a.jsonl", "--config", "bad.toml", check=False)
    assert proc.returncode == 2
    assert "[formats.x].fields: time: cannot read field path 'a..b'" in proc.stderr.decode()
    proc = ingest("a.jsonl", "--format", "nope", check=False)
    assert proc.returncode == 2 and "unknown format 'nope'" in proc.stderr.decode()


def test_access_log_stays_the_default_and_undetected_lines_are_rejected(ingest: Ingest) -> None:
    # the example: another team's field names are not guessed, they are rejected line by line
    write_log(
        ingest.cwd / "a.jsonl", [entry(), {"timestamp": "2026-11-24T10:00:00Z", "endpoint": "/x", "input": 1}]
    )
    write_log(ingest.cwd / "b.jsonl", [{"timestamp": "2026-11-24T10:00:00Z", "endpoint": "/x", "input": 1}])
    summary = ingest.json("a.jsonl", "b.jsonl")
    assert summary["formats"] == {"access-log": "2 files, default"}
    assert summary["records_written"] == 1 and summary["rejected"] == 2


def test_an_ambiguous_file_is_named_in_the_summary_table(ingest: Ingest) -> None:
    # A line both the access log and structlog recognise: read as the access log (the default),
    # and the table says so and why, not only --json (a plain access log stays unmentioned).
    both = {**entry(), "event": "http_request", "level": "info", "timestamp": "2026-11-24T12:00:00Z",
            "request_body": '"hi"', "response_body": {"label": "B", "score": 0.4}}  # fmt: skip
    write_log(ingest.cwd / "both.jsonl", [both])
    write_log(ingest.cwd / "plain.jsonl", [entry()])
    proc = ingest("both.jsonl", "--store", "one")
    assert "format: access-log (1 file, ambiguous: access-log/structlog)" in proc.stderr.decode()
    proc = ingest("plain.jsonl", "--store", "two")
    assert "format:" not in proc.stderr.decode()


def test_per_endpoint_format(ingest: Ingest) -> None:
    # one structlog file; /legacy logs its bodies under other names
    lines = [
        {"event": "http_request", "level": "info", "timestamp": "2026-11-24T12:00:16Z", "path": "/legacy",
         "status_code": 200, "payload": "[\"hello\"]", "answer": "[{\"generated_text\": \"hi\"}]"},
        {"event": "http_request", "level": "info", "timestamp": "2026-11-24T12:00:17Z", "path": "/generate",
         "status_code": 200, "request_body": "{\"inputs\": \"yo\"}",
         "response_body": "[{\"generated_text\": \"hey\"}]"},
    ]  # fmt: skip
    write_log(ingest.cwd / "app.log", lines)
    config = """
[formats.legacy]
base = "structlog"
[formats.legacy.fields]
request = "payload"
response = "answer"

[endpoints."/legacy"]
format = "legacy"
[endpoints."/generate"]
"""
    (ingest.cwd / "ingest.toml").write_text(config)
    summary = ingest.json("app.log", "--config", "ingest.toml")
    assert _counts(summary, "/legacy")["written"] == 1
    assert _counts(summary, "/generate")["written"] == 1


def test_offsets_in_time_keep_records_in_utc() -> None:
    assert parse_time("2026-11-24T13:00:16+01:00").tzinfo == UTC
    assert parse_time("2026-11-24T13:00:16", timezone(timedelta(hours=1))) == datetime(
        2026, 11, 24, 12, 0, 16, tzinfo=UTC
    )


def test_kserve_joins_exactly_once_through_kill_9(tmp_path: Path, ingest: Ingest) -> None:
    """A run over a KServe log whose responses arrive far behind their requests is killed
    (-9) right after its first checkpoint (32 MB): the waiting halves were saved with it, and
    the rerun stores every pair exactly once."""
    import os
    import sqlite3
    import subprocess
    import sys
    import time

    pairs, behind = 55_000, 3_000
    base = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    events: list[str] = []
    late: dict[int, list[str]] = {}
    for i in range(pairs):
        at = (base + timedelta(milliseconds=10 * i)).isoformat().replace("+00:00", "Z")
        request = samples.cloudevent("request", f"id-{i}", {"instances": [f"text {i}"]}, time=at)
        response = samples.cloudevent("response", f"id-{i}", {"predictions": [i % 2]}, time=at)
        events.append(json.dumps(request))
        # every 7th response comes thousands of events later: some wait at every checkpoint
        (late.setdefault(i + behind, []) if i % 7 == 0 else events).append(json.dumps(response))
        events.extend(late.pop(i, []))
    events.extend(line for rest in late.values() for line in rest)
    log = ingest.cwd / "events.jsonl"
    log.write_text("\n".join(events) + "\n")
    assert log.stat().st_size > 33 << 20  # more than one checkpoint's worth

    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", str(log), "-q"],
        cwd=ingest.cwd,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state, saved, deadline = ingest.store / "_state.sqlite", (0, 0), time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists():
            # OperationalError: the tables are being created
            with (
                contextlib.closing(sqlite3.connect(state, timeout=5)) as db,
                contextlib.suppress(sqlite3.OperationalError),
            ):
                saved = db.execute(
                    "SELECT (SELECT count(*) FROM checkpoints), (SELECT count(*) FROM waiting_halves)"
                ).fetchone()
            if saved[0]:
                break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert saved[0] == 1 and saved[1] > 0, f"checkpoints and waiting halves when killed: {saved}"

    summary = ingest.json(str(log))  # the rerun after the kill
    df = ingest.dataset("monitoring_sentiment")
    assert len(df) == df["id"].nunique() == pairs, f"{len(df)} rows, {df['id'].nunique()} distinct"
    assert sorted(df["request_id"]) == sorted(f"id-{i}" for i in range(pairs))
    assert summary["notes"] == [] and "missing_output" not in summary["skipped"]
    assert summary["lines_read"] < len(events)  # it went on from the checkpoint


def test_a_profile_line_whose_every_record_was_refused_is_a_rejected_line(ingest: Ingest) -> None:
    # As for an access-log line: once a dataset decision (or a sink, or its server) refused
    # every record a line gave, by_file counts the line as rejected, not as one that gave records.
    def event(path: str, request_id: str, response: object) -> dict:
        body = {"request_body": json.dumps({"inputs": "hi"}), "response_body": json.dumps(response)}
        return {
            "event": "http_request",
            "level": "info",
            "timestamp": "2026-11-24T12:00:16Z",
            "method": "POST",
            "path": path,
            "status_code": 200,
            "request_id": request_id,
            **body,
        }

    classify = [{"label": "NEGATIVE", "score": 0.97}]
    write_log(
        ingest.cwd / "app.log",
        [event("/classify", "r1", classify), event("/classify", "r2", [{"generated_text": "x"}])],
    )
    summary = ingest.json("app.log")
    assert summary["formats"] == {"structlog": "1 file, detected"}
    assert summary["records_written"] == 1 and summary["rejected"] == 1  # r2: not the dataset's task
    (counts,) = summary["by_file"].values()
    assert counts == {"lines": 2, "gave_records": 1, "skipped": 0, "rejected": 1, "nul_bytes": 0}
    # a joined pair: the line that completed it gave its record, and is the rejected line
    write_log(
        ingest.cwd / "t2t.jsonl", [entry("sentiment", request=["a"], response=[{"generated_text": "b"}])]
    )
    assert ingest.json("t2t.jsonl")["records_written"] == 1
    write_log(ingest.cwd / "events.jsonl", samples.kserve_lines()[:2])  # id-1: request, then response
    (ingest.cwd / "ingest.toml").write_text(KSERVE_CONFIG)
    summary = ingest.json("events.jsonl", "--config", "ingest.toml")
    assert summary["records_written"] == 0 and summary["rejected"] == 2  # its two records
    (counts,) = summary["by_file"].values()
    assert counts == {"lines": 2, "gave_records": 0, "skipped": 1, "rejected": 1, "nul_bytes": 0}


def test_redirects_are_skipped_not_rejected(ingest: Ingest) -> None:
    """A 3xx answer holds no prediction: FastAPI answers ``/spacy`` with a 307 to ``/spacy/``
    and an app's logger writes its empty body as ``""``; such lines were rejected as a batch
    size mismatch on every cron run. Skipped as ``redirect_status``, in the access log and in
    a profile's format alike; a 2xx line beside them is still written."""
    access = [
        entry("/spacy", status=307, response=""),
        entry("/spacy", status=308, request="I live in Paris.", response=""),
        entry("/spacy/", status=304, response=None),
        entry("/spacy/"),
    ]
    write_log(ingest.cwd / "access.jsonl", access)
    summary = ingest.json("access.jsonl")
    assert summary["skipped"] == {"redirect_status": 3} and summary["rejected"] == 0
    assert summary["records_written"] == 1
    j = json.dumps
    events = [
        {"event": "http_request", "timestamp": "2026-11-24T12:00:16Z", "level": "info", "method": "POST",
         "path": "/generate", "status_code": code, "request_id": f"r{code}",
         "request_body": j({"inputs": "Write a haiku"}), "response_body": body}
        for code, body in ((302, ""), (200, j([{"generated_text": "Autumn moonlight"}])))
    ]  # fmt: skip
    write_log(ingest.cwd / "app.log", events)
    summary = ingest.json("app.log", "--store", "app-store")
    assert summary["formats"] == {"structlog": "1 file, detected"}
    assert _counts(summary, "/generate")["skipped"] == {"redirect_status": 1}
    assert summary["records_written"] == 1 and summary["rejected"] == 0
