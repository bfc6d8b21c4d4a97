"""The data bucket denies uploads not encrypted with its key (issue 27), evaluated offline against
the synthesized bucket policy and the execution role's identity policy with the IAM proof's
evaluator (tests/iam/evaluator.py). No workflow run is needed: only the policies decide."""

from __future__ import annotations

import pytest

from mlstack.local import assembly as assembly_mod
from tests import once
from tests.iam.access import Call, CallLog
from tests.iam.evaluator import SynthesizedPolicies

# PutObject's encryption headers and the condition keys S3 matches them with (Service
# Authorization Reference, Amazon S3: condition keys of PutObject), as each kind of upload sets
# them (Amazon S3 API Reference, PutObject: x-amz-server-side-encryption, -aws-kms-key-id,
# -customer-algorithm).
SSE = "s3:x-amz-server-side-encryption"
SSE_KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"
SSE_C = "s3:x-amz-server-side-encryption-customer-algorithm"
# The key ARN format of the AWS KMS Developer Guide ("Key ARN"), another account's key.
OTHER_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> tuple[SynthesizedPolicies, CallLog]:
    directory = once.environment_assembly(tmp_path_factory, "dev") / "assembly-dev"
    resolved = assembly_mod.read(directory, "dev")
    return SynthesizedPolicies(resolved), CallLog(resolved)


def execution_role(policies: SynthesizedPolicies) -> str:
    (arn,) = [a for a, name in policies.role_names.items() if "/WorkflowExecutionRole" in name]
    return arn


# Stands for the data key's ARN, known once the assembly is read.
DATA_KEY = "<the data key>"


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        # What the workflow's writers send: SageMaker the KmsKeyId of its output configuration
        # (the data key's ARN), the seeding function nothing (default encryption applies the
        # data key; S3 evaluates the bucket policy first: Amazon S3 User Guide, "Setting default
        # server-side encryption behavior for Amazon S3 buckets").
        ({SSE: "aws:kms", SSE_KEY: DATA_KEY}, True),
        ({}, True),
        # What would escape the data key and its audit trail.
        ({SSE: "AES256"}, False),  # SSE-S3
        ({SSE: "aws:kms:dsse"}, False),
        ({SSE: "aws:kms"}, False),  # no key ID: S3 uses the AWS managed key aws/s3
        ({SSE: "aws:kms", SSE_KEY: OTHER_KEY}, False),
        ({SSE_KEY: OTHER_KEY}, False),
        ({SSE_C: "AES256"}, False),  # a customer-provided key (SSE-C)
    ],
)
def test_the_data_bucket_denies_uploads_not_encrypted_with_its_key(
    dev: tuple[SynthesizedPolicies, CallLog], headers: dict[str, str], allowed: bool
) -> None:
    policies, log = dev
    ((bucket, data_key),) = log.bucket_keys.items()
    context = {k: data_key if v == DATA_KEY else v for k, v in headers.items()}
    call = Call(
        execution_role(policies),
        "s3:PutObject",
        f"arn:aws:s3:::{bucket}/models/x/model.tar.gz",
        (("aws:SecureTransport", "true"), *sorted(context.items())),
    )
    decision = policies.decide(call)
    assert decision.allowed is allowed, (headers, decision.missing)
