"""schema.json (version 1): the reader/writer every container program shares."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlstack_containers.schema import Schema, SchemaError, class_order

# The example document of the shared spec (the issue #19/#20 brief, "The dataset schema both
# container engineers share"), verbatim: the reader must take it and give it back unchanged.
SPEC_EXAMPLE = {
    "schema_version": 1,
    "problem_type": "multiclass",
    "label": {
        "name": "species",
        "type": "categorical",
        "classes": ["Adelie", "Chinstrap", "Gentoo"],
    },
    "features": [
        {"name": "island", "type": "categorical", "categories": ["Biscoe", "Dream", "Torgersen"]},
        {"name": "bill_length_mm", "type": "numeric"},
    ],
    "rows": {"train": 240, "validation": 52, "test": 52, "rejected": 0},
}


def _with(change):
    document = copy.deepcopy(SPEC_EXAMPLE)
    change(document)
    return document


def test_spec_example_round_trips():
    schema = Schema.from_json(json.dumps(SPEC_EXAMPLE))
    assert json.loads(schema.to_json()) == SPEC_EXAMPLE
    assert schema.num_class == 3
    assert schema.class_index("Gentoo") == 2
    assert schema.feature_names == ["island", "bill_length_mm"]


def test_a_schema_written_before_missing_counts_reads_and_counts_none():
    # the spec example predates features[].missing: models trained then still load
    schema = Schema.from_dict(SPEC_EXAMPLE)
    assert [f.missing for f in schema.features] == [None, None]
    assert schema.missing is None
    assert all("missing" not in f for f in json.loads(schema.to_json())["features"])


def test_missing_counts_round_trip():
    def counted(d):
        d["features"][0]["missing"] = 0
        d["features"][1]["missing"] = 344  # every written row (240 + 52 + 52)

    document = _with(counted)
    schema = Schema.from_json(json.dumps(document))
    assert json.loads(schema.to_json()) == document
    assert schema.missing == {"island": 0, "bill_length_mm": 344}


def test_categorical_feature_encodes_index_and_empties_unknown():
    island = Schema.from_dict(SPEC_EXAMPLE).features[0]
    assert [island.encode(v) for v in ("Biscoe", "Torgersen", "Mars", "")] == ["0", "2", "", ""]


def test_file_round_trip(tmp_path):
    written = Schema.from_dict(SPEC_EXAMPLE).write(tmp_path / "schema")
    assert written.name == "schema.json"
    assert Schema.read(tmp_path / "schema") == Schema.from_dict(SPEC_EXAMPLE)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.update(problem_type="ranking"), "problem_type"),
        (lambda d: d["label"].update(type="text"), "label.type"),
        (lambda d: d["label"].pop("classes"), "label.classes"),
        (lambda d: d["label"].update(classes=["Gentoo", "Adelie"]), "label.classes"),
        (lambda d: d["label"].update(classes=["a", "a", "b"]), "label.classes[1]"),
        (lambda d: d["label"].update(classes=["a", 3]), "label.classes[1]"),
        (lambda d: d.update(problem_type="binary"), "label.classes"),
        (
            lambda d: d["features"][0].update(categories=["Dream", "Biscoe"]),
            "features[0].categories",
        ),
        (lambda d: d["features"][0].pop("categories"), "features[0].categories"),
        (lambda d: d["features"][1].update(categories=[]), "features[1].categories"),
        (lambda d: d["features"][1].update(name="species"), "features[1].name"),
        (lambda d: d["features"][1].update(name=""), "features[1].name"),
        (lambda d: d["features"][1].update(colour="red"), "features[1].colour"),
        (lambda d: d["rows"].update(test=-1), "rows.test"),
        (lambda d: d["rows"].pop("train"), "rows.train"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["features"][1].update(missing=-1), "features[1].missing"),
        (lambda d: d["features"][1].update(missing=True), "features[1].missing"),
        (lambda d: d["features"][1].update(missing="2"), "features[1].missing"),
        # train 240 + validation 52 + test 52 = 344 written rows: a column misses at most 344
        (lambda d: d["features"][0].update(missing=345), "features[0].missing"),
    ],
)
def test_bad_document_names_the_key(change, key):
    with pytest.raises(SchemaError) as raised:
        Schema.from_dict(_with(change))
    assert str(raised.value).startswith(f"{key}:")


def test_regression_label_has_no_classes():
    def regression(d):
        d["problem_type"] = "regression"
        d["label"] = {"name": "y", "type": "numeric", "classes": ["1", "2"]}

    with pytest.raises(SchemaError, match=r"^label\.classes: a regression label has no classes"):
        Schema.from_dict(_with(regression))


def test_numeric_classes_sort_by_value_not_text():
    # "10" sorts before "9" by code point; numeric labels keep numeric order (spec).
    assert class_order(["10", "9", "-1", "9"], numeric=True) == ["-1", "9", "10"]
    assert class_order(["b", "B", "a", "é"], numeric=False) == ["B", "a", "b", "é"]

    def numeric(d):
        d["label"] = {"name": "grade", "type": "numeric", "classes": ["1", "10", "9"]}

    with pytest.raises(SchemaError, match=r"^label\.classes: not in numeric order"):
        Schema.from_dict(_with(numeric))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [*SPEC_EXAMPLE, "name", "type", "classes", "categories", "missing", "x"]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(document=_json, key=st.sampled_from(list(SPEC_EXAMPLE)))
def test_hostile_documents_give_schema_error_or_a_valid_schema(document, key):
    # Hypothesis-generated hostile input: any JSON value (and the spec example with any one of
    # its keys replaced by one) is either a schema that validates or a SchemaError, never a crash.
    for candidate in (document, {**SPEC_EXAMPLE, key: document}):
        try:
            schema = Schema.from_dict(candidate)
        except SchemaError as exc:
            assert str(exc)
        else:
            schema.validate()
            assert Schema.from_json(schema.to_json()) == schema
