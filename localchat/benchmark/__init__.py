"""Speed benchmarks of the plan localchat would use (``localchat bench``)."""

from localchat.benchmark.runner import BenchRequest, BenchResult, BenchTest, run_bench

__all__ = ["BenchRequest", "BenchResult", "BenchTest", "run_bench"]
