"""Pure decisions: index specs, Milvus rules, input validation, and the drop and create planners."""
