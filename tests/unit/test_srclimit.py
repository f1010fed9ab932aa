"""geossh.srclimit: per-source startups and penalties, with the clock passed in."""

from __future__ import annotations

import pytest

from geossh.runner.srclimit import (
    PenaltyPolicy,
    SourceLimits,
    parse_duration,
    parse_netblock,
    parse_penalties,
    source_block,
)


def test_parse_penalties() -> None:
    assert parse_penalties("yes") == PenaltyPolicy()
    assert parse_penalties("no") is None and parse_penalties(None) is None
    policy = parse_penalties("authfail:1m noauth:2 grace-exceeded:30s max:1h min:5s")
    assert policy is not None
    assert (policy.authfail, policy.noauth, policy.grace_exceeded) == (60, 2, 30)
    assert (policy.max, policy.min) == (3600, 5)
    policy = parse_penalties("max-sources4:10 overflow:deny-all")
    assert policy is not None and policy.max_sources == 10 and policy.overflow_deny
    for bad in ("authfail", "authfail:x", "bogus:1s", "overflow:maybe", "max-sources4:0"):
        with pytest.raises(ValueError):
            parse_penalties(bad)


def test_parse_duration_and_netblock() -> None:
    assert parse_duration("90") == 90 and parse_duration("1.5m") == 90
    with pytest.raises(ValueError):
        parse_duration("-1s")
    assert parse_netblock("24") == (24, 128) and parse_netblock("32:64") == (32, 64)
    for bad in ("33", "a", "1:2:3", "8:129"):
        with pytest.raises(ValueError):
            parse_netblock(bad)


def test_source_blocks() -> None:
    assert source_block("192.0.2.7") == "192.0.2.7/32"
    assert source_block("192.0.2.7", (24, 128)) == "192.0.2.0/24"
    assert source_block("2001:db8::1", (32, 48)) == "2001:db8::/48"
    assert source_block("::ffff:192.0.2.7", (24, 64)) == "192.0.2.0/24"
    assert source_block("fe80::1%eth0") == "fe80::1/128"
    assert source_block("unknown") == "unknown"


def test_per_source_max_startups() -> None:
    limits = SourceLimits(per_source_max_startups=2, netblock=(24, 128))
    for host in ("192.0.2.1", "192.0.2.2"):
        assert limits.refusal(host, 0) is None
        limits.started(host)
    assert "PerSourceMaxStartups" in (limits.refusal("192.0.2.3", 0) or "")  # same /24
    assert limits.refusal("198.51.100.1", 0) is None
    limits.finished("192.0.2.1")
    assert limits.refusal("192.0.2.3", 0) is None
    limits.finished("192.0.2.2")
    assert limits.unauthenticated == {}
    with pytest.raises(ValueError):
        SourceLimits(per_source_max_startups=0)


def test_penalties_accumulate_to_min_then_expire() -> None:
    limits = SourceLimits(penalties=PenaltyPolicy(authfail=5, min=15, max=600))
    host = "192.0.2.9"
    assert not limits.penalise(host, "authfail", 100)
    assert not limits.penalise(host, "authfail", 100)
    assert limits.refusal(host, 100) is None  # 10 s accrued: below the minimum
    assert limits.penalise(host, "authfail", 100)  # 15 s: enforced from now on
    assert not limits.penalise(host, "authfail", 100)  # already enforced
    refusal = limits.refusal(host, 101)
    assert refusal is not None and "authfail" in refusal
    assert limits.penalised(101) == {"192.0.2.9/32": 19}
    assert limits.refusal("192.0.2.10", 101) is None  # other sources are not affected
    assert limits.refusal(host, 120) is None  # expired and forgotten
    assert limits.penalised(120) == {}


def test_penalties_are_capped_at_max_and_ignore_good_endings() -> None:
    limits = SourceLimits(penalties=PenaltyPolicy(crash=90, min=15, max=100))
    for _ in range(10):
        limits.penalise("192.0.2.1", "crash", 0)
    assert limits.penalised(0) == {"192.0.2.1/32": 100}
    assert not limits.penalise("192.0.2.2", "authenticated", 0)
    assert not SourceLimits().penalise("192.0.2.3", "crash", 0)  # penalties off


def test_exempt_sources() -> None:
    policy = PenaltyPolicy(noauth=60, min=1, exempt=("10.0.0.0/8", "::1"))
    limits = SourceLimits(penalties=policy)
    assert not limits.penalise("10.1.2.3", "noauth", 0)
    assert not limits.penalise("::1", "noauth", 0)
    assert limits.penalise("192.0.2.1", "noauth", 0)


@pytest.mark.parametrize("deny", [False, True])
def test_table_overflow(deny: bool) -> None:
    policy = PenaltyPolicy(noauth=60, min=1, max_sources=2, overflow_deny=deny)
    limits = SourceLimits(penalties=policy)
    assert limits.penalise("192.0.2.1", "noauth", 0)
    assert limits.penalise("192.0.2.2", "noauth", 0)
    assert not limits.penalise("192.0.2.3", "noauth", 0)  # not tracked: table full
    assert (limits.refusal("192.0.2.4", 1) is not None) is deny
    assert limits.refusal("192.0.2.4", 61) is None  # expired entries make room
