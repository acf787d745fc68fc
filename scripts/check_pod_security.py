#!/usr/bin/env python3
"""Checks every pod template in Kubernetes manifests against the `restricted` Pod Security Standard.

    scripts/check_pod_security.py FILE.yaml...        (scripts/check-deploy.sh runs it on each render)

The rules are those of https://kubernetes.io/docs/concepts/security/pod-security-standards/ for the
`restricted` profile (which includes every `baseline` control), as the admission controller
enforces them with `enforce-version: latest`. Pod templates are found in Pods, PodTemplates,
Deployments, ReplicaSets, StatefulSets, DaemonSets, ReplicationControllers, Jobs and CronJobs.
Every violation is printed as `FAIL <Kind> <namespace>/<name>: <where>: <what> [<control>]`;
exit 1 when there is one, 0 otherwise. Needs PyYAML.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator

import yaml

# Baseline "Sysctls": the safe set (Kubernetes 1.27+ adds ip_local_reserved_ports, 1.29+ the
# tcp_keepalive/fin_timeout ones).
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
# Restricted "Volume Types": the only volume sources allowed.
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# Baseline "SELinux".
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def pod_templates(obj: dict) -> Iterator[tuple[dict, dict]]:
    """(pod metadata, pod spec) of every pod an object runs."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield obj.get("metadata") or {}, spec
    elif kind == "PodTemplate":
        template = obj.get("template") or {}
        yield template.get("metadata") or {}, template.get("spec") or {}
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ReplicationController", "Job"):
        template = spec.get("template") or {}
        yield template.get("metadata") or {}, template.get("spec") or {}
    elif kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        yield template.get("metadata") or {}, template.get("spec") or {}


