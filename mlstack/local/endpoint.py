"""Hosting, locally: models, endpoint configurations and endpoints.

A "deployed" endpoint is its config and model in the registry, served by the model image's
``serve`` program on a loopback port (started in the background; swapped on ``/ping``);
``DescribeEndpoint`` says ``InService`` once it answered ``/ping``. An endpoint restored from a
saved registry is served again on first need (:meth:`Endpoints.server`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlstack.local.processes import stopping
from mlstack.local.registry_store import Endpoint, Server
from mlstack.local.sagemaker_service import SageMakerError, Service, now_ms


class Models:
    """CreateModel and DescribeModel of one account (PrimaryContainer models of the app's own
    images)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def create_model(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.service.lock:
            taken = str(p.get("ModelName", ""))
            if taken.lower() in self.service.registry.models:
                # SageMaker's words (the release's claim reads them)
                raise SageMakerError(
                    "ValidationException",
                    f'Cannot create already existing model "{self.service.arn("model", taken)}".',
                )
            name = self.service.unique_name(
                "modelName", p.get("ModelName"), self.service.registry.models
            )
            if "Containers" in p:
                raise SageMakerError(
                    "ValidationException", "local mode serves PrimaryContainer models only"
                )
            container = dict(p.get("PrimaryContainer", {}))
            self.service.image(container.get("Image"))
            if not str(container.get("ModelDataUrl", "")).startswith("s3://"):
                raise SageMakerError(
                    "ValidationException", "PrimaryContainer.ModelDataUrl must be an s3:// URI"
                )
            self.service.registry.models[name.lower()] = {
                "ModelName": name,
                "ModelArn": self.service.arn("model", name),
                "PrimaryContainer": container,
                "ExecutionRoleArn": p.get("ExecutionRoleArn"),
                "EnableNetworkIsolation": p.get("EnableNetworkIsolation", False),
                "CreationTime": now_ms(),
            }
        self.service.save()
        return {"ModelArn": self.service.arn("model", name)}

    def describe_model(self, p: Mapping[str, Any]) -> dict[str, Any]:
        return self.service.model(str(p.get("ModelName", "")))


class Endpoints:
    """Endpoint configurations and endpoints of one account; ``directory``: where the
    endpoints' model directories go. The endpoints of a saved registry are taken up as not yet
    served (:func:`_restored`)."""

    def __init__(self, service: Service, directory: Path) -> None:
        self.service = service
        self.directory = directory
        for endpoint in service.registry.endpoints.values():
            _restored(endpoint)

    def create_endpoint_config(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.service.lock:
            name = self.service.unique_name(
                "endpointConfigName",
                p.get("EndpointConfigName"),
                self.service.registry.endpoint_configs,
            )
            variants = list(p.get("ProductionVariants", []))
            if not variants:
                raise SageMakerError("ValidationException", "ProductionVariants must not be empty")
            for variant in variants:
                self.service.model(str(variant.get("ModelName", "")))
            self.service.registry.endpoint_configs[name.lower()] = {
                "EndpointConfigName": name,
                "EndpointConfigArn": self.service.arn("endpoint-config", name),
                "ProductionVariants": variants,
                "KmsKeyId": p.get("KmsKeyId"),
                "CreationTime": now_ms(),
            }
        self.service.save()
        return {"EndpointConfigArn": self.service.arn("endpoint-config", name)}

    def describe_endpoint_config(self, p: Mapping[str, Any]) -> dict[str, Any]:
        config = self.service.registry.endpoint_configs.get(
            str(p.get("EndpointConfigName", "")).lower()
        )
        if config is None:
            raise SageMakerError("ValidationException", "Could not find endpoint configuration.")
        return config

    def create_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.service.lock:
            name = str(p.get("EndpointName", ""))
            if name.lower() in self.service.registry.endpoints:
                raise SageMakerError(
                    "ValidationException",
                    "Cannot create already existing endpoint "
                    f'"{self.service.arn("endpoint", name)}".',
                )
            self.service.unique_name("endpointName", name, {})
            config = self.describe_endpoint_config(
                {"EndpointConfigName": p.get("EndpointConfigName")}
            )
            now = now_ms()
            endpoint = Endpoint(
                name,
                self.service.arn("endpoint", name),
                config["EndpointConfigName"],
                "Creating",
                now,
                now,
            )
            self.service.registry.endpoints[name.lower()] = endpoint
        self._deploy(endpoint, config)
        return {"EndpointArn": endpoint.arn}

    def update_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.service.lock:
            endpoint = self._endpoint(str(p.get("EndpointName", "")))
            if endpoint.status not in ("InService", "Failed"):
                raise SageMakerError(
                    "ValidationException", f'Cannot update in-progress endpoint "{endpoint.arn}".'
                )
            config = self.describe_endpoint_config(
                {"EndpointConfigName": p.get("EndpointConfigName")}
            )
            endpoint.status = "Updating"
            endpoint.modified_ms = now_ms()
        self._deploy(endpoint, config)
        return {"EndpointArn": endpoint.arn}

    def _deploy(self, endpoint: Endpoint, config: Mapping[str, Any]) -> None:
        """Start ``serve`` for the config's first variant in the background; swap on /ping."""
        variant = config["ProductionVariants"][0]
        model = self.service.model(str(variant["ModelName"]))
        self.service.save()

        def run() -> None:
            stamp = now_ms()
            base = self.directory / endpoint.name / f"{config['EndpointConfigName']}-{stamp}"
            try:
                self.service.model_dir(model, base)
                server = self.service.processes.start_serve(
                    self.service.image(model["PrimaryContainer"]["Image"]),
                    base,
                    environment={
                        str(k): str(v)
                        for k, v in model["PrimaryContainer"].get("Environment", {}).items()
                    },
                    log_path=base.parent / "serve.log",
                    source=endpoint.name,
                    sink=self.service.log,
                )
            except Exception as err:
                with self.service.lock:
                    # A failed update rolls back: the endpoint stays InService on the
                    # configuration it had, as SageMaker's does (botocore's EndpointStatus
                    # has UpdateRollbackFailed for when the rollback fails); the release's
                    # wait loop then reports DeploymentRolledBack. A failed creation: Failed.
                    endpoint.status = "InService" if endpoint.model_dir else "Failed"
                    endpoint.failure_reason = str(err)[:1024]
                    endpoint.modified_ms = now_ms()
                self.service.save()
                return
            stop = stopping()
            if stop:  # stopped while the new server booted: keep the configuration it had
                server.stop(grace=5)
                with self.service.lock:
                    endpoint.status = "InService" if endpoint.model_dir else "Failed"
                    endpoint.failure_reason = f"not updated: {stop}"[:1024]
                    endpoint.modified_ms = now_ms()
                self.service.save()
                return
            with self.service.lock:
                old, endpoint.server = endpoint.server, server
                endpoint.config_name = config["EndpointConfigName"]
                endpoint.model_name = model["ModelName"]
                endpoint.model_dir = str(base / "model")
                endpoint.image_uri = model["PrimaryContainer"]["Image"]
                endpoint.variant = variant.get("VariantName", "AllTraffic")
                endpoint.status = "InService"
                endpoint.failure_reason = None
                endpoint.modified_ms = now_ms()
            if old is not None:
                old.stop()
            self.service.save()

        threading.Thread(target=run, daemon=True, name=f"deploy-{endpoint.name}").start()

    def _endpoint(self, name: str) -> Endpoint:
        endpoint = self.service.registry.endpoints.get(name.lower())
        if endpoint is None:
            raise SageMakerError(
                "ValidationException",
                f'Could not find endpoint "{self.service.arn("endpoint", name)}".',
            )
        return endpoint

    def endpoint_server(self, name: str) -> Server:
        """The InService endpoint's ``serve`` process; an endpoint restored from a saved
        registry is served again here, on first need, from its model directory (extracted
        again from its model's ``ModelDataUrl`` when that directory is gone)."""
        with self.service.lock:
            endpoint = self._endpoint(name)
            if endpoint.status != "InService":
                raise SageMakerError(
                    "ValidationException",
                    f'Endpoint "{endpoint.arn}" is {endpoint.status}, not InService.',
                )
            if endpoint.server is not None:
                return endpoint.server
            model = self.service.model(endpoint.model_name)
            base = Path(endpoint.model_dir).parent
            if not (base / "model").is_dir():
                base = self.directory / endpoint.name / f"{endpoint.config_name}-{now_ms()}"
                self.service.model_dir(model, base)
                endpoint.model_dir = str(base / "model")
            endpoint.server = self.service.processes.start_serve(
                self.service.image(model["PrimaryContainer"]["Image"]),
                base,
                environment={
                    str(k): str(v)
                    for k, v in model["PrimaryContainer"].get("Environment", {}).items()
                },
                log_path=base.parent / "serve.log",
                source=endpoint.name,
                sink=self.service.log,
            )
            return endpoint.server

    def describe_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        e = self._endpoint(str(p.get("EndpointName", "")))
        desc: dict[str, Any] = {
            "EndpointName": e.name,
            "EndpointArn": e.arn,
            "EndpointConfigName": e.config_name,
            "EndpointStatus": e.status,
            "CreationTime": e.created_ms,
            "LastModifiedTime": e.modified_ms,
        }
        if e.status == "InService":
            desc["ProductionVariants"] = [
                {
                    "VariantName": e.variant,
                    "DeployedImages": [
                        {"SpecifiedImage": e.image_uri, "ResolvedImage": e.image_uri}
                    ],
                    "CurrentWeight": 1.0,
                    "DesiredWeight": 1.0,
                    "CurrentInstanceCount": 1,
                    "DesiredInstanceCount": 1,
                }
            ]
        if e.failure_reason:
            desc["FailureReason"] = e.failure_reason
        return desc

    def delete_endpoint(self, p: Mapping[str, Any]) -> dict[str, Any]:
        with self.service.lock:
            e = self._endpoint(str(p.get("EndpointName", "")))
            del self.service.registry.endpoints[e.name.lower()]
        if e.server is not None:
            e.server.stop()
        self.service.save()
        return {}

    def wait_for_deployments(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(
                e.status not in ("Creating", "Updating")
                for e in self.service.registry.endpoints.values()
            ):
                return
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every endpoint's server (the registry keeps what was deployed)."""
        self.wait_for_deployments()
        for endpoint in list(self.service.registry.endpoints.values()):
            if endpoint.server is not None:
                endpoint.server.stop()
                endpoint.server = None
        self.service.save()


def _restored(endpoint: Endpoint) -> None:
    """An endpoint of a saved registry, not served yet. One the saving run left ``Updating``
    keeps serving its previous configuration (as SageMaker rolls a failed update back); one
    left ``Creating`` never came up: ``Failed``."""
    if endpoint.status == "Updating" and endpoint.model_dir:
        endpoint.status = "InService"
    elif endpoint.status in ("Creating", "Updating"):
        endpoint.status = "Failed"
        endpoint.failure_reason = "the local run creating it ended before it was InService"
