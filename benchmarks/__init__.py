"""Benchmarks of airflow-milvus: run with ``python -m benchmarks.run`` (see README.md)."""
