"""The pack loads like the engine loads it, lists its policies over gRPC, and its docs match it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from deploy.docs.policies import render_policy_docs, stack_levels
from deploy.policy_link import pack_registry
from harness.analyzer import POLICY_DIR, PolicyPackError, PolicyPackProcess, reconcile_config
from harness.pack_launch import pack_python
from harness.recording import Recording
from harness.stack_config import REPO_ROOT, read_stack_config
from tests.conftest import STACKS

FACTORS = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
RANK = {"disabled": 0, "advisory": 1, "mandatory": 2}


def test_pack_lists_every_policy_with_its_metadata(pack: PolicyPackProcess) -> None:
    names = [p.name for p in pack.policies]
    assert len(names) == len(set(names)) >= 45
    assert {p.kind for p in pack.policies} == {"resource", "stack"}
    families = {family.name for family in pack_registry().FAMILIES}
    for policy in pack.policies:
        assert policy.tag("family:") in families, policy.name
        assert policy.tag("topic:"), f"{policy.name} names no factor or threat"
        assert policy.description.startswith(f"[{policy.tag('topic:')}] "), policy.name
        assert policy.remediation, f"{policy.name} does not say how to fix it"
        assert policy.level in ("mandatory", "advisory"), policy.name
        for key, schema in (policy.config_schema.get("properties") or {}).items():
            assert "default" in schema and schema.get("description"), f"{policy.name}.{key}"


def test_every_factor_is_named_by_some_policy(pack: PolicyPackProcess) -> None:
    # II Dependencies lives with the Dockerfile rules: the locked install is in the Dockerfile.
    topics = [p.tag("topic:") for p in pack.policies]
    numerals = {part.split()[0] for topic in topics for part in topic.split(";")}
    assert numerals >= set(FACTORS)


def _runs_promoted_images(stack: str) -> bool:
    """A stack that never builds runs an image another stack built and ran first (`shipsafe promote`)."""
    project, config = read_stack_config(stack)
    return config.get(f"{project}:imageSource") == "prebuilt"


def test_a_stack_of_promoted_images_is_at_least_as_strict_as_every_stack_that_builds(pack: PolicyPackProcess) -> None:
    levels = stack_levels(pack.policies)
    assert set(levels) == set(STACKS)
    promoted = [stack for stack in STACKS if _runs_promoted_images(stack)]
    building = [stack for stack in STACKS if stack not in promoted]
    assert promoted and building, "a stack that builds and one its images are promoted to"
    for target, source in ((target, source) for target in promoted for source in building):
        assert all(RANK[levels[target][n]] >= RANK[levels[source][n]] for n in levels[source]), (target, source)
        assert any(RANK[levels[target][n]] > RANK[levels[source][n]] for n in levels[source]), (target, source)


def test_config_is_reconciled_and_validated_like_the_engine(pack: PolicyPackProcess) -> None:
    config = reconcile_config(
        pack.policies, {"all": {"enforcementLevel": "advisory"}, "12f-concurrency-replica-range": {"minReplicas": 3}}
    )
    assert config["12f-concurrency-replica-range"] == {
        "enforcementLevel": "advisory",
        "minReplicas": 3,
        "maxReplicas": 20,
        "partOf": "shipsafe",
        "backingComponents": ["database", "cache"],
    }
    assert {c["enforcementLevel"] for c in config.values()} == {"advisory"}
    assert config["all"] == {"enforcementLevel": "advisory"}, "the engine forwards `all` to Configure too"
    with pytest.raises(PolicyPackError, match="minReplicas"):
        reconcile_config(pack.policies, {"12f-concurrency-replica-range": {"minReplicas": "two"}})
    # An unknown name reaches the pack as it does under the engine; the pack refuses it in Configure.
    with pytest.raises(PolicyPackError, match=r"unknown policy names: 'k8s-typo'"):
        pack.configure({"k8s-typo": {"enforcementLevel": "mandatory"}})


def test_the_policy_reference_documents_the_pack_as_it_is(pack: PolicyPackProcess) -> None:
    # That docs/policies.md holds this reference is its drift test's (tests/deploy/test_generated_docs.py).
    reference = render_policy_docs(pack.policies, stack_levels(pack.policies))
    for policy in pack.policies:
        assert f"| `{policy.name}` |" in reference
    for family in pack_registry().FAMILIES:
        assert f"#### {family.title}\n" in reference
        for section in family.sections:
            assert f"`{section.prefix}-*` in `policy/{section.module.replace('.', '/')}.py`" in reference


def test_a_broken_pack_fails_fast_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\n")
    (tmp_path / "__main__.py").write_text("raise RuntimeError('pack is broken')\n")
    started = time.monotonic()
    broken = PolicyPackProcess(tmp_path, python=Path(sys.executable), startup_timeout=20)
    with pytest.raises(PolicyPackError, match="pack is broken"), broken:
        pass
    assert time.monotonic() - started < 20


def test_a_silent_pack_is_abandoned_after_the_startup_timeout(tmp_path: Path) -> None:
    (tmp_path / "__main__.py").write_text("import time\ntime.sleep(60)\n")
    process = PolicyPackProcess(tmp_path, python=Path(sys.executable), startup_timeout=1)
    started = time.monotonic()
    with pytest.raises(PolicyPackError, match="no port"), process:
        pass
    assert time.monotonic() - started < 10
    assert process.exit_code is not None, "the pack process must be ended"


def test_the_pack_runs_on_the_virtualenv_its_manifest_names(tmp_path: Path) -> None:
    assert pack_python(POLICY_DIR) == (REPO_ROOT / ".venv").resolve() / "bin" / "python"
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime:\n  name: python\n  options:\n    virtualenv: nowhere\n")
    with pytest.raises(PolicyPackError, match="doesn't appear to be a virtual environment"):
        pack_python(tmp_path)
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\n")
    assert pack_python(tmp_path) == Path("python3")


def test_a_crashing_policy_fails_the_analysis_with_its_error(tmp_path: Path, compliant: dict[str, Recording]) -> None:
    (tmp_path / "__main__.py").write_text(
        "from pulumi_policy import PolicyPack, ResourceValidationPolicy\n"
        "def crash(args, report):\n"
        "    raise RuntimeError('policy bug')\n"
        "PolicyPack('crashing', [ResourceValidationPolicy('crash', 'crashes', crash)])\n"
    )
    with (
        PolicyPackProcess(tmp_path, python=Path(sys.executable)) as pack,
        pytest.raises(PolicyPackError, match="policy bug"),
    ):
        pack.analyze(compliant["prod"])
    assert pack.exit_code is not None


def test_the_pack_imports_only_its_own_locked_dependencies() -> None:
    """policy/ runs under the real CLI in a venv holding only policy/requirements.txt, and shipsafe_policies ships in
    the wheel apart from the program: no module of the pack may import the program's, the tool's or the harness's
    packages, or a distribution its lock does not pin."""
    import ast
    import re
    from importlib.metadata import packages_distributions

    locked = {
        re.sub(r"[-_.]+", "-", m.group(1)).lower()
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", (POLICY_DIR / "requirements.txt").read_text(), re.MULTILINE)
    }
    distributions = packages_distributions()
    outside = []
    for path in sorted(POLICY_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for top in {name.split(".")[0] for name in names}:
                if top in sys.stdlib_module_names or top == "shipsafe_policies":
                    continue
                dists = {re.sub(r"[-_.]+", "-", d).lower() for d in distributions.get(top, [])}
                if not dists & locked:
                    outside.append(
                        f"{path.relative_to(REPO_ROOT)} imports {top} ({sorted(dists) or 'no distribution'})"
                    )
    assert not outside, outside
