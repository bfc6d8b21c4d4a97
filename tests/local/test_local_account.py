"""The persistent local account: successive runs of one environment share S3 and the SageMaker
registry, so the second run of dev takes the deploy stage's update path (Describe endpoint finds
the endpoint the first run deployed; SageMaker's blue/green UpdateEndpoint replaces its
configuration); ``--clean`` starts from an empty account; another environment has its own; one
run of an environment at a time."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli import main
from mlstack.cli.local import _model_from_run
from mlstack.constructs import state_names as sn
from mlstack.local import assembly as assembly_mod
from mlstack.local.account import AccountInUse, LocalAccount
from mlstack.local.runner import RunOptions, RunReport, format_summary, run
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker, SageMakerError
from mlstack.local.ui import Reporter
from tests import programs
from tests.local.conftest import LOCAL_RUN_ROWS

ENDPOINT = "mlstack-dev-live"
CREATE_PATH = [sn.PLAN_NEW_ENDPOINT, sn.CREATE_ENDPOINT_CONFIG, sn.ENDPOINT_EXISTS]
UPDATE_PATH = [sn.PLAN_ENDPOINT_UPDATE, sn.CREATE_ENDPOINT_CONFIG, sn.ENDPOINT_EXISTS]


@dataclass
class TwoRuns:
    workdir: Path
    account: LocalAccount
    first: RunReport
    second: RunReport
    registry: dict[str, Any]  # the account's, after the second run


def local_run(cdk_out: Path, workdir: Path, name: str, **options: Any) -> RunReport:
    # The programs forked with their libraries imported (tests/programs.py).
    with programs.forked_python():
        return run(
            RunOptions(
                environment="dev",
                rows=LOCAL_RUN_ROWS,
                workdir=workdir,
                cdk_out=cdk_out,
                name=name,
                **options,
            ),
            Reporter(out=io.StringIO()),
        )


def after(states: list[str], state: str, count: int) -> list[str]:
    index = states.index(state)
    return states[index + 1 : index + 1 + count]


@pytest.fixture(scope="module")
def two_runs(cdk_out: Path, tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    workdir = tmp_path_factory.mktemp("account-work")
    with pytest.MonkeyPatch.context() as mp:  # `fake_aws` is per test; this one is per module
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        first = local_run(cdk_out, workdir, "account-run-1")
        second = local_run(cdk_out, workdir, "account-run-2")
    account = LocalAccount.of(workdir, "dev")
    registry = json.loads((account.directory / "sagemaker" / "registry.json").read_text())
    return TwoRuns(workdir, account, first, second, registry)


def test_both_runs_succeed_and_each_keeps_its_own_run_dir(two_runs: TwoRuns) -> None:
    assert two_runs.first.ok, two_runs.first.failure_reason
    assert two_runs.second.ok, two_runs.second.failure_reason
    assert two_runs.first.run_dir != two_runs.second.run_dir
    for report in (two_runs.first, two_runs.second):
        record = json.loads((report.run_dir / "execution.json").read_text())
        assert record["name"] == report.name
        assert record["account"] == str(two_runs.account.directory)
        assert (report.run_dir / "jobs").is_dir()
    assert f"Local account     {two_runs.account.directory}" in format_summary(two_runs.second)
    # The summary's training jobs are the run's own, not the account's earlier ones.
    assert [j["name"] for j in two_runs.second.training_jobs] == [
        two_runs.second.output["training_job_name"]
    ]


def release_of(report: RunReport) -> dict[str, Any]:
    """The one release the run's registration started (dev approves automatically)."""
    (release,) = report.releases
    assert release["status"] == "SUCCEEDED", release["cause"]
    return release


def test_the_first_run_creates_the_endpoint_and_the_second_updates_it(two_runs: TwoRuns) -> None:
    first, second = release_of(two_runs.first), release_of(two_runs.second)
    # Each run registers a new version; the release it starts deploys that version.
    versions = [r.output["model_package"]["version"] for r in (two_runs.first, two_runs.second)]
    assert versions == [1, 2]
    # First release: DescribeEndpoint fails ("Could not find endpoint"), the caught error leads
    # to the create path.
    assert after(first["states"], sn.ENDPOINT_MISSING, 3) == CREATE_PATH
    assert sn.CREATE_ENDPOINT in first["states"] and sn.UPDATE_ENDPOINT not in first["states"]
    # Second release: the endpoint from the account is found, so the blue/green update path.
    assert after(second["states"], sn.DESCRIBE_ENDPOINT, 3) == UPDATE_PATH
    assert sn.ENDPOINT_MISSING not in second["states"]
    assert sn.UPDATE_ENDPOINT in second["states"] and sn.CREATE_ENDPOINT not in second["states"]
    endpoint = two_runs.registry["endpoints"][ENDPOINT]
    assert endpoint["status"] == "InService"
    assert endpoint["config_name"] == second["output"]["endpoint_config_name"]
    assert endpoint["model_name"] == second["output"]["model_name"]


