"""mlstack as another team uses it: the built wheel, installed (not editable) outside this
repository, in an app of its own that uses ``ModelImages()`` and ``DatasetSeeder()`` at their
defaults.

The wheel is built the way a user builds one (``python -m build``: a source distribution, then
the wheel from it, so ``MANIFEST.in`` and ``setup.py`` are both exercised). The new environment
is a fresh venv with the wheel installed ``--no-deps``; its dependencies (the same pinned
versions) come from this repository's venv through one ``.pth`` line, which puts that
site-packages after the new venv's own, and is not processed as a site directory (so the
editable install of mlstack there stays inactive): ``mlstack`` is imported from the wheel.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
BUNDLED = PurePosixPath("mlstack/_bundled")
# Never in a wheel: caches, virtual environments, build output, tests.
JUNK = re.compile(
    r"(^|/)(__pycache__|\.venv|venv|tests|\.pytest_cache|[^/]+\.egg-info)(/|$)|\.pyc$"
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (path,) = dist.glob("mlstack-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(wheel) as archive:
        return {info.filename: info for info in archive.infolist()}


def _copied_sources(dockerfile: Path) -> list[str]:
    """The build-context paths a Dockerfile's COPY instructions read."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


@pytest.mark.parametrize(
    "dockerfile", ["training/Dockerfile", "training/Dockerfile.gpu", "inference/Dockerfile"]
)
def test_wheel_carries_what_each_dockerfile_copies(
    wheel_files: dict[str, zipfile.ZipInfo], dockerfile: str
) -> None:
    assert f"{BUNDLED}/containers/{dockerfile}" in wheel_files
    sources = _copied_sources(REPO / "containers" / dockerfile)
    assert sources, f"no COPY read from containers/{dockerfile}"
    for source in sources:
        prefix = f"{BUNDLED}/containers/{source.rstrip('/')}"
        assert any(name == prefix or name.startswith(prefix + "/") for name in wheel_files), (
            f"containers/{dockerfile} copies {source}, which the wheel lacks"
        )


@pytest.mark.parametrize("program", ["training/train", "inference/serve"])
def test_wheel_keeps_the_image_programs_executable(
    wheel_files: dict[str, zipfile.ZipInfo], program: str
) -> None:
    # The Dockerfiles COPY them onto PATH and rely on the file's own mode.
    mode = wheel_files[f"{BUNDLED}/containers/{program}"].external_attr >> 16
    assert mode & stat.S_IXUSR, f"{program} is mode {oct(mode)} in the wheel"


def test_wheel_carries_the_lambda_code_and_the_training_contract(
    wheel_files: dict[str, zipfile.ZipInfo],
) -> None:
    assert f"{BUNDLED}/lambda/seed/handler.py" in wheel_files
    assert f"{BUNDLED}/lambda/validate_input/handler.py" in wheel_files
    assert f"{BUNDLED}/lambda/seed/portable_rules.py" in wheel_files
    assert f"{BUNDLED}/lambda/validate_input/portable_rules.py" in wheel_files
    assert f"{BUNDLED}/containers/common/mlstack_containers/training/contract.json" in wheel_files


def test_wheel_carries_no_caches_venvs_or_tests(wheel_files: dict[str, zipfile.ZipInfo]) -> None:
    assert [name for name in wheel_files if JUNK.search(name)] == []


def test_wheel_asks_only_for_extras_its_dependencies_provide(wheel: Path) -> None:
    """pip warns "moto 5.2.5 does not provide the extra 'lambda'" and installs without it; the
    installed distributions' own Provides-Extra say which names exist."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        fields = Parser().parsestr(archive.read(name).decode())
    unknown = []
    for line in fields.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == "mlstack" or not requirement.extras:
            continue
        provided = {
            canonicalize_name(extra)
            for extra in metadata.metadata(requirement.name).get_all("Provides-Extra") or []
        }
        unknown += [
            f"{requirement.name}[{extra}]"
            for extra in requirement.extras
            if canonicalize_name(extra) not in provided
        ]
    assert unknown == []


OTHER_TEAMS_APP = textwrap.dedent(
    """
    import json
    import sys

    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    import mlstack
    from mlstack.constructs import DatasetSeeder, ModelImages
    from mlstack.constructs.input_validator import InputValidator

    app = cdk.App(outdir=sys.argv[1])
    stack = cdk.Stack(app, "OtherTeam")
    ModelImages(stack, "Images")
    DatasetSeeder(stack, "Seeder", bucket=s3.Bucket(stack, "Data"))
    InputValidator(stack, "Validator")  # what TrainingWorkflow creates first
    app.synth()
    print(json.dumps({"mlstack": mlstack.__file__}))
    """
)


@pytest.fixture(scope="module")
def other_team(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A project outside the repository: a new venv with the wheel, an app, its cdk.out."""
    project = tmp_path_factory.mktemp("other-team")
    assert not project.resolve().is_relative_to(REPO)
    venv = project / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "zz-mlstack-test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    (project / "app.py").write_text(OTHER_TEAMS_APP)
    cdk_out = project / "cdk.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [python, "-I", "app.py", str(cdk_out)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = Path(json.loads(result.stdout.strip().splitlines()[-1])["mlstack"])
    return {"site": site, "imported": imported, "cdk_out": cdk_out}


def test_the_other_project_imports_mlstack_from_the_wheel(other_team: dict[str, Path]) -> None:
    assert other_team["imported"].is_relative_to(other_team["site"])


@pytest.fixture(scope="module")
def assets(other_team: dict[str, Path]) -> dict[str, object]:
    manifest: dict[str, object] = json.loads(
        (other_team["cdk_out"] / "OtherTeam.assets.json").read_text()
    )
    return manifest


@pytest.mark.parametrize(
    ("dockerfile", "program"),
    [("training/Dockerfile", "training/train"), ("inference/Dockerfile", "inference/serve")],
)
def test_model_images_default_build_context_lands_in_cdk_out(
    other_team: dict[str, Path],
    assets: dict[str, dict[str, dict[str, str]]],
    dockerfile: str,
    program: str,
) -> None:
    sources = [image["source"] for image in assets["dockerImages"].values()]
    (source,) = [s for s in sources if s.get("dockerFile") == dockerfile]
    context = other_team["cdk_out"] / source["directory"]
    assert (context / dockerfile).is_file()
    for copied in _copied_sources(context / dockerfile):
        assert (context / copied).exists(), f"{dockerfile} copies {copied}, missing in {context}"
    assert os.access(context / program, os.X_OK)


@pytest.mark.parametrize(
    ("construct", "source_dir"), [("Seeder", "seed"), ("Validator", "validate_input")]
)
def test_lambda_default_code_lands_in_cdk_out(
    other_team: dict[str, Path],
    assets: dict[str, dict[str, dict[str, str]]],
    construct: str,
    source_dir: str,
) -> None:
    template = json.loads((other_team["cdk_out"] / "OtherTeam.template.json").read_text())
    (function,) = [
        r
        for logical_id, r in template["Resources"].items()
        if r["Type"] == "AWS::Lambda::Function" and logical_id.startswith(construct)
    ]
    assert function["Properties"]["Handler"] == "handler.handler"
    key = function["Properties"]["Code"]["S3Key"]
    (source,) = [f["source"] for h, f in assets["files"].items() if key.startswith(h)]
    assert source["packaging"] == "zip"
    packaged = other_team["cdk_out"] / source["path"]
    checkout = REPO / "lambda" / source_dir
    assert sorted(p.name for p in packaged.glob("*.py")) == sorted(
        p.name for p in checkout.glob("*.py")
    )
