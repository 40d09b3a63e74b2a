"""The one GOPROXY chain parser, the circuit breaker and credential redaction."""

import time

import pytest

from gomirror_proxy import chain
from gomirror_proxy.redact import redact


def test_chain_parse_separators_and_keywords():
    hops = chain.parse("https://a.example/ , https://b.example|file:///srv/store/,direct")
    assert [(h.kind, h.url, h.any_error_falls_through) for h in hops] == [
        ("proxy", "https://a.example", False),
        ("proxy", "https://b.example", True),
        ("file", "/srv/store", False),
        ("direct", "", False),
    ]
    assert chain.proxy_urls("https://a.example,off") == ["https://a.example"]
    assert chain.ends_in_direct("https://a.example|direct")
    assert not chain.ends_in_direct("https://a.example,off,direct")
    assert chain.parse("") == []


def test_hop_labels_carry_no_credentials():
    (hop,) = chain.parse("https://user:t0ken@proxy.example/go")
    assert hop.label == "https://redacted@proxy.example/go"
    assert hop.url == "https://user:t0ken@proxy.example/go"  # still used to connect


def test_breaker_opens_after_failures_and_lets_one_trial_through(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    br = chain.Breaker(threshold=2, cooldown=10)
    assert br.allow()
    br.failure()
    assert br.allow() and not br.is_open
    br.failure()
    assert br.is_open and not br.allow()
    now[0] += 10
    assert br.allow()  # half open: one trial ...
    assert not br.allow()  # ... and the others still fail fast
    br.success()
    assert br.allow() and not br.is_open


@pytest.mark.parametrize("text,want", [
    ("GET https://mirror:s3cr3t@goproxy.example/x: 502",
     "GET https://redacted@goproxy.example/x: 502"),
    ("git ls-remote https://oauth2:ghp_abc:def@git.example/r.git failed",
     "git ls-remote https://redacted@git.example/r.git failed"),
    ("'http://u@h/'", "'http://redacted@h/'"),
    ("no url here, user@example.com", "no url here, user@example.com"),
    ("https://plain.example/path@v1.0.0", "https://plain.example/path@v1.0.0"),
])
def test_redact(text, want):
    assert redact(text) == want
