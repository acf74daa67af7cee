"""The test kit's throwaway PostgreSQL cluster: it starts, serves fresh databases, and goes away."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.postgres, pytest.mark.cpython_only]


def test_each_test_gets_a_fresh_empty_database(postgres_url: str, postgres_cluster) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            tables = conn.execute(text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")).scalar()
            conn.execute(text("CREATE TABLE t (id int primary key)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
        assert tables == 0
        assert postgres_url.startswith(f"postgresql+psycopg://postgres@127.0.0.1:{postgres_cluster.port}/")
    finally:
        engine.dispose()


def test_a_stopped_cluster_leaves_nothing_behind() -> None:
    from py_agent.testing import PostgresCluster, PostgresUnavailable

    try:
        cluster = PostgresCluster().start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    root = cluster.root
    assert root is not None and (root / "data" / "PG_VERSION").exists()
    cluster.stop()
    assert not root.exists()
