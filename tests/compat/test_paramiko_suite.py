"""paramiko 5.1.0's own test suite, server side swapped to geossh, matches the expected list.

The sdist is fetched with pip at test time (cached in ``~/.cache/geossh``);
the test is skipped only when it cannot be fetched (no network). See
``tests/compat/paramiko_suite.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.compat import paramiko_suite as suite

pytestmark = pytest.mark.interop

#: Files in which every test must pass (no expected failure may ever be listed).
COMPLETE = ("tests/test_client.py", "tests/test_sftp.py", "tests/test_sftp_big.py")


def test_paramiko_suite_matches_expected_failures(tmp_path: Path) -> None:
    try:
        sdist, plugins = suite.fetch(suite.cache_dir())
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot fetch paramiko {suite.PARAMIKO_VERSION}'s sdist: {exc}")
    root = suite.unpack(sdist, tmp_path)
    suite.apply_swap(root / "tests")
    outcomes = suite.run_suite(root, plugins, tmp_path, None)
    expected = suite.load_expected()
    problems = suite.compare(outcomes, expected, partial=False)
    assert not problems, "\n".join([*problems, suite.summary(outcomes)])
    for name in COMPLETE:
        ran = [outcome for test_id, outcome in outcomes.items() if test_id.startswith(name + "::")]
        assert ran.count("passed") > 10 and "failed" not in ran, name
        assert not [test_id for test_id in expected if test_id.startswith(name + "::")]


def test_expected_list_format(tmp_path: Path) -> None:
    """Every entry has a reason; ids are unique; the committed list parses."""
    assert all(reason.split("] ", 1)[1] for reason in suite.load_expected().values())
    bad = tmp_path / "bad.txt"
    bad.write_text("tests/test_x.py::t\n")
    with pytest.raises(ValueError, match="before any reason"):
        suite.load_expected(bad)
    bad.write_text("[k] why\ntests/test_x.py::t\ntests/test_x.py::t\n")
    with pytest.raises(ValueError, match="listed twice"):
        suite.load_expected(bad)
    bad.write_text("[k]\ntests/test_x.py::t\n")
    with pytest.raises(ValueError, match="without a reason"):
        suite.load_expected(bad)


def test_compare_reports_both_directions() -> None:
    expected = {"a::listed": "[k] why", "a::gone": "[k] why"}
    outcomes = {"a::listed": "passed", "a::new": "failed", "a::ok": "passed"}
    assert sorted(suite.compare(outcomes, expected, partial=False)) == [
        "LISTED BUT NOT RUN (renamed or removed?): a::gone",
        "NEW FAILURE: a::new",
        "UNEXPECTED PASS (remove it from the list): a::listed",
    ]
    assert len(suite.compare(outcomes, expected, partial=True)) == 2
