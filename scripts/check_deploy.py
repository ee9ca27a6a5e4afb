"""Offline checks of the deployment files (`make check`; no Docker, no cluster needed).

- Kubernetes: renders every kustomization under deploy/kubernetes/overlays (and the base)
  the way ``kubectl kustomize`` does for the features these files use (resources,
  components, namespace, images, labels, config map and secret generators with
  ``behavior: merge``, RFC 6902 JSON patches), then validates every resulting object
  against the Kubernetes JSON schemas (``kubernetes-validate``, strict: unknown fields are
  errors). Also checks what the schemas cannot: selectors match their pod labels, probes
  and Service ports name container ports, the server's grace period covers preStop +
  drain, referenced ConfigMaps/Secrets exist, the flows ConfigMap holds valid flows.
- Compose: compose.yaml's services, their ``depends_on`` targets and conditions, health
  checks, the stop grace period against the drain, and that each command is a
  ``switchboard`` command.
- Image: every ``COPY`` source of the Dockerfile is let through by .dockerignore.

Exit status 1 with one line per problem.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # oldest release the manifests must run on

problems: list[str] = []


def problem(text: str) -> None:
    problems.append(text)


# --- a small kustomize ------------------------------------------------------------------


def _json_pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 ``add``, ``replace``, ``remove`` (what the overlays use)."""
    for op in ops:
        parts = _json_pointer(op["path"])
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif kind == "replace":
                parent[index] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[index]
            else:
                raise ValueError(f"unsupported patch op {kind!r}")
        else:
            if kind in ("replace", "remove") and last not in parent:
                raise ValueError(f"{kind} of missing {op['path']}")
            if kind in ("add", "replace"):
                parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[last]
            else:
                raise ValueError(f"unsupported patch op {kind!r}")
    return doc


def _env_file(path: Path) -> dict[str, str]:
    if not path.exists() and path.with_name(path.name + ".example").exists():
        path = path.with_name(path.name + ".example")  # the committed template
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value
    return out


def _generated(spec: dict[str, Any], base: Path, kind: str) -> dict[str, Any]:
    data: dict[str, str] = {}
    for literal in spec.get("literals", []):
        name, _, value = literal.partition("=")
        data[name] = value
    for env in spec.get("envs", []):
        data.update(_env_file(base / env))
    for item in spec.get("files", []):
        key, _, rel = item.partition("=") if "=" in item else (Path(item).name, "", item)
        path = (base / rel).resolve()
        if not path.is_relative_to(base.resolve()):
            problem(
                f"{base}: generator file {item} is outside the kustomization (kustomize refuses)"
            )
            continue
        data[key] = path.read_text()
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}}
    if kind == "Secret":
        obj["type"] = "Opaque"
        obj["stringData"] = data
    else:
        obj["data"] = data
    return obj


def _matches(obj: dict[str, Any], target: dict[str, Any]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    checks = {
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "group": group,
        "version": version,
    }
    return all(checks[k] == v for k, v in target.items() if k in checks)


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize directory`` would print (names without hashes)."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for res in spec.get("resources", []):
        path = directory / res
        if path.is_dir():
            objects += render(path)
        else:
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for gen in spec.get(key, []):
            new = _generated(gen, directory, kind)
            if gen.get("behavior") == "merge":
                found = [
                    o for o in objects if o["kind"] == kind and _matches(o, {"name": gen["name"]})
                ]
                if not found:
                    problem(f"{directory}: {key} {gen['name']} merges into nothing")
                    continue
                field = "stringData" if kind == "Secret" else "data"
                found[0].setdefault(field, {}).update(new[field])
            else:
                objects.append(new)
    for comp in spec.get("components", []):
        comp_dir = directory / comp
        comp_spec = yaml.safe_load((comp_dir / "kustomization.yaml").read_text())
        if comp_spec.get("kind") != "Component":
            problem(f"{comp_dir}: not a kustomize Component")
        objects = _patch(objects, comp_spec.get("patches", []), comp_dir)
    objects = _patch(objects, spec.get("patches", []), directory)
    for image in spec.get("images", []):
        for obj in objects:
            for c in _containers(obj):
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] != "Namespace":
                obj["metadata"]["namespace"] = spec["namespace"]
    for label in spec.get("labels", []):
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label["pairs"])
    return objects


