"""Apache Airflow provider for Milvus. Importing it never imports pymilvus."""

from __future__ import annotations

__version__ = "0.1.0"