def violations(meta: dict, pod: dict) -> Iterator[tuple[str, str, str]]:
    """(where, what, control) for every rule the pod breaks."""
    psc = pod.get("securityContext") or {}
    windows = (pod.get("os") or {}).get("name") == "windows"
    containers = [(f"{lst} {c.get('name', '?')}", c) for lst in CONTAINER_LISTS for c in pod.get(lst) or []]
    if not containers:
        yield "pod", "no containers", "structure"

    # --- baseline ---
    if (psc.get("windowsOptions") or {}).get("hostProcess") is True:
        yield "pod", "securityContext.windowsOptions.hostProcess must not be true", "HostProcess"
    for where, c in containers:
        if ((c.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess") is True:
            yield where, "securityContext.windowsOptions.hostProcess must not be true", "HostProcess"
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field) is True:
            yield "pod", f"{field} must not be true", "Host Namespaces"
    for where, c in containers:
        sc = c.get("securityContext") or {}
        if sc.get("privileged") is True:
            yield where, "securityContext.privileged must not be true", "Privileged Containers"
        if sc.get("procMount") not in (None, "Default"):
            yield where, f"securityContext.procMount must be Default, not {sc.get('procMount')}", "/proc Mount Type"
        for port in c.get("ports") or []:
            if port.get("hostPort") not in (None, 0):
                yield where, f"hostPort {port.get('hostPort')} is not allowed", "Host Ports"
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            yield f"volume {volume.get('name', '?')}", "hostPath volumes are not allowed", "HostPath Volumes"
    # AppArmor: the field (1.30+) and the annotations.
    profiles = [("pod", psc.get("appArmorProfile"))] + [
        (w, (c.get("securityContext") or {}).get("appArmorProfile")) for w, c in containers
    ]
    for where, profile in profiles:
        if profile and profile.get("type") not in ("RuntimeDefault", "Localhost"):
            yield where, f"appArmorProfile.type must be RuntimeDefault or Localhost, not {profile.get('type')}", "AppArmor"
    for key, value in ((meta.get("annotations") or {}).items()):
        if key.startswith(APPARMOR_ANNOTATION) and value != "runtime/default" and not str(value).startswith("localhost/"):
            yield "pod", f"annotation {key}: {value} is not runtime/default or localhost/*", "AppArmor"
    selinux = [("pod", psc.get("seLinuxOptions"))] + [
        (w, (c.get("securityContext") or {}).get("seLinuxOptions")) for w, c in containers
    ]
    for where, options in selinux:
        if not options:
            continue
        if options.get("type", "") not in SELINUX_TYPES:
            yield where, f"seLinuxOptions.type {options.get('type')} is not allowed", "SELinux"
        for field in ("user", "role"):
            if options.get(field):
                yield where, f"seLinuxOptions.{field} must not be set", "SELinux"
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield "pod", f"sysctl {sysctl.get('name')} is not in the safe set", "Sysctls"

    # --- restricted ---
    for volume in pod.get("volumes") or []:
        sources = [k for k in volume if k != "name"]
        for source in sources:
            if source not in ALLOWED_VOLUMES:
                yield f"volume {volume.get('name', '?')}", f"volume type {source} is not allowed (only {', '.join(sorted(ALLOWED_VOLUMES))})", "Volume Types"
    # Running as non-root: the pod says runAsNonRoot: true (and no container says false), or
    # every container says true.
    pod_non_root = psc.get("runAsNonRoot") is True
    for where, c in containers:
        sc = c.get("securityContext") or {}
        if sc.get("runAsNonRoot") is False:
            yield where, "securityContext.runAsNonRoot must not be false", "Running as Non-root"
        elif not pod_non_root and sc.get("runAsNonRoot") is not True:
            yield where, "runAsNonRoot must be true (in the pod's or this container's securityContext)", "Running as Non-root"
    if psc.get("runAsUser") == 0:
        yield "pod", "securityContext.runAsUser must not be 0", "Running as Non-root user"
    for where, c in containers:
        if (c.get("securityContext") or {}).get("runAsUser") == 0:
            yield where, "securityContext.runAsUser must not be 0", "Running as Non-root user"
    if windows:
        return  # seccomp, privilege escalation and capabilities do not apply to Windows pods
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        yield "pod", f"securityContext.seccompProfile.type must be RuntimeDefault or Localhost, not {pod_seccomp}", "Seccomp"
    for where, c in containers:
        sc = c.get("securityContext") or {}
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in ("RuntimeDefault", "Localhost"):
            yield where, f"securityContext.seccompProfile.type must be RuntimeDefault or Localhost, not {seccomp}", "Seccomp"
        elif seccomp is None and pod_seccomp not in ("RuntimeDefault", "Localhost"):
            yield where, "seccompProfile.type must be RuntimeDefault or Localhost (in the pod's or this container's securityContext)", "Seccomp"
        if sc.get("allowPrivilegeEscalation") is not False:
            yield where, "securityContext.allowPrivilegeEscalation must be false", "Privilege Escalation"
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            yield where, "securityContext.capabilities.drop must include ALL", "Capabilities"
        for cap in caps.get("add") or []:
            if cap != "NET_BIND_SERVICE":
                yield where, f"capability {cap} may not be added (only NET_BIND_SERVICE)", "Capabilities"


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failures = 0
    templates = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            objects = [o for o in yaml.safe_load_all(f) if isinstance(o, dict)]
        for obj in objects:
            meta = obj.get("metadata") or {}
            name = f"{obj.get('kind')} {meta.get('namespace', '-')}/{meta.get('name', '?')}"
            for pod_meta, pod in pod_templates(obj):
                templates += 1
                found = list(violations(pod_meta, pod))
                for where, what, control in found:
                    print(f"FAIL {path}: {name}: {where}: {what} [restricted: {control}]")
                failures += len(found)
                if not found:
                    containers = sum(len(pod.get(lst) or []) for lst in CONTAINER_LISTS)
                    print(f"ok   {path}: {name}: restricted Pod Security Standard ({containers} container(s), {len(pod.get('volumes') or [])} volume(s))")
    if templates == 0:
        print(f"FAIL {', '.join(paths)}: no pod template found")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
