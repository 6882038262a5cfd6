"""The torture suite (tests/torture.py) at its reduced CI scale: every trial, no failures.

``make torture`` runs the full counts and writes docs/RELIABILITY.md.
"""

from __future__ import annotations

import pytest

import torture


@pytest.mark.slow
@pytest.mark.parametrize("name", list(torture.TRIALS))
def test_trial_at_ci_scale(name, tmp_path):
    trial = torture.run_trial(name, torture.SCALES["ci"], tmp_path / name)
    if trial.skipped:  # a trial that mounts a filesystem, without root
        pytest.skip(trial.skipped)
    assert trial.failures == [], trial.failures[:5]
    assert trial.figures, "the trial counted nothing"


def test_a_broken_cache_is_caught(tmp_path):
    """The trials' checker sees wrong results: a module serving another value is reported."""
    tree, expected, _ = torture.make_tree(tmp_path, 12, seed=9)
    env = torture.environ(tmp_path, tmp_path / "store")
    assert torture.check_run(tmp_path, tree, expected, env) == []
    victim = tree / "pkg3" / "mod0003.py"
    victim.write_text(victim.read_text().replace("VALUE = ", "VALUE = 1 + "))
    bad = torture.check_run(tmp_path, tree, expected, env)
    assert len(bad) == 1 and bad[0].startswith("pkg3.mod0003:")
