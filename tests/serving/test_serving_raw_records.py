"""Raw records against the real ``serve`` over real HTTP, for models that carry ``schema.json``
(the Palmer penguins, tests/serving/penguins.py): every request form, every answer form, the
errors naming the record and the field, and numeric clients unchanged.

Expected answers come from the booster's own ``predict`` on rows encoded from the schema's
specification, and the answer keys from SageMaker Autopilot's inference-container docs
("Configure inference output in generated containers": ``predicted_label``, ``probability``,
``labels``, ``probabilities``; ``SAGEMAKER_INFERENCE_OUTPUT`` selects the CSV columns).
"""

from __future__ import annotations

import ast
import csv
import io
import json

import numpy as np
import pytest
from mlstack_containers import recordio

from tests.serving.conftest import start_serve, stop_serve
from tests.serving.penguins import PenguinModel, build, raw_rows

ROWS = raw_rows()
FEATURES_OF_SPECIES = [c for c in ROWS[0] if c != "species"]


def _serve(tmp_path_factory, label, problem_type, objective, **env):
    base = tmp_path_factory.mktemp(f"penguins-{problem_type}")
    model = build(base, label, problem_type, objective)
    server = start_serve(base, model.booster, SAGEMAKER_MODEL_SERVER_WORKERS="1", **env)
    return model, server


@pytest.fixture(scope="module")
def species(tmp_path_factory):
    """Multiclass: species from island, measurements, sex and year (multi:softprob)."""
    model, server = _serve(tmp_path_factory, "species", "multiclass", "multi:softprob")
    yield model, server
    stop_serve(server)


@pytest.fixture(scope="module")
def species_configured(tmp_path_factory):
    """The same kind of model with the answer keys and the unknown-field rule set per model."""
    model, server = _serve(
        tmp_path_factory,
        "species",
        "multiclass",
        "multi:softprob",
        SAGEMAKER_INFERENCE_OUTPUT="predicted_label, probabilities",  # Autopilot's form
        MLSTACK_UNKNOWN_FIELDS="ignore",
    )
    yield model, server
    stop_serve(server)


def records(model: PenguinModel, rows=ROWS) -> list[dict]:
    return [{k: v for k, v in r.items() if k in model.features} for r in rows]


def assert_classified(model: PenguinModel, got: list[dict], rows: list[dict]) -> None:
    probs = model.predict(rows)
    assert len(got) == len(rows)
    for answer, p in zip(got, probs, strict=True):
        assert answer["labels"] == model.classes
        np.testing.assert_allclose(answer["probabilities"], p, rtol=1e-6)
        assert answer["predicted_label"] == model.classes[int(np.argmax(p))]
        assert answer["probability"] == pytest.approx(float(np.max(p)), rel=1e-6)


# -- request forms --------------------------------------------------------------------------


def test_json_instances_answer_labels_and_probabilities(species):
    model, server = species
    rows = records(model)
    body = json.dumps({"instances": rows}).encode()
    resp = server.invoke(body, "application/json", "application/json")
    assert resp.status == 200, resp.text
    answers = json.loads(resp.body)["predictions"]
    assert list(answers[0]) == ["predicted_label", "probability", "labels", "probabilities"]
    assert_classified(model, answers, rows)
    # The dataset's own labels: the model learned them (8 rounds, depth 3).
    right = sum(a["predicted_label"] == r["species"] for a, r in zip(answers, ROWS, strict=True))
    assert right / len(ROWS) > 0.95


def test_a_bare_object_is_one_record(species):
    model, server = species
    record = {"island": "Biscoe", "bill_length_mm": 45.1, "sex": None}  # the example
    resp = server.invoke(json.dumps(record).encode(), "application/json", "application/json")
    assert resp.status == 200, resp.text
    assert_classified(model, json.loads(resp.body)["predictions"], [record])


def test_json_lines_of_objects_answer_one_line_per_record(species):
    model, server = species
    rows = records(model, ROWS[:25])
    body = "\n".join(json.dumps(r) for r in rows).encode() + b"\n"
    resp = server.invoke(body, "application/jsonlines", "application/jsonlines")
    assert resp.status == 200, resp.text
    lines = resp.body.split(b"\n")
    assert_classified(model, [json.loads(line) for line in lines], rows)