def _patch(
    objects: list[dict[str, Any]], patches: list[dict[str, Any]], base: Path
) -> list[dict[str, Any]]:
    for p in patches:
        ops = (
            yaml.safe_load(p["patch"])
            if "patch" in p
            else yaml.safe_load((base / p["path"]).read_text())
        )
        hits = [o for o in objects if _matches(o, p.get("target", {}))]
        if not hits:
            problem(f"{base}: patch target {p.get('target')} matches nothing")
        for obj in hits:
            try:
                json_patch(obj, ops)
            except (KeyError, IndexError, ValueError) as exc:
                problem(f"{base}: patch {p.get('target')} fails: {exc!r}")
    return objects


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec: dict[str, Any] = obj["spec"]["template"]["spec"]
        return spec
    return None


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    pod = _pod_spec(obj)
    if pod is None:
        return []
    return [*pod.get("initContainers", []), *pod["containers"]]


def check_objects(where: str, objects: list[dict[str, Any]], *, complete: bool) -> None:
    """``complete``: an overlay, which must define every Secret it uses (the base leaves
    them to the overlays)."""
    import kubernetes_validate

    by_kind: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in objects:
        name = f"{where}: {obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problem(f"{name}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problem(f"{name}: no schema for {obj['apiVersion']} {obj['kind']}")
        by_kind[(obj["kind"], obj["metadata"]["name"])] = obj
    data = {k[1]: o for k, o in by_kind.items() if k[0] == "ConfigMap"}
    secrets = {k[1] for k in by_kind if k[0] == "Secret"}
    for (kind, name), obj in by_kind.items():
        label = f"{where}: {kind}/{name}"
        pod = _pod_spec(obj)
        if pod is not None:
            pod_labels = obj["spec"]["template"]["metadata"].get("labels", {})
            for k, v in obj["spec"]["selector"]["matchLabels"].items():
                if pod_labels.get(k) != v:
                    problem(f"{label}: selector {k}={v} does not match the pod labels")
            for c in _containers(obj):
                ports = {p["name"] for p in c.get("ports", [])}
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    port = c.get(probe, {}).get("httpGet", {}).get("port")
                    if isinstance(port, str) and port not in ports:
                        problem(f"{label}: {c['name']} {probe} names no port {port!r}")
                for ref in c.get("envFrom", []):
                    if "configMapRef" in ref and ref["configMapRef"]["name"] not in data:
                        problem(f"{label}: no ConfigMap {ref['configMapRef']['name']}")
                    if complete and "secretRef" in ref and ref["secretRef"]["name"] not in secrets:
                        problem(f"{label}: no Secret {ref['secretRef']['name']}")
            for vol in pod.get("volumes", []):
                if "configMap" in vol and vol["configMap"]["name"] not in data:
                    problem(
                        f"{label}: volume {vol['name']}: no ConfigMap {vol['configMap']['name']}"
                    )
            if name == "switchboard-server":
                _check_grace(label, pod, data.get("switchboard-config", {}).get("data", {}))
        if kind == "Service":
            targets = {
                p["name"]
                for o in by_kind.values()
                if _pod_spec(o) is not None
                and all(
                    o["spec"]["template"]["metadata"].get("labels", {}).get(k) == v
                    for k, v in obj["spec"]["selector"].items()
                )
                for c in _containers(o)
                for p in c.get("ports", [])
            }
            if not targets:
                problem(f"{label}: its selector matches no pods")
            for port in obj["spec"]["ports"]:
                if isinstance(port.get("targetPort"), str) and port["targetPort"] not in targets:
                    problem(f"{label}: targetPort {port['targetPort']!r} is no container port")
        if kind in ("PodDisruptionBudget", "HorizontalPodAutoscaler"):
            if kind == "HorizontalPodAutoscaler":
                ref = obj["spec"]["scaleTargetRef"]
                if (ref["kind"], ref["name"]) not in by_kind:
                    problem(f"{label}: scales {ref['kind']}/{ref['name']}, which is not here")
            else:
                sel = obj["spec"]["selector"]["matchLabels"]
                if not any(
                    _pod_spec(o) is not None
                    and all(
                        o["spec"]["template"]["metadata"]["labels"].get(k) == v
                        for k, v in sel.items()
                    )
                    for o in by_kind.values()
                ):
                    problem(f"{label}: its selector matches no pods")


def _check_grace(label: str, pod: dict[str, Any], config: dict[str, str]) -> None:
    drain = float(config.get("SWITCHBOARD_SHUTDOWN_DRAIN_S", "20"))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = 0.0
    for c in pod["containers"]:
        cmd = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        if cmd[:1] == ["sleep"]:
            pre_stop = float(cmd[1])
    # uvicorn waits drain + 5 s, and closing Redis and the listeners takes a moment.
    if grace < pre_stop + drain + 15:
        problem(
            f"{label}: terminationGracePeriodSeconds {grace} < preStop {pre_stop:g} s + "
            f"SWITCHBOARD_SHUTDOWN_DRAIN_S {drain:g} s + 15 s"
        )


