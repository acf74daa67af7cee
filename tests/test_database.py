"""The transaction layer on its own: steps, change counts, and the SQLite authorizer.

(Write detection, previews, sealing, history and imports have their own files:
tests/test_trust_*.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy import exc, func, insert, select, text, update
from sqlalchemy.orm import Session

from py_agent.database import Database
from py_agent.demo import Author, Book, Tag, book_tags, create_demo_engine


@pytest.fixture
def db(engine):
    database = Database(engine)
    yield database
    database.close()


def n_authors(engine) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(Author))


def test_changes_are_counted_per_table_for_orm_core_and_raw_sql(db):
    s = db.session
    db.begin_step()
    author = Author(name="Counted")
    s.add(author)
    s.add_all([Book(title=f"ZZB{i}", author=author, genre="FANTASY", price=1) for i in range(3)])
    db.flush()
    s.execute(update(Book).where(Book.title.like("ZZB%")).values(stock=5))
    tag = s.scalars(select(Tag)).first()
    s.execute(insert(book_tags), [{"book_id": b.id, "tag_id": tag.id} for b in author.books])
    s.execute(text("DELETE FROM book_tags WHERE tag_id = :t AND book_id = :b"), {"t": tag.id, "b": author.books[0].id})
    changes = db.changes().tables
    db.commit_step()
    # Net per row: the books were inserted and then updated in the same step, so they
    # show as inserted (with their final values); the link added and removed nets out.
    assert changes["authors"] == {"inserted": 1, "updated": 0, "deleted": 0}
    assert changes["books"] == {"inserted": 3, "updated": 0, "deleted": 0}
    assert changes["book_tags"] == {"inserted": 2, "updated": 0, "deleted": 0}


def test_the_model_cannot_commit_behind_the_loop(db, engine):
    before = n_authors(engine)
    db.begin_step()
    db.session.add(Author(name="Sneaky"))
    db.session.commit()  # only releases the savepoint
    with pytest.raises(exc.DatabaseError, match="not authorized"):
        db.session.execute(text("COMMIT"))
    with pytest.raises(exc.DatabaseError, match="not authorized"):
        db.session.connection().exec_driver_sql("ROLLBACK")
    db.rollback_step()
    assert n_authors(engine) == before


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE ':memory:' AS other",
        "DETACH DATABASE main",
        "SELECT load_extension('libevil')",
        "PRAGMA writable_schema = ON",
    ],
)
def test_the_authorizer_refuses_dangerous_sql(db, sql):
    db.begin_step()
    with pytest.raises(exc.DatabaseError, match="not authorized"):
        db.session.execute(text(sql))
    db.rollback_step()


def test_ordinary_pragmas_and_savepoints_still_work(db):
    db.begin_step()
    assert db.session.execute(text("PRAGMA foreign_keys")).scalar() in (0, 1)
    nested = db.session.begin_nested()
    db.session.add(Author(name="Inner"))
    nested.rollback()
    db.commit_step()


def test_rollback_restores_and_commit_keeps(db, engine):
    before = n_authors(engine)
    db.begin_step()
    db.session.add(Author(name="Gone"))
    db.flush()
    db.rollback_step()
    assert n_authors(engine) == before
    db.begin_step()
    db.session.add(Author(name="Kept"))
    db.flush()
    db.commit_step()
    assert n_authors(engine) == before + 1


def test_objects_survive_across_steps_in_one_session(db):
    db.begin_step()
    author = Author(name="Persistent")
    db.session.add(author)
    db.commit_step()
    db.begin_step()
    author.country = "NZ"  # the object loaded in step one is still attached
    db.flush()
    assert db.changes().tables == {"authors": {"inserted": 0, "updated": 1, "deleted": 0}}
    db.commit_step()


def test_a_file_database_keeps_committed_rows_after_a_failed_step(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = create_demo_engine(url)
    db = Database(engine)
    db.begin_step()
    db.session.add(Author(name="Committed"))
    db.commit_step()
    db.begin_step()
    db.session.add(Author(name="Lost"))
    db.flush()
    db.close()  # a crash mid-step: the open transaction is rolled back
    reader = create_demo_engine(url)
    with Session(reader) as s:
        names = set(s.scalars(select(Author.name)))
    assert "Committed" in names and "Lost" not in names
    engine.dispose(), reader.dispose()


def test_the_progress_handler_stops_a_runaway_query_at_the_deadline(db):
    import time

    db.begin_step()
    db.deadline = time.monotonic() + 0.2
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
    with pytest.raises(exc.OperationalError, match="interrupted"):
        db.session.execute(text(endless)).scalar()
    db.deadline = None
    db.rollback_step()
    db.begin_step()  # the connection is still usable
    assert db.session.execute(text("SELECT 1")).scalar() == 1
    db.rollback_step()
