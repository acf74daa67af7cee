"""The built-in demo: a small bookshop schema (``library``) and its seed data (``seed``).

Used by the browser app, the README example and the tests.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from .library import (
    Author,
    Base,
    Book,
    Customer,
    EBook,
    Genre,
    Order,
    OrderItem,
    OrderStatus,
    Tag,
    book_tags,
)
from .seed import seed

__all__ = [
    "Author",
    "Base",
    "Book",
    "Customer",
    "EBook",
    "Genre",
    "Order",
    "OrderItem",
    "OrderStatus",
    "Tag",
    "book_tags",
    "create_demo_engine",
    "seed",
]


def create_demo_engine(url: str = "sqlite://") -> Engine:
    """An engine whose database holds the demo tables and seed rows.

    The default is one in-memory SQLite database shared by every connection of the engine
    (``StaticPool``) and usable from any thread. For another URL the tables are created if
    missing and the rows are seeded only when the database has no authors yet.
    """
    if url in ("sqlite://", "sqlite:///:memory:"):
        engine = create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = create_engine(url)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        if session.scalar(select(Author.id).limit(1)) is None:
            seed(session)
    return engine