@pytest.mark.parametrize("header", [False, True], ids=["no-header", "header"])
def test_csv_rows_answer_predicted_label_and_probability(species, header):
    model, server = species
    rows = records(model, ROWS[:40])
    lines = [model.csv_line(r) for r in rows]
    if header:
        lines.insert(0, ",".join(model.features))
    resp = server.invoke("\n".join(lines).encode(), "text/csv", "text/csv")
    assert resp.status == 200, resp.text
    got = list(csv.reader(io.StringIO(resp.text)))
    probs = model.predict(rows)
    assert [g[0] for g in got] == [model.classes[int(i)] for i in probs.argmax(axis=1)]
    np.testing.assert_allclose([float(g[1]) for g in got], probs.max(axis=1), rtol=1e-6)
    assert all(len(g) == 2 for g in got)


def test_raw_csv_whose_first_row_lacks_every_category_is_still_raw(species):
    """Found by a transform job of a table run's raw rows: a first row whose categorical fields
    are all empty is all numbers, and was taken for the encoded form, so the text categories
    of the next rows were a 400. Such a row reads the same either way; the first row that
    gives a category decides (here a text one: raw)."""
    model, server = species
    rows = records(model, ROWS[:12])
    rows[0] = {**rows[0], "island": None, "sex": None}
    body = "\n".join(model.csv_line(r) for r in rows).encode()
    assert all(f == b"" or float(f) == float(f) for f in body.split(b"\n")[0].split(b","))
    resp = server.invoke(body, "text/csv", "text/csv")
    assert resp.status == 200, resp.text
    got = list(csv.reader(io.StringIO(resp.text)))
    probs = model.predict(rows)
    assert [g[0] for g in got] == [model.classes[int(i)] for i in probs.argmax(axis=1)]


def test_encoded_csv_whose_first_row_lacks_every_category_stays_numeric(species):
    """The encoded form with the same first row: category indexes (numbers) on the next rows
    decide it, and the answer is the numeric one (one line of probabilities per row)."""
    model, server = species
    rows = records(model, ROWS[:12])
    rows[0] = {**rows[0], "island": None, "sex": None}
    encoded = [model.encode(r) for r in rows]
    body = "\n".join(",".join("" if v != v else f"{v:g}" for v in row) for row in encoded).encode()
    resp = server.invoke(body, "text/csv", "text/csv")
    assert resp.status == 200, resp.text
    lines = resp.text.splitlines()
    assert len(lines) == len(rows)
    np.testing.assert_allclose(
        [[float(x) for x in line.split(",")] for line in lines], model.predict(rows), rtol=1e-6
    )


def test_a_large_csv_batch_is_one_line_per_row_in_order(species):
    """Over 8 KiB: pandas' path; the answer lines pair with the input lines, as a transform
    job's ``JoinSource: Input`` pairs them."""
    model, server = species
    rows = records(model) * 3
    lines = [model.csv_line(r) for r in rows]
    body = "\n".join(lines).encode()
    assert len(body) > 16384
    resp = server.invoke(body, "text/csv", "text/csv")
    assert resp.status == 200, resp.text
    answer = resp.text.split("\n")
    assert len(answer) == len(lines)
    probs = model.predict(rows)
    joined = [f"{i},{a}" for i, a in zip(lines, answer, strict=True)]  # JoinSource: Input
    for line, p in zip(joined, probs, strict=True):
        fields = next(csv.reader([line]))
        assert fields[-2] == model.classes[int(np.argmax(p))]
        assert float(fields[-1]) == pytest.approx(float(np.max(p)), rel=1e-6)


