"""Demo schema: a small bookshop. Seed data lives in seed.py."""

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Optional

from sqlalchemy import CheckConstraint, Column, Enum, ForeignKey, Numeric, String, Table
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Genre(enum.Enum):
    FICTION = "fiction"
    FANTASY = "fantasy"
    SCIENCE_FICTION = "science fiction"
    ROMANCE = "romance"
    HORROR = "horror"
    NON_FICTION = "non-fiction"


class OrderStatus(enum.Enum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


book_tags = Table(
    "book_tags",
    Base.metadata,
    Column("book_id", ForeignKey("books.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True),
)


class Author(Base):
    """A person who writes books. Deleting an author deletes their books."""

    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    born: Mapped[Optional[date]]
    country: Mapped[Optional[str]] = mapped_column(String(2), comment="ISO 3166-1 alpha-2 code")

    books: Mapped[list["Book"]] = relationship(back_populates="author", cascade="all, delete-orphan")


class Book(Base):
    """A title the shop sells. Printed books are plain Book rows; e-books are EBook rows."""

    __tablename__ = "books"
    __table_args__ = (CheckConstraint("price >= 0"),)
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "book"}

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    genre: Mapped[Genre]
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    published: Mapped[Optional[date]]
    stock: Mapped[int] = mapped_column(default=0, comment="copies on the shelf")
    kind: Mapped[str] = mapped_column(String(20))

    author: Mapped[Author] = relationship(back_populates="books")
    tags: Mapped[list["Tag"]] = relationship(secondary=book_tags, back_populates="books")


class EBook(Book):
    """A downloadable book, stored in the books table (single-table inheritance)."""

    __mapper_args__ = {"polymorphic_identity": "ebook"}

    file_format: Mapped[Optional[str]] = mapped_column(Enum("epub", "pdf", "mobi", name="file_format"))
    file_size_kb: Mapped[Optional[int]]


class Tag(Base):
    """A subject label such as 'classic' or 'staff pick'."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)

    books: Mapped[list[Book]] = relationship(secondary=book_tags, back_populates="tags")


class Customer(Base):
    """Someone with an account at the shop."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    joined: Mapped[date] = mapped_column(default=date.today)

    orders: Mapped[list["Order"]] = relationship(back_populates="customer")


class Order(Base):
    """A purchase by one customer; its books are in items."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    placed_at: Mapped[datetime] = mapped_column(default=datetime.now)
    status: Mapped[OrderStatus] = mapped_column(default=OrderStatus.PENDING)

    customer: Mapped[Customer] = relationship(back_populates="orders")
    items: Mapped[list["OrderItem"]] = relationship(back_populates="order", cascade="all, delete-orphan")

    @property
    def total(self) -> Decimal:
        """Sum of line_total over the items."""
        return sum((item.line_total for item in self.items), Decimal("0"))


class OrderItem(Base):
    """One line of an order: a book, how many copies, and the price paid per copy."""

    __tablename__ = "order_items"
    __table_args__ = (CheckConstraint("quantity > 0"),)

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(default=1)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2), comment="price when ordered")

    order: Mapped[Order] = relationship(back_populates="items")
    book: Mapped[Book] = relationship()

    @hybrid_property
    def line_total(self) -> Decimal:
        """quantity * unit_price; also usable in queries."""
        return self.quantity * self.unit_price
