"""Which SageMaker instance types have local NVMe instance storage: the one rule, for synth-time
checks and for the state machine's Choice on instance types an execution input may pick.

SageMaker refuses ``VolumeKmsKeyId`` (training, transform) and an endpoint configuration's
``KmsKeyId`` for instance types with local storage: their instance-store volumes are encrypted by
a hardware module instead ("You can't request a VolumeKmsKeyId when using an instance type with
local storage", CreateTrainingJob ``ResourceConfig`` and CreateTransformJob ``TransformResources``;
"If any of the models ... use nitro-based instances with local storage, do not specify a value for
the KmsKeyId parameter", CreateEndpointConfig). Which types those are is AWS's list of instance
types with instance store volumes (Amazon EC2 user guide, "Instance store volume limits for EC2
instances"): every size of the families whose attribute letters contain ``d`` (m5d, c5d, r5d,
m5ad, m5dn, c6gd, m6id, z1d, g4dn, g4ad, p3dn, p4d, p4de ...) plus the accelerated families whose
every size carries NVMe storage without a ``d`` in the name (below).
"""

from __future__ import annotations

import re

# Every size of these families has NVMe instance storage (EC2 instance store table).
NVME_FAMILIES_WITHOUT_D = ("g5", "g6", "g6e", "gr6", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2")
# ASL StringMatches patterns for the 'd' families: the attribute letters end in d, dn or de.
_D_SUFFIXES = ("d", "dn", "de")
_FAMILY = re.compile(r"^ml\.(?P<family>[a-z]+[0-9]+(?P<attributes>[a-z-]*))\.[a-z0-9-]+$")


def has_local_storage(instance_type: str) -> bool:
    """True when SageMaker refuses a volume KMS key for ``instance_type`` (``ml.p4d.24xlarge``)."""
    match = _FAMILY.fullmatch(instance_type)
    if match is None:
        return False
    family = match["family"]
    return family in NVME_FAMILIES_WITHOUT_D or match["attributes"].endswith(_D_SUFFIXES)


def local_storage_patterns() -> list[str]:
    """``StringMatches`` patterns matching exactly the types :func:`has_local_storage` accepts
    (a family's attribute letters end in d, dn or de: ``*d.*`` cannot match a size, which has
    no dot after it)."""
    return [f"ml.*{suffix}.*" for suffix in _D_SUFFIXES] + [
        f"ml.{family}.*" for family in NVME_FAMILIES_WITHOUT_D
    ]
