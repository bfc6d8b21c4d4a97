"""The names of the training workflow's states and of its input error: the definition's
contract with its readers (tests, the local runner, dashboards, anyone reading an execution's
history). One home, imported by the constructs that build the states."""

# The core path, in order.
VALIDATE_INPUT = "Validate input"
INPUT_VALID = "Input valid?"
REJECT_INPUT = "Reject input"
LOAD_DEFAULTS = "Load defaults"
APPLY_OVERRIDES = "Apply overrides"
# Generate dataset: Plan shards -> [Many shards?] -> one seeding invocation per shard through an
# inline Map (Generate dataset) or, for many shards, a Distributed Map -> Assemble dataset.
PLAN_SHARDS = "Plan shards"
MANY_SHARDS = "Many shards?"
GENERATE_DATASET = "Generate dataset"
SEED_SHARD = "Seed shard"
GENERATE_DATASET_AT_SCALE = "Generate dataset at scale"
SEED_SHARD_AT_SCALE = "Seed shard at scale"
ASSEMBLE_DATASET = "Assemble dataset"
# The table path (a dataset source of the user's): _prepare_states.
DATASET_SOURCE = "Dataset source?"
TABLE_DEFAULTS = "Table defaults"
RESOLVE_SOURCE = "Resolve source"
SOURCE_IN_S3 = "Source in S3?"
READ_SOURCE_FROM_S3 = "Read source from S3"
READ_SOURCE_FROM_IMPORTS = "Read source from imports"
TABLE_HYPERPARAMETERS = "Table hyperparameters"
PREPARE_DATA = "Prepare data"
READ_PREPARED_DATASET = "Read prepared dataset"
TRAIN_MODEL = "Train model"
SAVE_MODEL = "Save model"
BATCH_TRANSFORM = "Batch transform"
EVALUATE_MODEL = "Evaluate model"
READ_EVALUATION = "Read evaluation"
REPORT_RESULTS = "Report results"
# With a data-quality baseline (data capture on): a Processing job after Batch transform.
BASELINE_DATA = "Baseline data"
# The optional tuning path (a Choice before Train model).
TUNE_OR_TRAIN = "Tune hyperparameters?"
TUNE_MODEL = "Tune model"
READ_BEST_TRAINING_JOB = "Read best training job"
# Between Apply overrides and Generate dataset: the job resources, with a volume KMS key only
# for instance types without local NVMe storage (the input may pick either kind).
TRAINING_STORAGE = "Training instance storage?"
TRAIN_ON_INSTANCE_STORAGE = "Train on instance storage"
TRAIN_ON_ENCRYPTED_VOLUME = "Train on encrypted volume"
TRANSFORM_STORAGE = "Transform instance storage?"
TRANSFORM_ON_INSTANCE_STORAGE = "Transform on instance storage"
TRANSFORM_ON_ENCRYPTED_VOLUME = "Transform on encrypted volume"
NOTIFY_FAILURE = "Notify failure"
WORKFLOW_FAILED = "Workflow failed"
# The error of an execution whose input the workflow refuses.
INVALID_EXECUTION_INPUT = "InvalidExecutionInput"

# The optional deploy stage, between Batch transform and Report results.
READ_METRIC = "Read validation metric"
QUALITY_GATE = "Quality gate"
REJECT_MODEL = "Reject model"
METRIC_NOT_REPORTED = "Metric not reported"
DESCRIBE_ENDPOINT = "Describe endpoint"
ENDPOINT_MISSING = "Is endpoint missing?"
PLAN_NEW_ENDPOINT = "Plan new endpoint"
PLAN_ENDPOINT_UPDATE = "Plan endpoint update"
CREATE_ENDPOINT_CONFIG = "Create endpoint config"
ENDPOINT_EXISTS = "Endpoint exists?"
CREATE_ENDPOINT = "Create endpoint"
UPDATE_ENDPOINT = "Update endpoint"
START_ENDPOINT_WAIT = "Start endpoint wait"
WAIT_FOR_ENDPOINT = "Wait for endpoint"
CHECK_ENDPOINT = "Check endpoint status"
ENDPOINT_READY = "Endpoint ready?"
COUNT_ENDPOINT_CHECK = "Count endpoint check"
ENDPOINT_FAILED = "Endpoint failed"
ENDPOINT_NOT_IN_SERVICE = "Endpoint not in service"
DEPLOYMENT_ROLLED_BACK = "Deployment rolled back"
ENDPOINT_WAIT_TIMED_OUT = "Endpoint wait timed out"