def test_the_registry_holds_both_runs_resources(two_runs: TwoRuns) -> None:
    registry = two_runs.registry
    for report in (two_runs.first, two_runs.second):
        out, release = report.output, release_of(report)["output"]
        assert out["model_name"].lower() in registry["models"]
        assert release["model_name"].lower() in registry["models"]
        assert release["endpoint_config_name"].lower() in registry["endpoint_configs"]
        job = registry["training_jobs"][out["training_job_name"].lower()]
        assert job["TrainingJobStatus"] == "Completed"
        assert out["transform_job_name"].lower() in registry["transform_jobs"]
    assert [p["ModelPackageVersion"] for p in registry["model_packages"].values()] == [1, 2]


def test_the_s3_objects_of_the_first_run_are_kept_through_the_second(two_runs: TwoRuns) -> None:
    # The account is saved from the second run's S3 server, which drops files of objects it
    # does not hold (test_an_s3_save_drops_deleted_objects): the first run's objects were there.
    s3 = two_runs.account.s3_dir
    for report in (two_runs.first, two_runs.second):
        artifact = s3 / report.output["model_artifact_uri"].removeprefix("s3://")
        assert artifact.is_file()
        # Each run dir's s3 is a link to the account's objects.
        assert (report.run_dir / "s3").resolve() == s3
    datasets = {p.parent.parent.name for p in s3.rglob("datasets/*/train/*")}
    assert len(datasets) == 2


def test_from_run_serves_the_endpoint_as_each_run_left_it(two_runs: TwoRuns) -> None:
    first_model, name = _model_from_run(two_runs.first.run_dir, None)
    second_model, _ = _model_from_run(two_runs.second.run_dir, None)
    account_model, _ = _model_from_run(two_runs.account.directory, None)
    assert name == ENDPOINT
    assert first_model != second_model
    assert release_of(two_runs.first)["output"]["endpoint_config_name"] in str(first_model)
    assert account_model == second_model
    assert (first_model / "xgboost-model").is_file() and (second_model / "xgboost-model").is_file()


@pytest.mark.parametrize("model_dir_kept", [True, False], ids=["model-dir-kept", "model-dir-gone"])
def test_a_restored_endpoint_is_served_again_when_needed(
    two_runs: TwoRuns, cdk_out: Path, tmp_path: Path, model_dir_kept: bool
) -> None:
    registry = json.loads(json.dumps(two_runs.registry))
    if not model_dir_kept:  # extracted again from its model's ModelDataUrl
        registry["endpoints"][ENDPOINT]["model_dir"] = str(tmp_path / "gone" / "model")
    saved = tmp_path / "registry.json"
    saved.write_text(json.dumps(registry))
    resolved = assembly_mod.load("dev", cdk_out=cdk_out)
    with EmbeddedS3(resolved.region) as s3:
        s3.restore(two_runs.account.s3_dir)
        sagemaker = LocalSageMaker(
            tmp_path / "run",
            s3,
            resolved.images,
            region=resolved.region,
            account=resolved.account,
            restore_registry=saved,
            endpoints_dir=tmp_path / "endpoints",
        )
        described = sagemaker.describe_endpoint({"EndpointName": ENDPOINT})
        assert described["EndpointStatus"] == "InService"
        assert (
            described["EndpointConfigName"]
            == (release_of(two_runs.second)["output"]["endpoint_config_name"])
        )
        try:
            server = sagemaker.endpoint_server(ENDPOINT)
            assert sagemaker.endpoint_server(ENDPOINT) is server  # served once
            status, _, body = server.request(
                "POST", "/invocations", b"37,82\n", {"Content-Type": "text/csv"}
            )
            assert status == 200
            assert 0.0 <= float(body.decode().strip()) <= 1.0
        finally:
            sagemaker.stop()
    model_dir = Path(sagemaker.endpoints[ENDPOINT].model_dir)
    assert model_dir.is_dir()
    assert (tmp_path / "endpoints" in model_dir.parents) is not model_dir_kept


