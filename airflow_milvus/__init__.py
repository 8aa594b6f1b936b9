"""Apache Airflow provider for Milvus. Importing it never imports pymilvus."""

__version__ = "0.1.0"