def test_unknown_categories_and_nulls_are_missing(species):
    model, server = species
    odd = [
        {"island": "Atlantis", "bill_length_mm": 40.0, "sex": None},
        {"island": "biscoe", "flipper_length_mm": 200},  # case matters: unknown
        {},  # every value absent
    ]
    missing = [{"bill_length_mm": 40.0}, {"flipper_length_mm": 200}, {}]
    got = server.invoke(json.dumps(odd).encode(), "application/json", "application/json")
    want = server.invoke(json.dumps(missing).encode(), "application/json", "application/json")
    assert got.status == want.status == 200, got.text
    assert json.loads(got.body) == json.loads(want.body)
    assert_classified(model, json.loads(got.body)["predictions"], missing)


# -- answers: selected per model and per request ----------------------------------------------


def test_sagemaker_inference_output_selects_the_columns_of_a_model(species_configured):
    model, server = species_configured
    rows = records(model, ROWS[:5])
    body = "\n".join(model.csv_line(r) for r in rows).encode()
    resp = server.invoke(body, "text/csv", "text/csv")
    assert resp.status == 200, resp.text
    probs = model.predict(rows)
    for fields, p in zip(csv.reader(io.StringIO(resp.text)), probs, strict=True):
        assert fields[0] == model.classes[int(np.argmax(p))]
        # A list in a cell: JSON text, which Autopilot's readers' ast.literal_eval also reads.
        np.testing.assert_allclose(json.loads(fields[1]), p, rtol=1e-6)
        np.testing.assert_allclose(ast.literal_eval(fields[1]), p, rtol=1e-6)
    jresp = server.invoke(json.dumps(rows).encode(), "application/json", "application/json")
    assert list(json.loads(jresp.body)["predictions"][0]) == ["predicted_label", "probabilities"]


def test_custom_attributes_select_the_columns_of_a_request(species):
    model, server = species
    rows = records(model, ROWS[:3])
    body = "\n".join(model.csv_line(r) for r in rows).encode()
    resp = server.invoke(
        body,
        "text/csv",
        "text/csv",
        headers={"X-Amzn-SageMaker-Custom-Attributes": "trace=1; output=labels,predicted_label"},
    )
    assert resp.status == 200, resp.text
    got = list(csv.reader(io.StringIO(resp.text)))
    probs = model.predict(rows)
    assert [json.loads(g[0]) for g in got] == [model.classes] * 3
    assert [g[1] for g in got] == [model.classes[int(i)] for i in probs.argmax(axis=1)]
    bad = server.invoke(
        body, "text/csv", headers={"X-Amzn-SageMaker-Custom-Attributes": "output=score"}
    )
    assert bad.status == 400
    assert "score is not an answer of a multiclass model" in bad.text


def test_regression_answers_a_score(tmp_path_factory):
    model, server = _serve(tmp_path_factory, "body_mass_g", "regression", "reg:squarederror")
    try:
        rows = records(model, ROWS[:6])
        want = model.predict(rows)
        resp = server.invoke(json.dumps({"instances": rows}).encode(), "application/json")
        assert resp.status == 200, resp.text
        csv_scores = [float(v) for v in resp.text.split("\n")]  # one number per line
        np.testing.assert_allclose(csv_scores, want, rtol=1e-6)
        jresp = server.invoke(json.dumps(rows).encode(), "application/json", "application/json")
        got = json.loads(jresp.body)["predictions"]
        assert [list(g) for g in got] == [["score"]] * 6
        np.testing.assert_allclose([g["score"] for g in got], want, rtol=1e-6)
    finally:
        stop_serve(server)


def test_binary_answers_both_classes(tmp_path_factory):
    model, server = _serve(tmp_path_factory, "sex", "binary", "binary:logistic")
    try:
        rows = records(model, [r for r in ROWS if r["sex"] is not None][:30])
        resp = server.invoke(json.dumps(rows).encode(), "application/json", "application/json")
        assert resp.status == 200, resp.text
        p = model.predict(rows)  # P(classes[1]) = P("male")
        two = np.stack([1 - p, p], axis=1)
        for answer, pair in zip(json.loads(resp.body)["predictions"], two, strict=True):
            assert answer["labels"] == ["female", "male"]
            np.testing.assert_allclose(answer["probabilities"], pair, rtol=1e-5, atol=1e-7)
            assert answer["predicted_label"] == ("male" if pair[1] > 0.5 else "female")
    finally:
        stop_serve(server)


