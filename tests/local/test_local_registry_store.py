"""The local account's SageMaker registry file has a typed, versioned schema.

The expected values come from a file written by the code before the schema existed:
``fixtures/registry-v1-main-aec8bfd.json`` is the ``sagemaker/registry.json`` of a local account
after ``mlstack local run --env dev`` (500 rows) and ``mlstack local reject --version 1``, both run
with main at aec8bfd. Such a file is migrated (every resource in it described again, written back
with the same kinds and records plus ``schema_version``); one this version cannot read is refused
with a message saying what to do. Hostile documents (hypothesis) are read or refused with that
error, never another exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack.local.registry_store import Registry, RegistryError
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker, deployed_endpoints

FIXTURE = Path(__file__).parent / "fixtures" / "registry-v1-main-aec8bfd.json"
MAIN = json.loads(FIXTURE.read_text(encoding="utf-8"))


def saved_by_main(tmp_path: Path, **changes: Any) -> Path:
    """The file main wrote, with ``changes`` applied, in a fresh account directory."""
    path = tmp_path / "account" / "sagemaker" / "registry.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**MAIN, **changes}), encoding="utf-8")
    return path


def one(kind: str) -> dict[str, Any]:
    (entry,) = MAIN[kind].values()
    assert isinstance(entry, dict)
    return entry


def answer(record: dict[str, Any]) -> dict[str, Any]:
    """A job's Describe answer: DescribeTrainingJobResponse and DescribeTransformJobResponse have
    no Tags member, and no answer has the local-only LocalRecords (botocore's sagemaker model)."""
    return {k: v for k, v in record.items() if k not in ("Tags", "LocalRecords")}


def migrated() -> dict[str, Any]:
    """MAIN as version 2 lays it out: a transform job without LocalRecords."""
    document = json.loads(json.dumps(MAIN))
    for job in document["transform_jobs"].values():
        job.pop("LocalRecords", None)
    return document


def test_the_fixture_is_a_file_written_before_the_schema() -> None:
    assert "schema_version" not in MAIN
    kinds = {k for k, v in MAIN.items() if v}
    assert {"models", "endpoints", "training_jobs", "model_packages", "pending_events"} <= kinds


def test_a_file_written_by_main_is_migrated_and_every_resource_described(tmp_path: Path) -> None:
    path = saved_by_main(tmp_path)
    with EmbeddedS3() as s3:
        sagemaker = LocalSageMaker(tmp_path / "run", s3, {}, restore_registry=path)
        training = one("training_jobs")
        name = training["TrainingJobName"]
        assert sagemaker.describe_training_job({"TrainingJobName": name}) == answer(training)
        transform = one("transform_jobs")
        assert sagemaker.describe_transform_job(
            {"TransformJobName": transform["TransformJobName"]}
        ) == answer(transform)
        processing = one("processing_jobs")
        assert (
            sagemaker.describe_processing_job(
                {"ProcessingJobName": processing["ProcessingJobName"]}
            )
            == processing
        )
        for model in MAIN["models"].values():
            assert sagemaker.describe_model({"ModelName": model["ModelName"]}) == model
        config = one("endpoint_configs")
        assert (
            sagemaker.describe_endpoint_config({"EndpointConfigName": config["EndpointConfigName"]})
            == config
        )
        endpoint = one("endpoints")
        described = sagemaker.describe_endpoint({"EndpointName": endpoint["name"]})
        assert described["EndpointStatus"] == endpoint["status"] == "InService"
        assert described["EndpointConfigName"] == endpoint["config_name"]
        package = one("model_packages")
        assert (
            sagemaker.describe_model_package({"ModelPackageName": package["ModelPackageArn"]})[
                "ModelApprovalStatus"
            ]
            == package["ModelApprovalStatus"]
            == "Rejected"
        )
        assert sagemaker.pending_events == MAIN["pending_events"]
        sagemaker.stop()  # saves the registry
    saved = json.loads((tmp_path / "run" / "sagemaker" / "registry.json").read_text())
    assert saved.pop("schema_version") == 2
    assert saved == migrated()


def test_the_saved_file_has_mains_kinds_and_endpoint_record_keys(tmp_path: Path) -> None:
    with EmbeddedS3() as s3:
        sagemaker = LocalSageMaker(tmp_path, s3, {}, restore_registry=saved_by_main(tmp_path))
        sagemaker.stop()
    saved = json.loads((tmp_path / "sagemaker" / "registry.json").read_text())
    assert set(saved) == set(MAIN) | {"schema_version"}
    assert set(next(iter(saved["endpoints"].values()))) == set(one("endpoints"))


def test_deployed_endpoints_reads_a_file_written_by_main(tmp_path: Path) -> None:
    saved_by_main(tmp_path)
    endpoint = one("endpoints")
    assert deployed_endpoints(tmp_path / "account") == {endpoint["name"]: endpoint}


def test_a_kind_this_version_does_not_know_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    # Another version's kind (an older code kept such a kind as it was; dropping it now would
    # lose resources without a word).
    path = saved_by_main(tmp_path, events=["e1"])
    with EmbeddedS3() as s3, pytest.raises(ValueError) as refused:
        LocalSageMaker(tmp_path / "run", s3, {}, restore_registry=path)
    message = str(refused.value)
    assert str(path) in message
    assert "'events'" in message
    assert "mlstack local run --clean" in message


def test_a_newer_schema_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    path = saved_by_main(tmp_path, schema_version=3)
    with EmbeddedS3() as s3, pytest.raises(ValueError) as refused:
        LocalSageMaker(tmp_path / "run", s3, {}, restore_registry=path)
    message = str(refused.value)
    assert "newer mlstack" in message
    assert "schema 3" in message
    assert "upgrade mlstack" in message
    assert "--clean" in message


def test_an_endpoint_record_without_its_status_is_refused_naming_it(tmp_path: Path) -> None:
    endpoint = {k: v for k, v in one("endpoints").items() if k != "status"}
    path = saved_by_main(tmp_path, endpoints={endpoint["name"]: endpoint})
    with EmbeddedS3() as s3, pytest.raises(ValueError, match=r"endpoint '.*' lacks status"):
        LocalSageMaker(tmp_path / "run", s3, {}, restore_registry=path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
# Documents shaped like a registry (its kinds, a version) with hostile values in them.
REGISTRY_LIKE = st.dictionaries(
    st.sampled_from([*MAIN, "schema_version", "events"]), JSON, max_size=4
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, REGISTRY_LIKE))
def test_any_document_is_read_or_refused_with_a_registry_error(document: Any) -> None:
    try:
        registry = Registry.from_document(document, "registry.json")
    except RegistryError as err:
        assert str(err).startswith("registry.json")
    else:
        assert isinstance(registry.to_document()["schema_version"], int)
