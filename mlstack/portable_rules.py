"""The named constraints and the rules across keys, each defined once; standard library only.

Every bound and vocabulary that more than one layer checks (the environment configuration, the
constructs' props, the execution input and the Lambda functions) is a named constraint here, and
every rule across keys a function that returns the problem (what is expected, in words) or None.
What a JSON Schema accepts is worded here once too (:func:`expected`, :func:`describe`): config
errors and the validation Lambda's problems read the same for the same bad value.
:mod:`mlstack.rules` turns the constraints into pydantic types (JSON Schema); the constructs and
:mod:`mlstack.config` call the functions. The seeding and validation Lambdas cannot import this
package, so each carries a generated copy of this file (``lambda/<function>/portable_rules.py``,
written by ``make docs``; a test fails when a copy differs from this file).
"""

from __future__ import annotations

import difflib
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- named constraints -------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A number from ``low`` to ``high``, both included (None: unbounded on that side);
    ``integer``: whole numbers only (JSON integers, not ``5.0``); ``why``: where the limit comes
    from."""

    low: float | None
    high: float | None
    integer: bool = True
    why: str = ""

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.integer and not isinstance(value, int):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def words(self) -> str:
        """What the bound accepts, in words: 'an integer from 1 to 100'."""
        noun = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            return f"{noun} from {_number(self.low)} to {_number(self.high)}"
        if self.low is not None:
            return f"{noun} >= {_number(self.low)}"
        if self.high is not None:
            return f"{noun} <= {_number(self.high)}"
        return noun

    def problem(self, value: object) -> str | None:
        """None when ``value`` is accepted, else what is expected."""
        return None if self.accepts(value) else self.words()


@dataclass(frozen=True)
class Vocabulary:
    """One of a fixed list of strings."""

    values: tuple[str, ...]

    def accepts(self, value: object) -> bool:
        return isinstance(value, str) and value in self.values

    def words(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def problem(self, value: object) -> str | None:
        return None if self.accepts(value) else self.words()


@dataclass(frozen=True)
class Comparison:
    """How a quality gate compares a metric with its threshold: the name config and props use,
    its symbol in messages and the Step Functions Choice operator that compares two paths
    (Amazon States Language, "Choice Rules": ``NumericLessThanPath`` and its siblings)."""

    name: str
    symbol: str
    condition: str

    def holds(self, left: float, right: float) -> bool:
        return _OPERATORS[self.symbol](left, right)


_OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else str(value)


# SageMaker's instance counts: ProcessingInstanceCount is at most 100 (botocore's shape); the
# workflow keeps training, transform and endpoint counts within the same.
MAX_INSTANCE_COUNT = 100
INSTANCE_COUNT = Bound(1, MAX_INSTANCE_COUNT)
# RFC 8259, section 6: integers in [-(2**53)+1, 2**53-1] are exact in every JSON parser; the
# seed travels as JSON from the config through the definition and the execution input to the
# seeding Lambda, which hands it to random.Random as text (any integer works there).
MAX_SEED = 2**53 - 1
SEED = Bound(0, MAX_SEED, why="the largest integer every JSON parser keeps exact")
# botocore's ProcessingVolumeSizeInGB: 1..16384 (VolumeSizeInGB of training: at least 1).
VOLUME_SIZE_GB = Bound(1, 16384)
# "Resource Limits for Automatic Model Tuning" (SageMaker developer guide): parallel training
# jobs per tuning job, 10 by default, at most 100 after an increase; botocore's
# MaxParallelTrainingJobs only says at least 1.
MAX_PARALLEL_TUNING_JOBS = 100
PARALLEL_TUNING_JOBS = Bound(1, MAX_PARALLEL_TUNING_JOBS)
# The same page: 750 training jobs per tuning job by default (Bayesian); the workflow caps 500.
MAX_TUNING_JOBS = 500
TUNING_JOBS = Bound(1, MAX_TUNING_JOBS)
# Model Monitor's comparison_threshold, the distribution distance above which a feature has
# drifted ("Schema for Constraints": a distance in [0, 1]; 0 would flag every run): the
# baseline's constraint and the drift alarm's threshold.
DRIFT_THRESHOLD = Bound(0.001, 1, integer=False)
# A/B: the new model's share of traffic; Live keeps round(1 - share, 6) of it, at least 1 %, so
# both arms serve and the comparison that follows has evidence from each.
CANDIDATE_WEIGHT = Bound(0, 0.99, integer=False)

# The workflow seeds a dataset through a Map state, one seeding invocation per shard, over the
# shard list States.ArrayRange makes: "The newly generated array can't contain more than 1000
# items" (Step Functions developer guide, "Intrinsic functions", States.ArrayRange). So a
# dataset has at most MAX_SHARDS shards and at most MAX_SHARDS * rows_per_shard rows.
MAX_SHARDS = 1000
# What one seeding invocation writes well within its timeout (bench/README.md); its memory
# does not grow with the rows.
MAX_ROWS_PER_SHARD = 10_000_000
ROWS_PER_SHARD = Bound(1, MAX_ROWS_PER_SHARD)
DEFAULT_ROWS_PER_SHARD = 100_000
MAX_DATASET_ROWS = MAX_SHARDS * DEFAULT_ROWS_PER_SHARD

# A user's table (docs/your-data.md): what the training image's ``prepare`` program takes. Its
# format, problem type, split fractions (each in [0, 1), together below 1) and the share of bad
# rows it may drop.
SOURCE_FORMAT = Vocabulary(("auto", "csv", "parquet"))
PROBLEM_TYPE = Vocabulary(("auto", "binary", "multiclass", "regression"))
SPLIT_FRACTION = Bound(0, 1, integer=False, why="a share of the rows; together below 1")
DEFAULT_SPLIT_FRACTION = 0.15
BAD_ROWS_PERCENT = Bound(0, 100, integer=False, why="a percentage of the rows")
# Each of ``prepare``'s arguments is one ContainerArguments item, at most 256 characters
# (botocore's ContainerArgument: max 256), so a column list (comma-separated) is at most that.
MAX_CONTAINER_ARGUMENT = 256
# Prepare data's instances: ProcessingInstanceCount (botocore: 1..100), the same bound.
PREPARE_INSTANCE_COUNT = INSTANCE_COUNT

COMPARISONS: tuple[Comparison, ...] = (
    Comparison("less_than", "<", "NumericLessThanPath"),
    Comparison("less_than_or_equal", "<=", "NumericLessThanEqualsPath"),
    Comparison("greater_than", ">", "NumericGreaterThanPath"),
    Comparison("greater_than_or_equal", ">=", "NumericGreaterThanEqualsPath"),
)
COMPARISON = Vocabulary(tuple(c.name for c in COMPARISONS))
# SageMaker's TrafficRoutingConfiguration Type, as config and props spell it.
TRAFFIC_TYPES = {"all_at_once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}
TRAFFIC_TYPE = Vocabulary(tuple(TRAFFIC_TYPES))
# The ModelApprovalStatus a new model package version may start with (SageMaker API reference,
# CreateModelPackage: ModelApprovalStatus is Approved, Rejected or PendingManualApproval).
APPROVAL_STATUS = Vocabulary(("Approved", "PendingManualApproval"))
TUNING_STRATEGY = Vocabulary(("Bayesian", "Random"))
OBJECTIVE_TYPE = Vocabulary(("Minimize", "Maximize"))
SCALING_TYPE = Vocabulary(("Auto", "Linear", "Logarithmic", "ReverseLogarithmic"))


def comparison(name: str) -> Comparison:
    """The comparison called ``name`` (KeyError for any other)."""
    return {c.name: c for c in COMPARISONS}[name]


# --- rules across keys -------------------------------------------------------------------------
# Each returns None when the values fit together, else what is expected of the first value; a
# ``*_key`` argument names the other key in the caller's words ("'tuning.max_jobs'").


def shard_count(rows: int, rows_per_shard: int) -> int:
    """Shards of a dataset: ``ceil(rows / rows_per_shard)`` (the seeder's own rule)."""
    return -(-rows // rows_per_shard)


def instances_beyond_shards(rows: int, rows_per_shard: int, instances: int) -> str | None:
    """Training hosts beyond the dataset's shards: the train channel is ShardedByS3Key, so a
    host beyond the shard count gets no object."""
    shards = shard_count(rows, rows_per_shard)
    if instances <= shards:
        return None
    return (
        f"at most the dataset's shards ({shards}: {rows} rows in shards of {rows_per_shard}); "
        "the train channel is ShardedByS3Key, so a host beyond the shard count gets no data"
    )


def parallel_beyond_jobs(
    max_parallel_jobs: int, max_jobs: int, max_jobs_key: str = "max_jobs"
) -> str | None:
    """A tuning job runs no more training jobs at once than it runs in all."""
    if max_parallel_jobs <= max_jobs:
        return None
    return f"at most {max_jobs_key} ({max_jobs}), the tuning job's training jobs in all"


def objective_not_a_metric(metric: str, metric_names: Sequence[str]) -> str | None:
    """A tuning objective is one of the training image's metric definitions."""
    if metric in metric_names:
        return None
    return f"one of the training image's metrics {sorted(metric_names)}"


def tuned_and_fixed(
    tuned: Sequence[str], fixed: Sequence[str], fixed_key: str = "the fixed hyperparameters"
) -> str | None:
    """SageMaker refuses a hyperparameter that is both static and tuned."""
    both = sorted(set(tuned) & set(fixed))
    if not both:
        return None
    return (
        f"only hyperparameters that {fixed_key} does not fix ({both} are in both): SageMaker "
        "refuses a hyperparameter that is both static and tuned"
    )


def traffic_step_problem(traffic_type: str, step_percent: int | None) -> str | None:
    """A blue/green update's step: none for all at once, 1..50 % for a canary, 10..50 % for
    linear steps (SageMaker's CapacitySize in percent)."""
    if traffic_type == "all_at_once":
        return None if step_percent is None else "null for 'all_at_once'"
    step = Bound(10 if traffic_type == "linear" else 1, 50)
    if step_percent is not None and step.accepts(step_percent):
        return None
    return f"{step.words()} for '{traffic_type}'"


def fractions_leave_no_training(validation: float, test: float) -> str | None:
    """The validation and test shares leave rows to train on (``prepare`` refuses the rest)."""
    if validation + test < 1:
        return None
    return f"below 1 - validation_fraction ({1 - validation:g}) so that rows are left to train on"


# --- JSON Schema in words ----------------------------------------------------------------------
# The end of every config error and every Validate input problem: "key 'k' is <describe(value)>;
# expected <expected(schema)>". Values are quoted as JSON (what the user wrote, in a JSON file or
# an execution input) with their JSON type.

MAX_LISTED = 32  # longer lists of allowed values are counted, not listed
MAX_VALUE_TEXT = 80


def json_type(value: object) -> str:
    """The JSON type name of a parsed JSON value (RFC 8259's names; integer as JSON Schema's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"


def describe(value: object) -> str:
    """A value as the user wrote it (keys in their order), with its JSON type: '"two"
    (string)'."""
    text = json.dumps(value)
    if len(text) > MAX_VALUE_TEXT:
        text = text[: MAX_VALUE_TEXT - 1] + "\u2026"
    return f"{text} ({json_type(value)})"


def resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node`` with its ``$ref`` (``#/$defs/<name>``) followed in ``root``."""
    while "$ref" in node:
        ref = str(node["$ref"])
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref!r}: only '#/$defs/<name>'")
        node = root.get("$defs", {})[ref[len("#/$defs/") :]]
    return node


def listing(values: Sequence[object]) -> str:
    """Allowed values in words: '"a"', '"a" or "b"', 'one of "a", "b", "c"'."""
    shown = [json.dumps(v) for v in values]
    if len(shown) > MAX_LISTED:
        return f"one of {len(shown)} values"
    if len(shown) == 1:
        return shown[0]
    if len(shown) == 2:
        return f"{shown[0]} or {shown[1]}"
    return "one of " + ", ".join(shown)


def expected(node: Mapping[str, Any], root: Mapping[str, Any], *, descriptions: bool = True) -> str:
    """What a JSON Schema node accepts, in words (``root`` resolves ``$ref``).

    A node's ``description`` names what a string, list or enum is ("a SageMaker instance type
    such as 'ml.m5.xlarge'"), which reads better than its pattern; ``descriptions=False`` words
    the constraints alone, for a schema whose descriptions say what a key sets rather than what
    it accepts (the execution input's)."""
    node = resolve(node, root)
    about = node.get("description") if descriptions else None
    kind = node.get("type")
    if about and kind in ("string", "array"):
        return str(about)
    if "anyOf" in node:
        options = [resolve(n, root) for n in node["anyOf"]]
        rest = [o for o in options if o.get("type") != "null"]
        if len(rest) == len(options):
            return " or ".join(expected(o, root, descriptions=descriptions) for o in options)
        if len(rest) == 1 and rest[0].get("type") == "array" and rest[0].get("minItems"):
            # an empty list is the mistake to name, not null
            return expected(rest[0], root, descriptions=descriptions)
        return "null or " + " or ".join(expected(o, root, descriptions=descriptions) for o in rest)
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        values = list(node["enum"])
        return f"one of {about} {json.dumps(values)}" if about else listing(values)
    if kind in ("integer", "number"):
        return _number_words(node, kind, about)
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        return _array_words(node, root, descriptions)
    if kind == "object" or "properties" in node:
        return _object_words(node, root, descriptions, about)
    if kind == "string" or "pattern" in node:
        return _string_words(node, about)
    return str(about or "any value")


def _number_words(node: Mapping[str, Any], kind: str, about: object) -> str:
    if about and "multipleOf" in node:
        return str(about)
    noun = "an integer" if kind == "integer" else "a number"
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None and high is not None:
        noun += f" from {json.dumps(low)} to {json.dumps(high)}"
    elif low is not None:
        noun += f" >= {json.dumps(low)}"
    elif high is not None:
        noun += f" <= {json.dumps(high)}"
    elif "exclusiveMinimum" in node:
        noun += f" > {json.dumps(node['exclusiveMinimum'])}"
    return f"{noun} ({about})" if about else noun


def _string_words(node: Mapping[str, Any], about: object) -> str:
    if about:
        return str(about)
    text = "a string"
    if "pattern" in node:
        text += f" matching {node['pattern']}"
    elif node.get("minLength") == 1:
        text = "a non-empty string"
    if node.get("examples"):
        text += f" such as {json.dumps(node['examples'][0])}"
    return text


def _array_words(node: Mapping[str, Any], root: Mapping[str, Any], descriptions: bool) -> str:
    many = "a non-empty list" if node.get("minItems") else "a list"
    if "items" not in node:
        return f"{many} of values"
    item = resolve(node["items"], root)
    if descriptions and item.get("type") == "string" and item.get("description"):
        return f"{many}, each {item['description']}"
    return f"{many} of {_plural(expected(item, root, descriptions=descriptions))}"


def _object_words(
    node: Mapping[str, Any], root: Mapping[str, Any], descriptions: bool, about: object
) -> str:
    if "properties" in node:
        return "an object with keys " + ", ".join(f"'{k}'" for k in node["properties"])
    if about:
        return str(about)
    values = node.get("additionalProperties")
    if isinstance(values, Mapping):
        return f"an object of {_plural(expected(values, root, descriptions=descriptions))}"
    return "an object"


def _plural(text: str) -> str:
    """'a non-empty string' -> 'non-empty strings': the article dropped, the first noun plural."""
    for article in ("an ", "a "):
        if text.startswith(article):
            rest = text[len(article) :]
            nouns = [(rest.find(n), n) for n in _NOUNS if rest.find(n) >= 0]
            if not nouns:
                return rest
            at, noun = min(nouns)
            return rest[:at] + noun + "s" + rest[at + len(noun) :]
    return text


_NOUNS = ("string", "object", "integer", "number", "list")


def did_you_mean(value: object, node: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """' (did you mean "Random"?)' when ``value`` is a string close to one the node's ``enum``
    (or one of its ``anyOf`` options' enums) allows; else ''."""
    if not isinstance(value, str):
        return ""
    node = resolve(node, root)
    options = [resolve(o, root) for o in node.get("anyOf", [node])]
    allowed = [v for o in options for v in o.get("enum", []) if isinstance(v, str)]
    close = difflib.get_close_matches(value, allowed, n=1)
    return f" (did you mean {json.dumps(close[0])}?)" if close else ""