def test_a_clean_run_starts_from_an_empty_account(
    two_runs: TwoRuns, cdk_out: Path, tmp_path: Path
) -> None:
    # A copy of the populated account, so the other tests keep theirs.
    shutil.copytree(two_runs.account.directory, tmp_path / "accounts" / "dev")
    # An input the workflow refuses at its first state: the run is short and creates nothing.
    report = local_run(
        cdk_out, tmp_path, "account-clean", clean=True, extra_input={"training_instance_count": 0}
    )
    assert report.error == "InvalidExecutionInput"
    account = LocalAccount.of(tmp_path, "dev")
    registry = json.loads((account.directory / "sagemaker" / "registry.json").read_text())
    assert registry["models"] == {} and registry["endpoints"] == {}
    assert registry["training_jobs"] == {}
    assert not [p for p in account.s3_dir.rglob("*") if p.is_file() and p.name != ".index.json"]
    assert not (account.directory / "endpoints").exists()
    assert [e["name"] for e in account.executions()] == ["account-clean"]


def test_an_execution_name_is_used_once_per_account(two_runs: TwoRuns, cdk_out: Path) -> None:
    with pytest.raises(ValueError, match=r"'account-run-1' was already used .* --clean"):
        local_run(cdk_out, two_runs.workdir, "account-run-1")


def test_another_environment_does_not_see_the_account(two_runs: TwoRuns, tmp_path: Path) -> None:
    prod = LocalAccount.of(two_runs.workdir, "prod")
    assert prod.directory != two_runs.account.directory
    assert not (prod.directory / "sagemaker").exists() and not prod.s3_dir.exists()
    with EmbeddedS3() as s3:
        assert s3.restore(prod.s3_dir) == 0
        sagemaker = LocalSageMaker(
            tmp_path, s3, {}, restore_registry=prod.directory / "sagemaker" / "registry.json"
        )
        with pytest.raises(SageMakerError, match="Could not find endpoint"):
            sagemaker.describe_endpoint({"EndpointName": ENDPOINT})
        assert sagemaker.models == {}


def test_a_run_directory_of_another_environment_is_not_reused(
    two_runs: TwoRuns, cdk_out: Path
) -> None:
    options = RunOptions(environment="prod", workdir=two_runs.workdir, name="account-run-1")
    with pytest.raises(ValueError, match="holds a run of environment 'dev'"):
        run(options, Reporter(out=io.StringIO()))


# --- one run at a time ---------------------------------------------------------------------