# The model registry: after the quality gate (or Batch transform without a deploy stage), the
# run's artifact copied under releases/ first (_release_artifact_states).
RELEASE_MODEL_ARTIFACT = "Release model artifact"
REGISTER_MODEL = "Register model"

# The release state machine (ModelRelease); its endpoint states are the deploy stage's above.
START_RELEASE = "Start release"
DESCRIBE_PACKAGE = "Describe model package"
STILL_APPROVED = "Still approved?"
NOT_APPROVED = "Not approved any more"
READ_LIVE_ENDPOINT = "Read live endpoint"
COMPARE_LIVE_VERSION = "Compare live version"
ALREADY_LIVE = "Version already live?"
ALREADY_RELEASED = "Already released"
# The release's claim: one execution per (version, live configuration) deploys; a duplicate
# event's execution finds the claim taken and ends quietly.
CLAIM_RELEASE = "Claim release"
CLAIM_FIRST_RELEASE = "Claim first release"
CLAIMED_ELSEWHERE = "Claimed by another execution?"
RELEASED_ELSEWHERE = "Released by another execution"
CREATE_RELEASE_MODEL = "Create release model"
REPORT_RELEASE = "Report release"
NOTIFY_RELEASE_FAILURE = "Notify release failure"
RELEASE_FAILED = "Release failed"
# The release's A/B decision (deploy.candidate_weight > 0, the endpoint exists): Live or Candidate
# of the live configuration becomes the next Live, on the versions' gate metric.
READ_LIVE_VARIANTS = "Read live variants"
DESCRIBE_LIVE_VERSION = "Describe Live version"
DESCRIBE_CANDIDATE_VERSION = "Describe Candidate version"
AB_EVIDENCE = "Comparable evidence?"
READ_AB_METRICS = "Read gate metrics"
CANDIDATE_BETTER = "Candidate did better?"
PROMOTE_CANDIDATE = "Promote candidate"
KEEP_LIVE = "Keep live"
KEEP_LIVE_UNMEASURED = "Keep live unmeasured"

# The quality gate of a run on a table (_table_gate_states): its problem type's default, chosen
# at run time, or the environment's table gate. One Read/quality gate/passed triple per problem
# type ("Read binary gate", "Binary quality gate", "Binary gate passed"), or one for a named gate
# ("Read table gate", "Table quality gate", "Table gate passed").
TABLE_RUN = "Table run?"
TABLE_PROBLEM_TYPE = "Table problem type?"
REJECT_TABLE_MODEL = "Reject table model"
PROBLEM_TYPE_UNGATED = "Problem type without gate"
# The seeder's gate on an evaluation metric, passed: its value into $.gate.values.
GATE_PASSED = "Gate passed"


READ_BINARY_GATE = "Read binary gate"
BINARY_QUALITY_GATE = "Binary quality gate"
BINARY_GATE_PASSED = "Binary gate passed"
READ_MULTICLASS_GATE = "Read multiclass gate"
MULTICLASS_QUALITY_GATE = "Multiclass quality gate"
MULTICLASS_GATE_PASSED = "Multiclass gate passed"
READ_REGRESSION_GATE = "Read regression gate"
REGRESSION_QUALITY_GATE = "Regression quality gate"
REGRESSION_GATE_PASSED = "Regression gate passed"
# With DeployStage.table_gate: one gate for every table.
READ_TABLE_GATE = "Read table gate"
TABLE_QUALITY_GATE = "Table quality gate"
TABLE_GATE_PASSED = "Table gate passed"


def table_gate_names(kind: str | None) -> tuple[str, str, str]:
    """Read, quality gate and passed of the gate of problem type ``kind`` (None: the named
    gate)."""
    return {
        "binary": (READ_BINARY_GATE, BINARY_QUALITY_GATE, BINARY_GATE_PASSED),
        "multiclass": (READ_MULTICLASS_GATE, MULTICLASS_QUALITY_GATE, MULTICLASS_GATE_PASSED),
        "regression": (READ_REGRESSION_GATE, REGRESSION_QUALITY_GATE, REGRESSION_GATE_PASSED),
        None: (READ_TABLE_GATE, TABLE_QUALITY_GATE, TABLE_GATE_PASSED),
    }[kind]


# Before Register model: the version's metadata, a table's with its schema and class labels.
TABLE_VERSION = "Table version?"
DESCRIBE_TABLE_VERSION = "Describe table version"
DESCRIBE_VERSION = "Describe version"
