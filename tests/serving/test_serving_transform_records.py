"""Batch transform of raw records through local mode's transform job (issue #20): one output line
per input row, in order, with class labels; ``DataProcessing`` (``InputFilter``, ``JoinSource:
Input``, ``OutputFilter``) as the SageMaker Developer Guide documents it, "Associate Prediction
Results with Input Records" (docs.aws.amazon.com/sagemaker/latest/dg/
batch-transform-data-processing.html, "Batch Transform Examples"); the requests below are that
page's examples.

The model is the real ``serve`` of a booster trained on the Palmer penguins
(tests/serving/penguins.py); expected labels and probabilities come from the booster's own
``predict`` on rows encoded from the schema's specification, not from the serving code."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack.local.assembly import Image
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import JobFailed, LocalSageMaker, SageMakerError
from mlstack.local.transform_filters import DataProcessing, FilterError
from mlstack.local.transform_filters import Path as JsonPath
from tests.serving.conftest import REPO
from tests.serving.penguins import PenguinModel, build, raw_rows

IMAGE_URI = "000000000000.dkr.ecr.us-east-1.amazonaws.com/inference:local"
# 24 complete penguins across the three species, without their label.
ROWS = [
    {k: v for k, v in row.items() if k != "species"}
    for row in raw_rows()[::14]
    if all(v is not None for v in row.values())
]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> PenguinModel:
    return build(tmp_path_factory.mktemp("penguins"), "species", "multiclass", "multi:softprob")


@pytest.fixture(scope="module")
def s3(model: PenguinModel) -> Iterator[EmbeddedS3]:
    server = EmbeddedS3()
    server.client.create_bucket(Bucket="data")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for file in sorted((model.base / "model").iterdir()):
            tar.add(file, arcname=file.name)
    server.client.put_object(Bucket="data", Key="models/model.tar.gz", Body=archive.getvalue())
    yield server
    server.stop()


@pytest.fixture()
def sagemaker(s3: EmbeddedS3, tmp_path: Path) -> Iterator[LocalSageMaker]:
    image = Image(uri=IMAGE_URI, directory=REPO / "containers", dockerfile="inference/Dockerfile")
    sagemaker = LocalSageMaker(tmp_path / "run", s3, {IMAGE_URI: image})
    sagemaker.create_model(
        {
            "ModelName": "penguins",
            "PrimaryContainer": {
                "Image": IMAGE_URI,
                "ModelDataUrl": "s3://data/models/model.tar.gz",
            },
            "ExecutionRoleArn": "arn:aws:iam::000000000000:role/sagemaker",
        }
    )
    yield sagemaker
    sagemaker.stop()


def transform(
    sagemaker: LocalSageMaker,
    s3: EmbeddedS3,
    name: str,
    body: bytes,
    content_type: str = "text/csv",
    environment: dict[str, str] | None = None,
    batch_strategy: str | None = None,
    **processing: str,
) -> list[str]:
    """Run a transform job over ``body`` (one object) and return its output's lines."""
    s3.client.put_object(Bucket="data", Key=f"in/{name}/rows.csv", Body=body)
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": "penguins",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://data/in/{name}/"}
            },
            "ContentType": content_type,
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": f"s3://data/out/{name}",
            "Accept": content_type,
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    if processing:
        request["DataProcessing"] = processing
    if environment:
        request["Environment"] = environment
    if batch_strategy:
        request["BatchStrategy"] = batch_strategy
    sagemaker.create_transform_job(request)
    out = s3.client.get_object(Bucket="data", Key=f"out/{name}/rows.csv.out")["Body"].read()
    return out.decode().splitlines()


def expected(model: PenguinModel, records: list[dict[str, Any]]) -> list[tuple[str, float]]:
    assert model.classes is not None
    return [(model.classes[int(np.argmax(p))], float(np.max(p))) for p in model.predict(records)]


def csv_rows(model: PenguinModel, records: list[dict[str, Any]], ids: bool = False) -> bytes:
    return "".join(
        (f"id-{i}," if ids else "") + model.csv_line(r) + "\n" for i, r in enumerate(records)
    ).encode()


