"""Helpers of ``bench/compare``: the workload table, the two sides, the report."""
