"""What the Kubernetes API server validates in the objects the settings produce, checked before any resource exists.

The rules are kubernetes/kubernetes `staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go`
(`IsDNS1123Label`, `IsDNS1123Subdomain`, `IsDNS1035Label`, `IsValidLabelValue`); which object field uses which rule
is `pkg/apis/core/validation/validation.go`, `pkg/apis/apps/validation`, `pkg/apis/batch/validation` and
`pkg/apis/networking/validation` (`ValidateServiceName` = DNS-1035 label, `ValidateIngressClassName` = subdomain,
Ingress path sequences). `derived_fields` is the one list of every name the stack builds from the settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.settings import Settings

# The longest `Release.short` (`components/release.py`): 12 hex characters plus `-dirty`.
RELEASE_SUFFIX_MAX = 18
# The StatefulSet controller labels each revision `controller-revision-hash: <name>-<hash of up to 10 characters>`
# (`pkg/controller/history/controller_history.go` `ControllerRevisionName`), a label value of at most 63.
STATEFULSET_NAME_MAX = 52
# `pkg/apis/networking/validation/validation.go`: Prefix and Exact paths may not contain these.
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
# `IsValidUserID`: 0 .. 2^31-1.
MAX_USER_ID = 2**31 - 1


@dataclass(frozen=True)
class NameRule:
    description: str
    pattern: str
    max_length: int

    def problem(self, value: str) -> str | None:
        """Why `value` breaks the rule, or None."""
        if len(value) > self.max_length:
            return f"{value!r} is {len(value)} characters, longer than the {self.max_length} of {self.description}"
        if not re.fullmatch(self.pattern, value):
            return f"{value!r} is not {self.description}"
        return None


DNS1123_LABEL = NameRule(
    "a DNS-1123 label (lowercase letters, digits and '-', starting and ending alphanumeric)",
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?",
    63,
)
DNS1123_SUBDOMAIN = NameRule(
    "a DNS-1123 subdomain (dot-separated DNS-1123 labels)",
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
    253,
)
DNS1035_LABEL = NameRule(
    "a DNS-1035 label (lowercase letters, digits and '-', starting with a letter)", r"[a-z]([-a-z0-9]*[a-z0-9])?", 63
)
LABEL_VALUE = NameRule(
    "a label value (alphanumerics, '-', '_' and '.', starting and ending alphanumeric)",
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
    63,
)
STATEFULSET_NAME = NameRule(
    f"a StatefulSet name of at most {STATEFULSET_NAME_MAX} characters (its revision label adds a hash)",
    DNS1123_LABEL.pattern,
    STATEFULSET_NAME_MAX,
)


@dataclass(frozen=True)
class DerivedField:
    keys: Mapping[str, object]
    """The settings (dotted, relative to `shipsafe:`) the value is built from, with their values (None: the key's
    name is the value, as for a workload)."""
    field: str
    value: str
    rule: NameRule


def derived_fields(settings: Settings) -> Iterator[DerivedField]:
    """Every name and label value the components build from the settings, with the API server's rule for it."""
    app = settings.app.name
    name: Mapping[str, object] = {"app.name": app}
    yield DerivedField(name, "label app.kubernetes.io/name", app, LABEL_VALUE)
    if settings.migration.command is not None:
        yield DerivedField(
            name,
            "migration Job name <app>-migrate-<release> (also its job-name label)",
            f"{app}-migrate-{'f' * RELEASE_SUFFIX_MAX}",
            LABEL_VALUE,
        )
    # A service with mode none has no objects, so no names to check.
    servers = [
        role for role, service in (("postgres", settings.postgres), ("redis", settings.redis)) if service.present
    ]
    for role in (*servers, "registry"):
        yield DerivedField(name, f"Service name <app>-{role}", f"{app}-{role}", DNS1035_LABEL)
        yield DerivedField(name, f"StatefulSet name <app>-{role}", f"{app}-{role}", STATEFULSET_NAME)
    for workload in settings.workloads:
        keys = {"app.name": app, f"workloads.{workload}": None}
        yield DerivedField(keys, f"Service name <app>-{workload}", f"{app}-{workload}", DNS1035_LABEL)
        yield DerivedField(keys, "label app.kubernetes.io/instance", f"{app}-{workload}", LABEL_VALUE)
        yield DerivedField({f"workloads.{workload}": None}, "container name", workload, DNS1123_LABEL)
    if settings.app.tls_secret_name is None:
        yield DerivedField(name, "TLS Secret name <app>-tls", f"{app}-tls", DNS1123_SUBDOMAIN)


def path_problem(path: str) -> str | None:
    """Why the API server refuses `path` as an Ingress Prefix path, or None."""
    if not path.startswith("/"):
        return f"{path!r} must be an absolute path (start with '/')"
    bad = [s for s in INVALID_PATH_SEQUENCES if s in path] + [s for s in INVALID_PATH_SUFFIXES if path.endswith(s)]
    if bad:
        return f"{path!r} contains {bad[0]!r}, which the API server refuses in an Ingress path"
    return None
