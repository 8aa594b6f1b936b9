"""Bulk import: file checks and reading, import-job state, and row checks against a schema."""