def check_kubernetes() -> None:
    dirs = [K8S / "base", *sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())]
    for d in dirs:
        check_objects(str(d.relative_to(ROOT)), render(d), complete=d.parent.name == "overlays")
    # The flows ConfigMap's files must be valid flows, and each must be in the generator.
    from flows import FlowCatalog

    flows_dir = K8S / "base" / "flows"
    try:
        FlowCatalog.load(flows_dir)
    except Exception as exc:
        problem(f"{flows_dir.relative_to(ROOT)}: not valid flows: {exc}")
    spec = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    listed = {
        Path(item.partition("=")[2] or item).name
        for gen in spec.get("configMapGenerator", [])
        if gen["name"] == "switchboard-flows"
        for item in gen.get("files", [])
    }
    for flow in sorted(flows_dir.glob("*.yaml")):
        if flow.name not in listed:
            problem(f"{flow.relative_to(ROOT)} is not in the switchboard-flows generator")


# --- compose ------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(text)):
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def check_compose() -> None:
    from typer.main import get_command

    from app.cli import cli

    commands = set(get_command(cli).commands)  # type: ignore[attr-defined]
    spec = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services: dict[str, Any] = spec["services"]
    drain = 20.0  # Settings.shutdown_drain_s default
    for name, svc in services.items():
        label = f"compose.yaml: {name}"
        if "image" not in svc:
            problem(f"{label}: no image")
        deps = svc.get("depends_on", {})
        for dep, cond in deps.items() if isinstance(deps, dict) else []:
            if dep not in services:
                problem(f"{label}: depends on unknown service {dep}")
                continue
            want = cond.get("condition")
            if want not in ("service_started", "service_healthy", "service_completed_successfully"):
                problem(f"{label}: depends_on {dep}: unknown condition {want!r}")
            target = services[dep].get("healthcheck", {})
            if want == "service_healthy" and (not target or target.get("disable")):
                problem(f"{label}: waits for {dep} to be healthy, which has no health check")
            if not cond.get("required", True) or "profiles" not in services[dep]:
                continue
            if set(services[dep]["profiles"]) - set(svc.get("profiles", [])):
                problem(
                    f"{label}: needs {dep} of profile {services[dep]['profiles']} "
                    "(required: false?)"
                )
        if svc.get("image", "").startswith("${SWITCHBOARD_IMAGE"):
            command = svc.get("command", [])
            if not command or command[0] not in commands:
                problem(f"{label}: command {command!r} is not a switchboard command")
            if (
                command[:1] == ["serve"]
                and _seconds(svc.get("stop_grace_period", "10s")) < drain + 15
            ):
                problem(f"{label}: stop_grace_period shorter than the drain ({drain:g} s) + 15 s")
            hc = svc.get("healthcheck", {})
            if not hc.get("disable") and "test" not in hc:
                problem(f"{label}: no health check (or healthcheck: disable: true for a one-shot)")
    redis_cmd = " ".join(services.get("redis", {}).get("command", []))
    if "--appendonly yes" not in redis_cmd:
        problem("compose.yaml: redis: no AOF persistence (--appendonly yes)")
    offline = {n for n, s in services.items() if "offline" in s.get("profiles", [])}
    for needed in ("engine", "simulator", "call"):
        if needed not in offline:
            problem(f"compose.yaml: the offline profile lacks {needed}")


# --- image --------------------------------------------------------------------------------


def check_dockerignore() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for rule in rules:
            negate = rule.startswith("!")
            pattern = rule[1:] if negate else rule
            pattern = pattern.rstrip("/")
            hit = fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/")
            if pattern.startswith("**/"):
                hit = hit or fnmatch.fnmatch(Path(path).name, pattern[3:])
            if hit:
                keep = negate
        return keep

    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            for src in words[1:-1]:
                if not (ROOT / src).exists():
                    problem(f"Dockerfile: COPY {src}: no such file")
                elif not included(src):
                    problem(f"Dockerfile: COPY {src} is excluded by .dockerignore")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    check_kubernetes()
    check_compose()
    check_dockerignore()
    for text in problems:
        print(text, file=sys.stderr)
    if problems:
        return 1
    print(
        "deploy files: Kubernetes manifests valid (schemas of",
        KUBERNETES_VERSION + "), compose and image OK",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