# -- numeric clients unchanged -----------------------------------------------------------------


def test_encoded_numeric_rows_still_get_todays_answer(species):
    model, server = species
    rows = records(model, ROWS[:4])
    encoded = [model.encode(r) for r in rows]
    body = "\n".join(",".join("" if np.isnan(v) else f"{v:g}" for v in e) for e in encoded)
    resp = server.invoke(body.encode(), "text/csv", "text/csv")
    assert resp.status == 200, resp.text
    got = np.array([[float(v) for v in line.split(",")] for line in resp.text.split("\n")])
    np.testing.assert_allclose(got, model.predict(rows), rtol=1e-6)  # probabilities only
    jresp = server.invoke(
        json.dumps({"instances": encoded}).encode(), "application/json", "application/json"
    )
    scores = [p["score"] for p in json.loads(jresp.body)["predictions"]]
    np.testing.assert_allclose(scores, model.predict(rows), rtol=1e-6)


# -- errors name the record and the field -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            [{"island": "Dream"}, {"bill_length_mm": "long"}],
            "application/json",
            "record 1: field 'bill_length_mm' must be a number or null, got string 'long'",
        ),
        (
            [{"island": 3}],
            "application/json",
            "record 0: field 'island' must be a category as text (a string) or null, got number",
        ),
        (
            [{"island": "Dream"}, {"island": "Dream", "wingspan": 1}],
            "application/json",
            "record 1: field 'wingspan' is not a feature of this model",
        ),
        (
            [{"species": "Adelie", "island": "Dream"}],
            "application/json",
            "record 0: field 'species' is the label",
        ),
        (
            [{"bill_depth_mm": [1, 2]}],
            "application/json",
            "record 0: field 'bill_depth_mm' must be a number or null, got array",
        ),
        (
            b'{"island": "Dream"}\n{"island": "Dream", "island": "Biscoe"}',
            "application/jsonlines",
            "record 1: field 'island' appears more than once",
        ),
        (
            b"Biscoe,45,15,210,4500,male,2008\nDream,x,15,210,4500,male,2008",
            "text/csv",
            "record 1: field 'bill_length_mm' must be a number or empty, got 'x'",
        ),
        (
            b"Biscoe,45,15,210,4500,male,2008\nDream,45,15",
            "text/csv",
            "record 1 has 3 fields; the model takes 7",
        ),
        (
            b"species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year"
            b"\nAdelie,Dream,45,15,210,4500,male,2008",
            "text/csv",
            "the header row names the label 'species'",
        ),
    ],
    ids=[
        "wrong-type",
        "number-for-category",
        "unknown-field",
        "label-field",
        "nested",
        "duplicate-key",
        "csv-text-in-number",
        "csv-short-row",
        "csv-header-with-label",
    ],
)
def test_bad_records_get_a_400_naming_the_record_and_the_field(
    species, body, content_type, expected
):
    _, server = species
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = server.invoke(data, content_type, "application/json")
    assert resp.status == 400, resp.text
    assert expected in resp.text


def test_unknown_fields_can_be_ignored_per_model(species_configured):
    model, server = species_configured
    record = {"island": "Dream", "bill_length_mm": 45.0, "wingspan": 1, "species": "Adelie"}
    resp = server.invoke(json.dumps(record).encode(), "application/json", "application/json")
    assert resp.status == 200, resp.text
    answer = json.loads(resp.body)["predictions"][0]
    want = model.predict([{"island": "Dream", "bill_length_mm": 45.0}])[0]
    np.testing.assert_allclose(answer["probabilities"], want, rtol=1e-6)


