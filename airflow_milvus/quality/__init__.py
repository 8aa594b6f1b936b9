"""Search quality: exact neighbours and recall maths for the recall gate."""
