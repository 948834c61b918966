"""The request counters and latency histogram as a Prometheus scrape reads them."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from taipan.web.observability import LATENCY_BUCKETS, Metrics


class _Indexer:
    adoptions = resumes = full_loads = 0


class _Runtime:
    indexer = _Indexer()
    jobs = None
    sessions = None  # the state collector's query fails and is skipped, as on a busy database


def _scrape(m: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_counts_and_cumulative_buckets_with_inclusive_bounds():
    m = Metrics(_Runtime())  # type: ignore[arg-type]
    for seconds in (0.0001, 0.001, 0.0025, 0.003, 0.2, 50.0):  # 0.001 and 0.0025 are bounds: le, inclusive
        m.observe_request("repo", "GET", 304, seconds)
    m.observe_request("repo", "GET", 200, 0.02)
    m.observe_request("api", "POST", 201, 0.02)
    s = _scrape(m)
    total = s["taipan_http_requests_total"]
    assert total[(("method", "GET"), ("route", "repo"), ("status", "3xx"))] == 6
    assert total[(("method", "GET"), ("route", "repo"), ("status", "2xx"))] == 1
    assert total[(("method", "POST"), ("route", "api"), ("status", "2xx"))] == 1
    buckets = {dict(k)["le"]: v for k, v in s["taipan_http_request_seconds_bucket"].items()
               if dict(k)["route"] == "repo"}
    assert len(buckets) == len(LATENCY_BUCKETS) + 1
    assert buckets["0.001"] == 2 and buckets["0.0025"] == 3 and buckets["0.005"] == 4
    assert buckets["0.025"] == 5 and buckets["0.25"] == 6 and buckets["30.0"] == 6 and buckets["+Inf"] == 7
    assert s["taipan_http_request_seconds_count"][(("route", "repo"),)] == 7
    assert abs(s["taipan_http_request_seconds_sum"][(("route", "repo"),)] - 50.2266) < 1e-9


def test_label_sets_are_bounded():
    m = Metrics(_Runtime())  # type: ignore[arg-type]
    for i in range(1500):  # methods are the client's choice
        m.observe_request("other", f"M{i}", 405, 0.001)
    assert len(_scrape(m)["taipan_http_requests_total"]) == 1000