def test_raw_csv_rows_get_one_label_line_each_in_order(
    sagemaker: LocalSageMaker, s3: EmbeddedS3, model: PenguinModel
) -> None:
    lines = transform(sagemaker, s3, "plain", csv_rows(model, ROWS))
    want = expected(model, ROWS)
    assert len(lines) == len(ROWS)
    got = [row for row in csv.reader(lines)]
    assert [r[0] for r in got] == [label for label, _ in want]
    assert [float(r[1]) for r in got] == pytest.approx([p for _, p in want], abs=1e-6)
    assert len({label for label, _ in want}) == 3


def test_join_source_input_appends_the_answer_to_each_input_row(
    sagemaker: LocalSageMaker, s3: EmbeddedS3, model: PenguinModel
) -> None:
    # The page's "Output Input Data and Inferences": for a CSV record [1,2,3] and the result
    # [1], the output holds [1,2,3,1].
    body = csv_rows(model, ROWS)
    lines = transform(sagemaker, s3, "joined", body, JoinSource="Input")
    want = expected(model, ROWS)
    inputs = body.decode().splitlines()
    assert lines == [f"{i},{label},{p:.9g}" for i, (label, p) in zip(inputs, want, strict=True)]


def test_the_id_column_is_kept_from_the_model_and_joined_back(
    sagemaker: LocalSageMaker, s3: EmbeddedS3, model: PenguinModel
) -> None:
    # The page's "Output an ID Column with Results and Exclude the ID Column from the Input
    # (CSV)": InputFilter $[1:], JoinSource Input, OutputFilter $.
    body = csv_rows(model, ROWS, ids=True)
    lines = transform(
        sagemaker, s3, "ids", body, InputFilter="$[1:]", JoinSource="Input", OutputFilter="$"
    )
    want = expected(model, ROWS)
    inputs = body.decode().splitlines()
    assert lines == [f"{i},{label},{p:.9g}" for i, (label, p) in zip(inputs, want, strict=True)]


def test_a_slice_includes_both_ends_and_an_index_list_picks_columns(
    sagemaker: LocalSageMaker, s3: EmbeddedS3, model: PenguinModel
) -> None:
    # "$[1:4] specifies the second through fifth columns" (the page): with an ID before and a
    # note after the seven features, $[1:7] is exactly the features. OutputFilter $[0,-2]: the
    # ID and the predicted label (the joined row ends label, probability); -1 is the last.
    body = "".join(f"id-{i},{model.csv_line(r)},note {i}\n" for i, r in enumerate(ROWS)).encode()
    lines = transform(
        sagemaker, s3, "slice", body, InputFilter="$[1:7]", JoinSource="Input",
        OutputFilter="$[0,-2]",
    )  # fmt: skip
    want = expected(model, ROWS)
    assert lines == [f"id-{i},{label}" for i, (label, _) in enumerate(want)]


def test_the_jobs_environment_chooses_the_answer_keys(
    sagemaker: LocalSageMaker, s3: EmbeddedS3, model: PenguinModel
) -> None:
    # A transform job has no CustomAttributes; CreateTransformJob's Environment sets the
    # container's variables for its run, and SAGEMAKER_INFERENCE_OUTPUT (Autopilot's variable)
    # chooses the CSV columns.
    records = ROWS[:5]
    lines = transform(
        sagemaker, s3, "keys", csv_rows(model, records),
        environment={"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probabilities"},
    )  # fmt: skip
    got = list(csv.reader(lines))
    want = model.predict(records)
    assert [r[0] for r in got] == [label for label, _ in expected(model, records)]
    for row, probabilities in zip(got, want, strict=True):
        assert json.loads(row[1]) == pytest.approx(probabilities.tolist(), abs=1e-6)


def test_single_records_lacking_every_category_answer_labels_with_the_jobs_keys(
    sagemaker: LocalSageMaker, s3: EmbeddedS3, model: PenguinModel
) -> None:
    # BatchStrategy SingleRecord sends each row alone; a raw row without island and sex is all
    # numbers and reads the same as an encoded one, so it alone cannot say which it is. The
    # job's SAGEMAKER_INFERENCE_OUTPUT makes every request answer those keys.
    records = [*ROWS[:3], {**ROWS[3], "island": None, "sex": None}]
    lines = transform(
        sagemaker, s3, "single", csv_rows(model, records), batch_strategy="SingleRecord",
        environment={"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability"},
    )  # fmt: skip
    want = expected(model, records)
    assert [row[0] for row in csv.reader(lines)] == [label for label, _ in want]


