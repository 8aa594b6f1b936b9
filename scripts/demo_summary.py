"""Print what the latest run of a DAG did, from Airflow's metadata DB: task states and the
operators' results (XCom), in a few lines instead of Airflow's log.

Usage: python scripts/demo_summary.py [dag_id]   (default: milvus_reindex)
"""

from __future__ import annotations

import sys


def _describe(task_id: str, value) -> str:
    """One line per task result; unknown results are shown briefly."""
    if not isinstance(value, (dict, list)):
        return "" if value is None else str(value)[:100]
    if isinstance(value, list):
        if value and all(isinstance(hits, list) and all(isinstance(h, dict) and "distance" in h for h in hits) for hits in value):
            first = value[0]  # a MilvusSearchOperator result: one list of hits per query vector
            nearest = f", nearest at distance {first[0]['distance']:.4f}" if first else ""
            return f"{len(value)} queries; query 1: ids {[h['id'] for h in first][:5]}{nearest}"
        if value and all(isinstance(row, dict) for row in value):  # a MilvusQueryOperator result
            return f"{len(value)} entities, first {str(value[0])[:80]}"
        return f"{value[:5]}"
    if "dropped" in value:
        dropped = ", ".join(f"{s['index_type']} on {s['collection_name']}.{s['field_name']}" for s in value["dropped"])
        released = [c for c, info in (value.get("collections") or {}).items() if info.get("released")]
        return f"dropped {dropped or 'nothing'}" + (f"; released {', '.join(released)}" if released else "")
    if "created" in value:
        created = ", ".join(f"{s['index_type']} on {s['collection_name']}.{s['field_name']}" for s in value["created"])
        return f"built {created or 'nothing new'}; loaded {', '.join(value.get('loaded') or []) or 'nothing'}"
    if "recall" in value:
        return f"recall@{value.get('top_k')} = {value['recall']:.3f} over {value.get('queries')} queries"
    if "rows" in value:
        return f"{value['rows']} rows" + (" (skipped: already imported)" if value.get("skipped") else "")
    return ", ".join(f"{k}={v}" for k, v in list(value.items())[:4])


def main(dag_id: str) -> int:
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id).order_by(DagRun.start_date.desc()).first()
        if run is None:
            print(f"No run of {dag_id} found.")
            return 1
        print(f"\n=== {dag_id}: run {run.run_id} ended {run.state} ===")
        for ti in sorted(run.get_task_instances(session=session), key=lambda t: t.start_date or run.start_date):
            row = (
                session.query(XComModel)
                .filter_by(dag_id=dag_id, run_id=run.run_id, task_id=ti.task_id, key="return_value")
                .one_or_none()
            )
            seconds = f"{ti.duration:5.1f}s" if ti.duration else "     "
            detail = _describe(ti.task_id, XComModel.deserialize_value(row)) if row is not None else ""
            print(f"  {str(ti.state):8} {seconds}  {ti.task_id:16} {detail}")
        return 0 if str(run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "milvus_reindex"))
