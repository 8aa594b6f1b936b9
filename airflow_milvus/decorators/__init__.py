"""TaskFlow decorators of the provider: ``@task.milvus``."""
