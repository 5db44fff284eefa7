"""One registry of rule families: the pack, the policy reference (docs/policies.md) and the config files all follow it.

A rule is declared in its section's module with its name, description, fix, level, settings and check together;
its name carries the section's prefix, so a name says which module holds it. The engine ignores config for a policy
name it does not know (pulumi/pulumi `pkg/resource/analyzer/config.go`), so a renamed rule must take its config
keys along: every key of `policy/config/*.json` has to name a policy of the pack, and every setting one of its own.
"""

from __future__ import annotations

import json
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

from deploy.policy_link import pack_registry, read_policy_config
from harness.analyzer import PolicyPackProcess, load_policy_config
from tests.policy.conftest import CONFIG_DIR

MAX_MODULE_LINES = 420
""""No module much over 300-400 lines" (issue 11)."""


@pytest.fixture(scope="module")
def registry() -> ModuleType:
    return pack_registry()


def _package_modules(registry: ModuleType) -> list[ModuleType]:
    package = Path(registry.__file__ or "").parent
    names = [m.name for m in pkgutil.walk_packages([str(package)], prefix=f"{registry.__name__}.")]
    return [__import__(name, fromlist=["_"]) for name in names]


def test_the_pack_enforces_exactly_the_registered_rules_tagged_with_their_family(
    pack: PolicyPackProcess, registry: ModuleType
) -> None:
    expected = [(rule.name, family.name) for family in registry.FAMILIES for rule in family.rules]
    assert [(p.name, p.tag("family:")) for p in pack.policies] == expected
    modules = {rule.name: rule.section.module for rule in registry.all_rules()}
    assert all(p.tag("module:") == modules[p.name] for p in pack.policies)


def test_every_module_that_declares_rules_is_registered(registry: ModuleType) -> None:
    registered = {id(section) for section in registry.all_sections()}
    declaring = [m for m in _package_modules(registry) if hasattr(m, "SECTION")]
    assert declaring, "no rule modules found"
    unregistered = [m.__name__ for m in declaring if id(m.SECTION) not in registered]
    assert not unregistered, f"sections missing from shipsafe_policies.FAMILIES: {unregistered}"
    assert all(section.rules for section in registry.all_sections())


def test_a_rule_name_says_which_module_holds_it(registry: ModuleType) -> None:
    sections = registry.all_sections()
    prefixes = [f"{s.prefix}-" for s in sections]
    assert len(set(prefixes)) == len(prefixes)
    clashes = [(a, b) for a in prefixes for b in prefixes if a != b and b.startswith(a)]
    assert not clashes, f"a prefix must not start another section's prefix: {clashes}"
    for section in sections:
        for rule in section.rules:
            owners = [s.module for s in sections if rule.name.startswith(f"{s.prefix}-")]
            assert owners == [section.module], f"{rule.name} is in {section.module} but its prefix says {owners}"


def test_a_rule_without_its_section_prefix_is_refused(registry: ModuleType) -> None:
    section = registry.all_sections()[0]
    with pytest.raises(ValueError, match=f"misplaced-rule.*{section.prefix}-"):
        section.resource("misplaced-rule", "Checks nothing.", "Nothing to fix.", types=None)
    assert "misplaced-rule" not in {rule.name for rule in section.rules}


def test_no_rule_module_is_much_over_four_hundred_lines(registry: ModuleType) -> None:
    lengths = {m.__name__: len(Path(m.__file__ or "").read_text().splitlines()) for m in _package_modules(registry)}
    assert {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES} == {}


CONFIG_FILES = sorted(CONFIG_DIR.glob("*.json"))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[p.name for p in CONFIG_FILES])
def test_every_config_key_names_a_policy_of_the_pack_and_one_of_its_settings(path: Path, registry: ModuleType) -> None:
    rules = {rule.name: rule for rule in registry.all_rules()}
    for name, value in json.loads(path.read_text()).items():
        if name == "all":
            continue
        assert name in rules, f"{path.name}: {name} is no policy of the pack; the engine would ignore its config"
        settings = set(value) - {"enforcementLevel"} if isinstance(value, dict) else set()
        unknown = settings - set(rules[name].settings)
        allowed = sorted(rules[name].settings)
        assert not unknown, f"{path.name}: {name} has no setting {sorted(unknown)}; allowed: {allowed}"


def test_prod_keeps_its_settings_under_the_current_names() -> None:
    # The settings the platform owner chose for prod reach the policies that read them (not their defaults).
    prod = read_policy_config(CONFIG_DIR / "prod.json")
    for name, own in load_policy_config(CONFIG_DIR / "prod.json").items():
        for key, value in own.items():
            if key != "enforcementLevel":
                assert prod.settings[name][key] == value, f"{name}.{key}"
    assert prod.settings["12f-build-once"]["allowImageBuild"] is False
