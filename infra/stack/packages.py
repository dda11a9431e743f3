"""Getting server software onto the machine: Debian packages and Maven Central artifacts."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from infra.stack import process
from infra.stack.errors import StackError

log = structlog.get_logger(__name__)

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Maven's default local repository; `dependency:get` leaves artifacts there.
M2_REPOSITORY = Path.home() / ".m2" / "repository"
MAVEN = ("mvn", "-q", "-B")


def ensure_apt(present: Path | str, packages: Sequence[str], log_file: Path, *, recommends: bool = True) -> None:
    """Install Debian ``packages`` unless ``present`` (a path or a command name) exists; without
    ``recommends``, leave out the packages they only recommend."""
    found = present.exists() if isinstance(present, Path) else shutil.which(present)
    if found:
        return
    if not process.is_root():
        raise StackError(f"{present} is missing; install {' '.join(packages)} (needs root)")
    log.info("stack.apt_install", packages=list(packages), log=str(log_file))
    process.run(["apt-get", "update"], env=APT_ENV, log_file=log_file, what="apt-get update")
    process.run(
        ["apt-get", "install", "-y", *([] if recommends else ["--no-install-recommends"]), *packages],
        env=APT_ENV,
        log_file=log_file,
        what=f"apt-get install {' '.join(packages)}",
    )
    if isinstance(present, Path) and not present.exists():
        raise StackError(f"{' '.join(packages)} installed but {present} is still missing", log_file)


def ensure_maven(log_file: Path) -> None:
    ensure_apt("mvn", ["maven"], log_file)


def copy_dependencies(pom: Path, output_dir: Path, properties: Mapping[str, str], log_file: Path) -> None:
    """Resolve ``pom``'s runtime dependencies from Maven Central into ``output_dir``."""
    ensure_maven(log_file)
    log.info("stack.maven_copy_dependencies", pom=str(pom), output=str(output_dir))
    process.run(
        [
            *MAVEN,
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={output_dir}",
            *(f"-D{key}={value}" for key, value in properties.items()),
        ],
        log_file=log_file,
        cwd=log_file.parent,
        what=f"mvn dependency:copy-dependencies ({pom})",
    )


def fetch_artifact(coordinates: str, log_file: Path) -> Path:
    """Path of ``group:artifact:version:packaging`` in the local Maven repository,
    downloading it (without dependencies) when it is not there yet."""
    group, artifact, version, packaging = coordinates.split(":")
    path = M2_REPOSITORY.joinpath(*group.split(".")) / artifact / version / f"{artifact}-{version}.{packaging}"
    if path.exists():
        return path
    ensure_maven(log_file)
    log.info("stack.maven_get", artifact=coordinates)
    process.run(
        [*MAVEN, "dependency:get", f"-Dartifact={coordinates}", "-Dtransitive=false"],
        log_file=log_file,
        cwd=log_file.parent,
        what=f"mvn dependency:get {coordinates}",
    )
    if not path.exists():
        raise StackError(
            f"Maven resolved {coordinates} but it is not at {path} "
            "(a custom localRepository in ~/.m2/settings.xml is not supported)",
            log_file,
        )
    return path