def test_json_lines_records_join_under_sagemaker_output(
    sagemaker: LocalSageMaker, s3: EmbeddedS3, model: PenguinModel
) -> None:
    # The page's "Output an ID Attribute with Results and Exclude the ID Attribute from the
    # Input (JSON)": InputFilter $.features, JoinSource Input,
    # OutputFilter $['id','SageMakerOutput'].
    records = ROWS[:6]
    body = "".join(
        json.dumps({"id": i, "features": r, "note": "x"}) + "\n" for i, r in enumerate(records)
    ).encode()
    lines = transform(
        sagemaker, s3, "json", body, "application/jsonlines", InputFilter="$.features",
        JoinSource="Input", OutputFilter="$['id','SageMakerOutput']",
    )  # fmt: skip
    got = [json.loads(line) for line in lines]
    assert [sorted(g) for g in got] == [["SageMakerOutput", "id"]] * len(records)
    assert [g["id"] for g in got] == list(range(len(records)))
    want = expected(model, records)
    assert [g["SageMakerOutput"]["predicted_label"] for g in got] == [lab for lab, _ in want]


def test_a_json_record_that_is_not_an_object_joins_as_sagemaker_input(
    sagemaker: LocalSageMaker, s3: EmbeddedS3, model: PenguinModel
) -> None:
    # The page's note: when the input is not a key-value object, SageMaker writes
    # {"SageMakerInput": <input>, "SageMakerOutput": <result>}. A numeric row in the encoded
    # order is such an input.
    encoded = [model.encode(r) for r in ROWS[:3]]
    body = "".join(json.dumps(row) + "\n" for row in encoded).encode()
    lines = transform(sagemaker, s3, "arrays", body, "application/jsonlines", JoinSource="Input")
    got = [json.loads(line) for line in lines]
    assert [g["SageMakerInput"] for g in got] == encoded
    assert all(set(g) == {"SageMakerInput", "SageMakerOutput"} for g in got)


def test_two_ranges_in_one_path_are_refused_as_sagemaker_refuses_them(
    sagemaker: LocalSageMaker, s3: EmbeddedS3
) -> None:
    # SageMaker's error for OutputFilter $[0:2,246:] (aws/sagemaker-python-sdk issue 1112).
    with pytest.raises(SageMakerError) as caught:
        transform(sagemaker, s3, "ranges", b"1,2\n", JoinSource="Input", OutputFilter="$[0:2,246:]")
    assert caught.value.code == "ValidationException"
    assert (
        "Invalid JsonPath: $[0:2,246:]: only single range filters of format (eg: [1:5]) are "
        "supported" in str(caught.value)
    )


def test_a_name_path_on_csv_records_is_refused_naming_the_index_form(
    sagemaker: LocalSageMaker, s3: EmbeddedS3
) -> None:
    # "For CSV data, each row is taken as a JSON array, so only index based JSONPaths can be
    # applied" (the page).
    with pytest.raises(SageMakerError, match=r"\$\.features: a CSV record is an array"):
        transform(sagemaker, s3, "names", b"1,2\n", InputFilter="$.features")


def test_a_header_row_fails_the_join_naming_the_count(
    sagemaker: LocalSageMaker, s3: EmbeddedS3, model: PenguinModel
) -> None:
    # serve skips a header row and answers it with no line: a join would be off by one, so
    # the job fails instead of writing misaligned rows.
    header = ",".join(model.features) + "\n"
    body = header.encode() + csv_rows(model, ROWS[:3])
    with pytest.raises(JobFailed) as caught:
        transform(sagemaker, s3, "header", body, JoinSource="Input")
    reason = caught.value.description["FailureReason"]
    assert "the model answered 3 line(s) for 4 record(s)" in reason


