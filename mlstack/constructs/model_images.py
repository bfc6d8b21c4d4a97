"""Training and inference container images: built from ``containers/`` or given as URIs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

from mlstack.assets import runtime_path
from mlstack.constructs._nag import acknowledge_star, default_policy
from mlstack.rules import training_image_hyperparameters, training_image_metric_definitions

# The images' build context: the checkout's containers/, or the copy an installed wheel carries.
CONTAINERS_DIR = runtime_path("containers")

# <account>.dkr.ecr.<region>.<domain>/<repository>[:tag|@digest]
_ECR_IMAGE_URI = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.(?P<domain>[a-z0-9.]+)/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*)(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})?$"
)


class ModelImage(Construct):
    """One SageMaker container image: a Docker image asset built from ``directory``/``file``,
    or an existing ECR ``image_uri`` (for example AWS's built-in XGBoost image).

    ``grant_pull(grantee)`` lets a role pull only this image's repository (plus
    ``ecr:GetAuthorizationToken``, which has no resource-level permissions).

    Args:
        directory: the Docker build context. Default: ``containers/`` of this package.
        file: the Dockerfile, relative to ``directory``.
        image_uri: an existing ECR image instead of a build (``directory``/``file`` unused).

    Attributes:
        image_uri: the image's URI, for a model's or a job's container.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        directory: Path = CONTAINERS_DIR,
        file: str | None = None,
        image_uri: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        if (file is None) == (image_uri is None):
            raise ValueError(
                f"ModelImage {id}: give exactly one of file= (build from {directory}) or "
                f"image_uri= (use an existing image), got file={file!r}, image_uri={image_uri!r}"
            )
        self._repository_arn: str
        if image_uri is not None:
            match = _ECR_IMAGE_URI.fullmatch(image_uri)
            if match is None:
                raise ValueError(
                    f"ModelImage {id}: image_uri={image_uri!r} is not an ECR image URI; expected "
                    "<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@sha256:digest]"
                )
            self.image_uri = image_uri
            self.asset: ecr_assets.DockerImageAsset | None = None
            self._repository_arn = Stack.of(self).format_arn(
                service="ecr",
                account=match["account"],
                region=match["region"],
                resource="repository",
                resource_name=match["repository"],
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
        else:
            assert file is not None
            if not (directory / file).is_file():
                raise ValueError(f"ModelImage {id}: no Dockerfile at {directory / file}")
            self.asset = ecr_assets.DockerImageAsset(
                self,
                "Resource",
                directory=str(directory),
                file=file,
                platform=ecr_assets.Platform.LINUX_AMD64,
                exclude=["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/*.egg-info"],
            )
            self.image_uri = self.asset.image_uri
            self._repository_arn = self.asset.repository.repository_arn

    def grant_pull(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` pull this image (and only images of its repository)."""
        ecr.AuthorizationToken.grant_read(grantee)
        if isinstance(grantee, iam.Role):
            acknowledge_star(
                default_policy(grantee),
                frozenset({"ecr:GetAuthorizationToken"}),
                "ecr:GetAuthorizationToken takes no resource (Service Authorization Reference, "
                "Amazon ECR): the token only authenticates; pulls are scoped to the repository.",
            )
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=[
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
            ],
            resource_arns=[self._repository_arn],
        )


class ModelImages(Construct):
    """The training and the inference image of a model, each a :class:`ModelImage`.

    By default both are built from ``containers_directory`` (``training/Dockerfile`` and
    ``inference/Dockerfile``, with ``containers/`` as build context) and the training job's metric
    definitions and hyperparameters are read from the image's contract
    (``common/mlstack_containers/training/contract.json``). ``grant_pull(grantee)`` lets a role
    pull both.

    Args:
        containers_directory: the build context of both images. Default: ``containers/``.
        training_image_uri: an existing training image instead of a build.
        inference_image_uri: an existing inference image instead of a build.
        training_metric_definitions: the metric definitions (``Name``, ``Regex``) of an existing
            training image. Default: none; a built image's come from its contract.
        training_hyperparameter_names: the hyperparameters an existing training image accepts.
            Default: None (unknown: any valid name is passed on); a built image's come from
            its contract.

    Attributes:
        training: the training :class:`ModelImage`.
        inference: the inference :class:`ModelImage`.
        training_image_uri: the training image's URI.
        inference_image_uri: the inference image's URI.
        training_metric_definitions: the training job's metric definitions.
        training_hyperparameter_names: the hyperparameters the training image accepts, or None.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        containers_directory: Path = CONTAINERS_DIR,
        training_image_uri: str | None = None,
        inference_image_uri: str | None = None,
        training_metric_definitions: Sequence[Mapping[str, str]] | None = None,
        training_hyperparameter_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.training = ModelImage(
            self,
            "Training",
            directory=containers_directory,
            file=None if training_image_uri else "training/Dockerfile",
            image_uri=training_image_uri,
        )
        self.inference = ModelImage(
            self,
            "Inference",
            directory=containers_directory,
            file=None if inference_image_uri else "inference/Dockerfile",
            image_uri=inference_image_uri,
        )
        if training_metric_definitions is None and training_image_uri is None:
            training_metric_definitions = training_image_metric_definitions(containers_directory)
        self.training_metric_definitions: list[dict[str, str]] = [
            _metric_definition(item, i) for i, item in enumerate(training_metric_definitions or [])
        ]
        if training_hyperparameter_names is None and training_image_uri is None:
            training_hyperparameter_names = training_image_hyperparameters(containers_directory)
        self.training_hyperparameter_names: tuple[str, ...] | None = (
            tuple(training_hyperparameter_names)
            if training_hyperparameter_names is not None
            else None
        )
        self.training_image_uri = self.training.image_uri
        self.inference_image_uri = self.inference.image_uri

    def grant_pull(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` pull both images."""
        return self.training.grant_pull(grantee).combine(self.inference.grant_pull(grantee))


def _metric_definition(item: Mapping[str, str], index: int) -> dict[str, str]:
    if set(item) != {"Name", "Regex"} or not all(isinstance(v, str) and v for v in item.values()):
        raise ValueError(
            f"training_metric_definitions[{index}]={dict(item)!r}: expected an object with "
            "exactly the non-empty strings 'Name' and 'Regex'"
        )
    try:
        re.compile(item["Regex"])
    except re.error as err:
        raise ValueError(
            f"training_metric_definitions[{index}] Regex {item['Regex']!r} is invalid: {err}"
        ) from None
    return {"Name": item["Name"], "Regex": item["Regex"]}
