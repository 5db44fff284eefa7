"""A prelaunched pack process is taken only by a start of exactly the same process, and killed when nobody does."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from harness import pack_launch
from harness.analyzer import POLICY_DIR
from harness.pack_launch import PackLaunch, prelaunch, take_prelaunched
from harness.pack_launch import pack_launch as launch_of

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")


def _sleeper(tmp_path: Path, **environment: str) -> PackLaunch:
    return PackLaunch(tmp_path, SLEEPER, tuple(sorted(environment.items())))


def test_a_prelaunched_process_is_taken_by_the_same_launch_only(tmp_path: Path) -> None:
    launch = _sleeper(tmp_path, PULUMI_DRY_RUN="true")
    prelaunch(launch)
    prelaunch(launch)  # already running: not a second process
    assert take_prelaunched(_sleeper(tmp_path, PULUMI_DRY_RUN="false")) is None
    assert take_prelaunched(dataclasses.replace(launch, pack_dir=tmp_path / "other")) is None
    taken = take_prelaunched(launch)
    assert taken is not None
    process, stderr = taken
    assert process.poll() is None
    assert take_prelaunched(launch) is None  # taken once
    process.kill()
    process.wait()
    assert process.stdout is not None
    process.stdout.close()
    stderr.close()


def test_a_process_nobody_took_is_killed_at_exit(tmp_path: Path) -> None:
    launch = _sleeper(tmp_path, PULUMI_STACK="left")
    prelaunch(launch)
    process, _ = pack_launch._PRELAUNCHED[launch]
    pack_launch.stop_untaken()
    assert process.poll() is not None
    assert not pack_launch._PRELAUNCHED


def test_the_launch_is_the_engines_plugin_start() -> None:
    launch = launch_of(POLICY_DIR, project="shipsafe", stack="staging", dry_run=False, stack_config={"a:b": "c"})
    environment = dict(launch.environment)
    assert launch.argv[1:] == ("-u", "-m", "pulumi.policy", pack_launch.PLACEHOLDER_ENGINE, ".")
    assert (environment["PULUMI_STACK"], environment["PULUMI_DRY_RUN"]) == ("staging", "false")
    assert environment["PULUMI_CONFIG"] == '{"a:b": "c"}'
    assert launch.pack_dir == POLICY_DIR
