#!/usr/bin/env python3
"""Helpers of scripts/check-deploy.sh for rendered manifests (run with the deploy-tools venv's python).

    check_manifests.py split RENDERED BUILTIN_OUT CUSTOM_OUT
        Objects whose kind kubernetes-validate has a schema for (the Kubernetes built-ins) go to
        BUILTIN_OUT, the others (custom resources: ServiceMonitor, PrometheusRule) to CUSTOM_OUT.
    check_manifests.py custom CUSTOM RENDERED
        Checks the custom resources, which kubernetes-validate has no schema for: only the fields
        written here (unknown fields are errors, as --strict does for built-ins), types, and what
        ties them to the rest of the render (a ServiceMonitor selects a Service of the render in its
        namespace and names a port it has; alert rules carry severity, summary, description and
        runbook_url). A kind without a check here fails.
    check_manifests.py images RENDERED VERSION
        Every container image is pinned (a tag other than `latest`, or a digest); the f3-chaos image
        is tagged VERSION (the workspace version in Cargo.toml).
    check_manifests.py rules RENDERED OUT
        Writes the groups of every PrometheusRule as a plain Prometheus rules file (for promtool).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [o for o in yaml.safe_load_all(f) if isinstance(o, dict)]


def dump(path: str, objects: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(objects, f, sort_keys=False)


def name_of(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '-')}/{meta.get('name', '?')}"


def has_schema(obj: dict) -> bool:
    from kubernetes_validate import utils

    try:
        utils.validate(obj, utils.latest_version(), strict=True)
    except utils.SchemaNotFoundError:
        return False
    except Exception:  # invalid, but a schema exists: kubernetes-validate reports it
        return True
    return True


def split(rendered: str, builtin_out: str, custom_out: str) -> int:
    objects = load(rendered)
    builtin = [o for o in objects if has_schema(o)]
    custom = [o for o in objects if not has_schema(o)]
    dump(builtin_out, builtin)
    dump(custom_out, custom)
    for o in custom:
        print(f"note {name_of(o)} ({o.get('apiVersion')}): custom resource, no schema in kubernetes-validate; checked by check_manifests.py custom")
    return 0


class Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")


def check_fields(errors: Errors, where: str, value: Any, allowed: dict[str, type | tuple], required: tuple = ()) -> None:
    if not isinstance(value, dict):
        errors.add(where, f"must be a mapping, not {type(value).__name__}")
        return
    for key in value:
        if key not in allowed:
            errors.add(where, f"unknown field `{key}` (known: {', '.join(allowed)})")
        elif not isinstance(value[key], allowed[key]):
            errors.add(f"{where}.{key}", f"must be {allowed[key]}, not {type(value[key]).__name__}")
    for key in required:
        if key not in value:
            errors.add(where, f"missing `{key}`")


def check_metadata(errors: Errors, obj: dict, where: str) -> None:
    check_fields(errors, f"{where} metadata", obj.get("metadata"), {"name": str, "namespace": str, "labels": dict, "annotations": dict}, ("name", "namespace"))
    check_fields(errors, where, obj, {"apiVersion": str, "kind": str, "metadata": dict, "spec": dict}, ("apiVersion", "kind", "metadata", "spec"))
    if obj.get("apiVersion") != "monitoring.coreos.com/v1":
        errors.add(where, f"apiVersion must be monitoring.coreos.com/v1, not {obj.get('apiVersion')}")


def check_service_monitor(errors: Errors, obj: dict, rendered: list[dict]) -> str:
    where = name_of(obj)
    check_metadata(errors, obj, where)
    spec = obj.get("spec") or {}
    check_fields(errors, f"{where} spec", spec, {"selector": dict, "endpoints": list, "namespaceSelector": dict, "jobLabel": str}, ("selector", "endpoints"))
    selector = spec.get("selector") or {}
    check_fields(errors, f"{where} spec.selector", selector, {"matchLabels": dict}, ("matchLabels",))
    wanted = selector.get("matchLabels") or {}
    namespace = (obj.get("metadata") or {}).get("namespace")
    services = [
        s for s in rendered
        if s.get("kind") == "Service"
        and (s.get("metadata") or {}).get("namespace") == namespace
        and wanted
        and all(((s.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in wanted.items())
    ]
    if not services:
        errors.add(f"{where} spec.selector", f"selects no Service of the render in namespace {namespace} (matchLabels {wanted})")
    ports = {p.get("name") for s in services for p in (s.get("spec") or {}).get("ports") or []}
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        errors.add(f"{where} spec.endpoints", "empty")
    for i, endpoint in enumerate(endpoints):
        at = f"{where} spec.endpoints[{i}]"
        check_fields(errors, at, endpoint, {"port": str, "path": str, "interval": str, "scrapeTimeout": str, "scheme": str}, ("port",))
        if isinstance(endpoint, dict):
            if services and endpoint.get("port") not in ports:
                errors.add(at, f"port `{endpoint.get('port')}` is not a named port of the selected Service ({', '.join(sorted(filter(None, ports)))})")
            if not str(endpoint.get("path", "/metrics")).startswith("/"):
                errors.add(at, "path must start with /")
            for key in ("interval", "scrapeTimeout"):
                if key in endpoint and not DURATION.match(str(endpoint[key])):
                    errors.add(at, f"{key} `{endpoint[key]}` is not a Prometheus duration")
            if endpoint.get("scheme", "http") not in ("http", "https"):
                errors.add(at, "scheme must be http or https")
    return f"selects {', '.join(name_of(s) for s in services) or '-'} port(s) {', '.join(str(e.get('port')) for e in endpoints if isinstance(e, dict))}"


def check_prometheus_rule(errors: Errors, obj: dict) -> str:
    where = name_of(obj)
    check_metadata(errors, obj, where)
    spec = obj.get("spec") or {}
    check_fields(errors, f"{where} spec", spec, {"groups": list}, ("groups",))
    alerts = 0
    for gi, group in enumerate(spec.get("groups") or []):
        at = f"{where} spec.groups[{gi}]"
        check_fields(errors, at, group, {"name": str, "interval": str, "rules": list, "limit": int}, ("name", "rules"))
        if not isinstance(group, dict):
            continue
        for ri, rule in enumerate(group.get("rules") or []):
            rat = f"{at}.rules[{ri}]"
            check_fields(errors, rat, rule, {"alert": str, "record": str, "expr": (str, int), "for": str, "keep_firing_for": str, "labels": dict, "annotations": dict}, ("expr",))
            if not isinstance(rule, dict):
                continue
            if ("alert" in rule) == ("record" in rule):
                errors.add(rat, "exactly one of `alert` and `record`")
            for key in ("for", "keep_firing_for"):
                if key in rule and not DURATION.match(str(rule[key])):
                    errors.add(rat, f"{key} `{rule[key]}` is not a Prometheus duration")
            if "alert" in rule:
                alerts += 1
                if (rule.get("labels") or {}).get("severity") not in ("critical", "warning", "info"):
                    errors.add(rat, f"alert {rule['alert']}: labels.severity must be critical, warning or info")
                for key in ("summary", "description", "runbook_url"):
                    if not (rule.get("annotations") or {}).get(key):
                        errors.add(rat, f"alert {rule['alert']}: annotation `{key}` missing")
    return f"{alerts} alert(s) in {len(spec.get('groups') or [])} group(s)"


def custom(custom_path: str, rendered_path: str) -> int:
    rendered = load(rendered_path)
    errors = Errors()
    for obj in load(custom_path):
        kind = obj.get("kind")
        before = len(errors.items)
        if kind == "ServiceMonitor":
            what = check_service_monitor(errors, obj, rendered)
        elif kind == "PrometheusRule":
            what = check_prometheus_rule(errors, obj)
        else:
            errors.add(name_of(obj), f"no schema in kubernetes-validate and no check in {sys.argv[0]}: add one")
            continue
        if len(errors.items) == before:
            print(f"ok   {name_of(obj)}: fields and references checked ({what})")
    for item in errors.items:
        print(f"FAIL {item}")
    return 1 if errors.items else 0


def images(rendered_path: str, version: str) -> int:
    failures = 0
    seen = 0
    for obj in load(rendered_path):
        spec = obj.get("spec") or {}
        pod = ((spec.get("template") or {}).get("spec")) or {}
        for lst in ("initContainers", "containers", "ephemeralContainers"):
            for c in pod.get(lst) or []:
                image = str(c.get("image", ""))
                seen += 1
                where = f"{name_of(obj)} container {c.get('name')}"
                repo, _, digest = image.partition("@")
                tag = repo.rsplit("/", 1)[-1].partition(":")[2]
                if not digest and (not tag or tag == "latest"):
                    print(f"FAIL {where}: image `{image}` is not pinned (a version tag or a digest)")
                    failures += 1
                elif repo.rsplit("/", 1)[-1].startswith("f3-chaos") and not digest and tag != version:
                    print(f"FAIL {where}: image `{image}` is not the workspace version {version} (Cargo.toml)")
                    failures += 1
                else:
                    print(f"ok   {where}: image {image}")
    if seen == 0:
        print(f"FAIL {rendered_path}: no container image found")
        return 1
    return 1 if failures else 0


def rules(rendered_path: str, out: str) -> int:
    groups = [g for o in load(rendered_path) if o.get("kind") == "PrometheusRule" for g in (o.get("spec") or {}).get("groups") or []]
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": groups}, f, sort_keys=False)
    print(f"wrote {out}: {len(groups)} group(s) from the PrometheusRule(s)")
    return 0 if groups else 1


def main(argv: list[str]) -> int:
    commands = {"split": (split, 3), "custom": (custom, 2), "images": (images, 2), "rules": (rules, 2)}
    if not argv or argv[0] not in commands or len(argv) - 1 != commands[argv[0]][1]:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    function, _ = commands[argv[0]]
    return function(*argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
