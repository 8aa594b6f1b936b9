"""The CLI applies the plan it showed: what changes between the prompt and the answer is not touched."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import VECTOR_INDEX, index_summary, make_collection
from tests.test_cli import AIRFLOW

pytestmark = pytest.mark.slow  # a real `airflow` subprocess


def test_drop_applies_the_plan_it_showed(milvus_uri, milvus_conn, collection_name):
    shown = f"{collection_name}_a"
    make_collection(milvus_uri, shown, rows=20, indexes=(VECTOR_INDEX,))
    cli = subprocess.Popen(
        [AIRFLOW, "milvus", "index", "drop", "-c", f"{collection_name}_*", "--conn-id", milvus_conn, "-o", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    try:
        prompt = ""
        while "Drop 1 index(es)?" not in prompt:  # the plan is on screen, the answer not given yet
            line = cli.stderr.readline()
            assert line, f"CLI ended before asking: {prompt}"
            prompt += line if "\n" in line else line + "\n"
            if "index(es)?" in line:
                break
        assert f"{shown}.vec" in prompt
        late = f"{collection_name}_b"  # matches the glob, but was not shown
        make_collection(milvus_uri, late, rows=20, indexes=(VECTOR_INDEX,))
        out, err = cli.communicate("y\n", timeout=300)
    finally:
        cli.kill()
    assert cli.returncode == 0, err
    assert index_summary(milvus_uri, shown) == {}
    assert index_summary(milvus_uri, late) == {"vec": ("vec", "HNSW", "L2")}