def test_a_schema_the_model_does_not_fit_stops_the_server(tmp_path):
    model = build(tmp_path, "species", "multiclass", "multi:softprob")
    schema = dict(model.schema, problem_type="regression")
    schema["label"] = {"name": "species", "type": "numeric"}
    (tmp_path / "model" / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(RuntimeError) as failed:
        start_serve(tmp_path, model.booster, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    assert "problem_type 'regression', but the model's objective 'multi:softprob'" in str(
        failed.value
    )


# -- the SageMaker Python SDK's serializers ----------------------------------------------------
# Bytes as aws/sagemaker-python-sdk's src/sagemaker/base_serializers.py writes them:
# JSONSerializer.serialize(dict) is json.dumps(data); CSVSerializer.serialize(list of rows) is
# "\n".join of csv.writer rows with "\r\n" stripped (None written as an empty field). The
# answers are read as base_deserializers.JSONDeserializer reads them (json.load of the UTF-8
# stream; its ACCEPT is application/json).
SDK_JSON_INSTANCES = (
    b'{"instances": [{"island": "Biscoe", "bill_length_mm": 45.1, "sex": null}, '
    b'{"island": "Dream", "bill_length_mm": 49.5, "bill_depth_mm": 19.0, "sex": "male"}]}'
)
SDK_JSON_RECORD = b'{"island": "Torgersen", "bill_length_mm": 39.1, "flipper_length_mm": 181}'
SDK_CSV_ROWS = b"Biscoe,45.1,14.5,215,5000,,2008\nDream,49.5,19.0,200,3800,male,2009"
SDK_CSV_QUOTED = b'"Biscoe, north",45.1,14.5,215,5000,female,2008'


def _row(values: list) -> dict:
    return dict(zip(FEATURES_OF_SPECIES, values, strict=True))


@pytest.mark.parametrize(
    ("body", "content_type", "rows"),
    [
        (
            SDK_JSON_INSTANCES,
            "application/json",
            [
                {"island": "Biscoe", "bill_length_mm": 45.1},
                {"island": "Dream", "bill_length_mm": 49.5, "bill_depth_mm": 19.0, "sex": "male"},
            ],
        ),
        (SDK_JSON_RECORD, "application/json", [json.loads(SDK_JSON_RECORD)]),
        (
            SDK_CSV_ROWS,
            "text/csv",
            [
                _row(["Biscoe", 45.1, 14.5, 215, 5000, None, 2008]),
                _row(["Dream", 49.5, 19.0, 200, 3800, "male", 2009]),
            ],
        ),
        (  # a quoted category the model never saw: missing
            SDK_CSV_QUOTED,
            "text/csv",
            [_row([None, 45.1, 14.5, 215, 5000, "female", 2008])],
        ),
    ],
    ids=["json-instances", "json-record", "csv-rows", "csv-quoted"],
)
def test_sagemaker_sdk_serializer_bytes_answer_labels(species, body, content_type, rows):
    model, server = species
    resp = server.invoke(body, content_type, "application/json")
    assert resp.status == 200, resp.text
    answer = json.load(io.TextIOWrapper(io.BytesIO(resp.body), encoding="utf-8"))
    assert_classified(model, answer["predictions"], rows)


def test_raw_records_asking_for_recordio_get_the_scores(species):
    model, server = species
    rows = records(model, ROWS[:3])
    resp = server.invoke(
        json.dumps(rows).encode(), "application/json", "application/x-recordio-protobuf"
    )
    assert resp.status == 200, resp.text
    answers = [recordio.decode_record(p) for p in recordio.read_records(resp.body)]
    scores = [r.labels["score"].values for r in answers]
    np.testing.assert_allclose(np.array(scores), model.predict(rows), rtol=1e-6)


def test_encoded_rows_get_labels_when_a_request_asks_for_them(species):
    model, server = species
    rows = records(model, ROWS[:4])
    encoded = [model.encode(r) for r in rows]
    body = "\n".join(",".join("" if np.isnan(v) else f"{v:g}" for v in e) for e in encoded)
    resp = server.invoke(
        body.encode(),
        "text/csv",
        "text/csv",
        headers={"X-Amzn-SageMaker-Custom-Attributes": "output=predicted_label"},
    )
    assert resp.status == 200, resp.text
    probs = model.predict(rows)
    assert resp.text.split("\n") == [model.classes[int(i)] for i in probs.argmax(axis=1)]
