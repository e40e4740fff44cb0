"""The hub's own request-duration histogram: buckets, sums and its Prometheus text."""

from __future__ import annotations

from prometheus_client import generate_latest

from gateway.request_metrics import BOUNDS, RequestDurations


def _lines(durations: RequestDurations) -> list[str]:
    return generate_latest(durations.registry).decode().splitlines()


def test_each_duration_lands_in_the_first_bucket_at_or_above_it_and_buckets_are_cumulative() -> None:
    durations = RequestDurations()
    route = "/v1/transactions/{transaction_id}"
    for seconds in (0.001, 0.005, 0.0051, 0.3, 42.0):
        durations.record("GET", 200, route, seconds)
    durations.record("POST", 202, "/v1/journals", 0.02)
    lines = _lines(durations)
    labels = f'http_request_method="GET",http_response_status_code="200",http_route="{route}"'

    def bucket(le: str) -> float:
        (line,) = [x for x in lines if x.startswith(f'http_server_request_duration_seconds_bucket{{{labels},le="{le}"')]
        return float(line.rsplit(" ", 1)[1])

    assert bucket("0.005") == 2  # 0.001 and exactly 0.005 (le means "less than or equal")
    assert bucket("0.01") == 3
    assert bucket("0.25") == 3
    assert bucket("0.5") == 4
    assert bucket("10.0") == 4
    assert bucket("+Inf") == 5
    (count,) = [x for x in lines if x.startswith(f"http_server_request_duration_seconds_count{{{labels}}}")]
    assert count.endswith(" 5.0")
    (total,) = [x for x in lines if x.startswith(f"http_server_request_duration_seconds_sum{{{labels}}}")]
    assert abs(float(total.rsplit(" ", 1)[1]) - 42.3111) < 1e-9
    assert any('http_route="/v1/journals"' in x and 'le="0.025"' in x and x.endswith(" 1.0") for x in lines)
    assert len([x for x in lines if "_bucket{" in x]) == 2 * (len(BOUNDS) + 1)


def test_nothing_recorded_exposes_the_family_without_series() -> None:
    lines = _lines(RequestDurations())
    assert "# TYPE http_server_request_duration_seconds histogram" in lines
    assert not [x for x in lines if x.startswith("http_server_request_duration_seconds_bucket")]
