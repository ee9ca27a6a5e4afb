"""The lock files agree with pyproject.toml: every declared range admits its locked pin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _pins(lock: Path) -> dict[str, list[tuple[str, str | None]]]:
    pins: dict[str, list[tuple[str, str | None]]] = {}
    for line in lock.read_text().splitlines():
        m = PIN.match(line)
        if m:
            name, version, marker = m.groups()
            pins.setdefault(canonicalize_name(name), []).append((version, marker))
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    return reqs


def test_every_declared_dependency_is_locked_within_its_range() -> None:
    pins = _pins(ROOT / "requirements" / "dev.lock")
    env = default_environment()
    for python in ("3.11", "3.12", "3.13"):
        env = {**env, "python_version": python, "python_full_version": f"{python}.0"}
        for req in _declared():
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            candidates = [
                v
                for v, marker in pins.get(canonicalize_name(req.name), [])
                if marker is None or Requirement(f"x; {marker}").marker.evaluate(env)  # type: ignore[union-attr]
            ]
            assert candidates, f"{req.name} is not in requirements/dev.lock (run `make lock`)"
            for version in candidates:
                assert req.specifier.contains(version, prereleases=True), (
                    f"{req.name}=={version} in the lock is outside {req} (run `make lock`)"
                )


def test_every_locked_package_carries_hashes() -> None:
    for lock in ("dev.lock", "build.lock"):
        text = (ROOT / "requirements" / lock).read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
        for block in blocks:
            if "==" in block.split("\n", 1)[0]:
                assert "--hash=sha256:" in block, block.split("\n", 1)[0]
