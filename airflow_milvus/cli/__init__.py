"""``airflow milvus ...`` commands, registered through the provider info ``cli`` key."""