@pytest.fixture
def lock_holder(tmp_path: Path) -> Any:
    """Another process holding dev's account in ``tmp_path`` (killed at the end)."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from mlstack.local.account import LocalAccount
        with LocalAccount.of(Path({str(tmp_path)!r}), "dev").lock("holder-run"):
            print("locked", flush=True)
            time.sleep(120)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_a_second_run_of_the_environment_is_refused_naming_the_holder(
    lock_holder: subprocess.Popen[str], tmp_path: Path
) -> None:
    options = RunOptions(environment="dev", workdir=tmp_path, name="second")
    with pytest.raises(AccountInUse) as refused:
        run(options, Reporter(out=io.StringIO()))
    message = str(refused.value)
    assert f"pid {lock_holder.pid}, run holder-run" in message
    assert "in use by another local run" in message and "'dev'" in message
    assert not (tmp_path / "second").exists()  # refused before anything was written
    # Another environment is not held.
    with LocalAccount.of(tmp_path, "prod").lock("prod-run"):
        pass


def test_the_cli_refuses_a_second_run_with_a_clear_message(
    lock_holder: subprocess.Popen[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["local", "run", "--env", "dev", "--workdir", str(tmp_path), "--clean"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlstack local run: the local account of environment 'dev'")
    assert f"pid {lock_holder.pid}" in err


def test_the_lock_goes_with_its_holder(lock_holder: subprocess.Popen[str], tmp_path: Path) -> None:
    os.kill(lock_holder.pid, signal.SIGKILL)  # a run killed mid-way releases nothing itself
    lock_holder.wait()
    with LocalAccount.of(tmp_path, "dev").lock("next-run"):
        text = (tmp_path / "accounts" / "dev" / "run.lock").read_text()
        assert text.startswith(f"pid {os.getpid()}, run next-run")


def test_an_environment_name_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("environment '../x'")):
        LocalAccount.of(tmp_path, "../x")


# --- S3 contents ---------------------------------------------------------------------------


def test_s3_objects_survive_a_save_and_a_restore(tmp_path: Path) -> None:
    with EmbeddedS3() as s3:
        others = {b["Name"] for b in s3.client.list_buckets()["Buckets"]}  # other tests'
        s3.create_bucket("a-bucket")
        s3.create_bucket("empty-bucket")
        s3.write("s3://a-bucket/models/m/model.tar.gz", b"\x1f\x8bmodel", "application/x-tar")
        s3.write("s3://a-bucket/data/part-00000.csv", b"1,2\n")
        s3.write("s3://a-bucket/folder/", b"")  # a folder marker: no file can hold it
        skipped = s3.persist(tmp_path, others)
    assert skipped == ["s3://a-bucket/folder/"]
    with EmbeddedS3() as s3:
        assert s3.restore(tmp_path) == 2
        buckets = {b["Name"] for b in s3.client.list_buckets()["Buckets"]}
        assert buckets >= {"a-bucket", "empty-bucket"}  # (and other tests' of this process)
        head = s3.client.head_object(Bucket="a-bucket", Key="models/m/model.tar.gz")
        assert head["ContentType"] == "application/x-tar"
        assert s3.read("s3://a-bucket/models/m/model.tar.gz") == b"\x1f\x8bmodel"
        assert s3.read("s3://a-bucket/data/part-00000.csv") == b"1,2\n"


def test_an_s3_save_drops_deleted_objects_and_rewrites_changed_ones(tmp_path: Path) -> None:
    with EmbeddedS3() as s3:
        # Buckets of other tests of this process are left out, as the runner leaves them.
        others = {b["Name"] for b in s3.client.list_buckets()["Buckets"]} - {"b-bucket"}
        s3.create_bucket("b-bucket")
        s3.write("s3://b-bucket/keep.txt", b"same")
        s3.write("s3://b-bucket/deep/gone.txt", b"old")
        s3.write("s3://b-bucket/changed.txt", b"v1")
        s3.persist(tmp_path, others)
        s3.client.delete_object(Bucket="b-bucket", Key="deep/gone.txt")
        s3.write("s3://b-bucket/changed.txt", b"v2")
        s3.persist(tmp_path, others)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [".index.json", "b-bucket/changed.txt", "b-bucket/keep.txt"]
    assert (tmp_path / "b-bucket" / "changed.txt").read_bytes() == b"v2"
    assert not (tmp_path / "b-bucket" / "deep").exists()


# --- the registry --------------------------------------------------------------------------


def saved_endpoint(name: str, status: str, model_dir: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "arn": f"arn:aws:sagemaker:us-east-1:000000000000:endpoint/{name}",
        "config_name": f"{name}-config",
        "status": status,
        "created_ms": 1,
        "modified_ms": 2,
        "model_dir": model_dir,
    }


def test_every_kind_of_a_saved_registry_is_restored_and_saved_again(tmp_path: Path) -> None:
    model = {"ModelName": "m-1", "ModelArn": "arn:aws:sagemaker:us-east-1:0:model/m-1"}
    saved = {
        "models": {"m-1": model},
        "endpoint_configs": {},
        "training_jobs": {"t-1": {"TrainingJobName": "t-1", "TrainingJobArn": "arn:t-1"}},
        "model_packages": {"arn:p/1": {"ModelPackageVersion": 1}},
        "endpoints": {
            "live": saved_endpoint("live", "InService", "/x/model"),
            "new": saved_endpoint("new", "Creating"),
            "moving": saved_endpoint("moving", "Updating", "/y/model"),
        },
    }
    path = tmp_path / "account" / "registry.json"
    path.parent.mkdir()
    path.write_text(json.dumps(saved))
    with EmbeddedS3() as s3:
        sagemaker = LocalSageMaker(tmp_path / "run", s3, {}, restore_registry=path)
        assert sagemaker.describe_model({"ModelName": "M-1"}) == model
        assert sagemaker.describe_training_job({"TrainingJobName": "t-1"})["TrainingJobArn"]
        status = {
            name: sagemaker.describe_endpoint({"EndpointName": name})["EndpointStatus"]
            for name in ("live", "new", "moving")
        }
        # A run that ended mid-update leaves the previous configuration serving (a failed
        # update rolls back); one that ended mid-creation leaves nothing that came up.
        assert status == {"live": "InService", "new": "Failed", "moving": "InService"}
        # SageMaker's words for a taken model name (the release's claim reads them).
        with pytest.raises(SageMakerError, match="Cannot create already existing model"):
            sagemaker.create_model({"ModelName": "m-1"})
        sagemaker.stop()
    again = json.loads((tmp_path / "run" / "sagemaker" / "registry.json").read_text())
    assert again["model_packages"] == saved["model_packages"]
    assert again["models"] == saved["models"]
    assert again["training_jobs"] == saved["training_jobs"]
    assert again["endpoints"]["live"]["status"] == "InService"


def test_a_registry_that_is_not_json_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text("{not json")
    with EmbeddedS3() as s3, pytest.raises(ValueError, match="is not a SageMaker registry"):
        LocalSageMaker(tmp_path / "run", s3, {}, restore_registry=path)
