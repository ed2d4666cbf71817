"""Speed benchmarks of the plan localchat would use (``localchat bench``)."""

from localchat.benchmark.runner import (
    BenchRequest,
    BenchResult,
    BenchTest,
    check_request,
    depth_for,
    measure,
)

__all__ = ["BenchRequest", "BenchResult", "BenchTest", "check_request", "depth_for", "measure"]