# Any CSV fields (commas, quotes, spaces, non-ASCII): a joined row reads back as the input's
# fields followed by the answer's (RFC 4180, which the page requires of CSV records), and an
# index filter selects the fields Python's own indexing selects.
_FIELD = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"))


@settings(max_examples=200, deadline=None)
@given(
    fields=st.lists(_FIELD, min_size=1, max_size=8),
    answer=st.lists(_FIELD, min_size=1, max_size=3),
    index=st.integers(-8, 7),
)
def test_a_joined_csv_row_reads_back_as_input_then_answer(
    fields: list[str], answer: list[str], index: int
) -> None:
    def line(values: list[str]) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(values)
        return out.getvalue().encode()

    request = {
        "TransformInput": {"ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"AssembleWith": "Line"},
        "DataProcessing": {"JoinSource": "Input", "InputFilter": f"$[{index}]"},
    }
    processing = DataProcessing.of(request)
    assert processing is not None
    joined = processing.join(line(fields), line(answer), 0)
    assert next(csv.reader([joined.decode()])) == [*fields, *answer]
    if -len(fields) <= index < len(fields):
        sent = processing.filter_input(line(fields), 0).decode()
        assert next(csv.reader([sent]), [""]) == [fields[index]]
    else:
        with pytest.raises(FilterError, match=rf"record 0: \$\[{index}\] selects index"):
            processing.filter_input(line(fields), 0)


# Hostile paths and records: any text as a filter is a Path or a FilterError (the job's
# ValidationException or ClientError), and a Path applied to any JSON value selects or raises
# FilterError; never another exception. A slice matches Python's with its end made inclusive.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)
_PATHS = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"\$(\.[a-z*]{1,3}|\[-?\d{0,2}(:-?\d{0,2})?(,-?\d{0,2})*\]|\['[a-z]'\])*",
                  fullmatch=True),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(text=_PATHS, value=_JSON)
def test_any_filter_on_any_record_selects_or_says_why(text: str, value: Any) -> None:
    try:
        path = JsonPath.parse(text, "InputFilter")
    except FilterError:
        return
    try:
        path.select(value, 0)
    except FilterError as err:
        assert str(err)


@given(
    values=st.lists(st.integers(), max_size=10),
    start=st.none() | st.integers(-12, 12),
    end=st.none() | st.integers(-12, 12),
)
def test_a_slice_is_pythons_with_its_end_included(
    values: list[int], start: int | None, end: int | None
) -> None:
    text = f"$[{'' if start is None else start}:{'' if end is None else end}]"
    python_end = None if end is None or end == -1 else end + 1
    assert JsonPath.parse(text, "OutputFilter").select(values, 0) == values[start:python_end]


def test_a_transform_job_logs_each_object_it_has_written(
    s3: EmbeddedS3, model: PenguinModel, tmp_path: Path
) -> None:
    # The run's reporter shows these lines as the transform's progress (mlstack/local/ui.py).
    logged: list[tuple[str, str]] = []
    image = Image(uri=IMAGE_URI, directory=REPO / "containers", dockerfile="inference/Dockerfile")
    sagemaker = LocalSageMaker(
        tmp_path / "run", s3, {IMAGE_URI: image}, log=lambda s, line: logged.append((s, line))
    )
    try:
        sagemaker.create_model(
            {
                "ModelName": "penguins",
                "PrimaryContainer": {
                    "Image": IMAGE_URI,
                    "ModelDataUrl": "s3://data/models/model.tar.gz",
                },
                "ExecutionRoleArn": "arn:aws:iam::000000000000:role/sagemaker",
            }
        )
        for part in ("a", "b"):  # two objects under the input prefix
            s3.client.put_object(
                Bucket="data", Key=f"in/progress/{part}.csv", Body=csv_rows(model, ROWS)
            )
        transform(sagemaker, s3, "progress", csv_rows(model, ROWS))  # a third: rows.csv
    finally:
        sagemaker.stop()
    progress = [line for source, line in logged if source == "progress"]
    assert [line for line in progress if line.startswith("mlstack-transform:")] == [
        f"mlstack-transform: {k}/3 objects transformed" for k in (1, 2, 3)
    ]
