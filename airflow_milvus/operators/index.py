"""The index operators' public import path (example DAGs, docs and provider info use it).

Drop lives in drop_index.py, create/rebuild in create_index.py, their decisions in planning.py.
"""

from __future__ import annotations

from airflow_milvus.operators.create_index import MilvusCreateIndexOperator
from airflow_milvus.operators.drop_index import MilvusDropIndexOperator

__all__ = ["MilvusCreateIndexOperator", "MilvusDropIndexOperator"]
