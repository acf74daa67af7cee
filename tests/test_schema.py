"""Tests for py_agent.schema (schema rendering) and py_agent.demo (demo schema + seed)."""

# No `from __future__ import annotations` here: the models below are defined inside
# functions, and SQLAlchemy must be able to evaluate their annotations.

import enum
import inspect
import re
import textwrap
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Optional

import pytest
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    JSON,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.ext.associationproxy import association_proxy
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    backref,
    declarative_base,
    mapped_column,
    registry,
    relationship,
)

import py_agent.demo.library as demo_library
from py_agent.demo import (
    Author,
    Base as DemoBase,
    Book,
    Customer,
    EBook,
    Genre,
    Order,
    OrderItem,
    OrderStatus,
    Tag,
    book_tags,
    create_demo_engine,
)
from py_agent.schema import SchemaError, mapped_classes, render_schema, schema_symbols


def rough_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def class_block(rendered: str, name: str) -> str:
    """The lines of one rendered class, from its `class` line to the next blank line."""
    match = re.search(rf"^class {name}\(.*?(?=\n\n|\Z)", rendered, re.S | re.M)
    assert match, f"class {name} not rendered:\n{rendered}"
    return match.group(0)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo_text() -> str:
    return render_schema(DemoBase)


class Status(enum.Enum):
    ACTIVE = 1
    RETIRED = 2


def utcnow() -> datetime:
    return datetime.now()


@pytest.fixture(scope="module")
def rich_base() -> type[DeclarativeBase]:
    """A schema exercising the mapping features the renderer must describe."""

    class RichBase(DeclarativeBase):
        pass

    class Timestamped:
        """Mixin: unmapped itself, its columns land on every class using it."""

        created: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())

        @property
        def age_days(self) -> int:
            """Days since created."""
            return (datetime.now() - self.created).days

    class Entity(RichBase):
        """An abstract base: never a table."""

        __abstract__ = True
        id: Mapped[int] = mapped_column(primary_key=True)

    class Person(Timestamped, Entity):
        """Anyone the company knows."""

        __tablename__ = "people"
        __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "person"}
        name: Mapped[str] = mapped_column(String(100), doc="full name")
        type: Mapped[str] = mapped_column(String(20))
        status: Mapped[Status] = mapped_column(default=Status.ACTIVE)
        extra: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
        token: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4, unique=True)
        score = mapped_column("score_value", Integer, server_default=text("0"))

        @hybrid_property
        def shout(self) -> str:
            """The name in capitals."""
            return self.name.upper()

    class Employee(Person):
        """Works here (joined-table inheritance)."""

        __tablename__ = "employees"
        __mapper_args__ = {"polymorphic_identity": "employee"}
        id: Mapped[int] = mapped_column(ForeignKey("people.id"), primary_key=True)
        salary: Mapped[Decimal] = mapped_column(comment="yearly, in EUR")
        manager_id: Mapped[Optional[int]] = mapped_column(ForeignKey("employees.id"))
        manager = relationship(
            "Employee", remote_side=[id], foreign_keys=[manager_id], backref=backref("reports")
        )

        def raise_salary(self, percent: float = 5.0) -> Decimal:
            """Give a raise."""
            return self.salary

    class Contractor(Person):
        """Single-table subclass of Person."""

        __mapper_args__ = {"polymorphic_identity": "contractor"}
        agency: Mapped[Optional[str]] = mapped_column(String(80))

    class Category(RichBase):
        __tablename__ = "categories"
        __table_args__ = (UniqueConstraint("parent_id", "name"),)
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("categories.id"))
        name: Mapped[str] = mapped_column(String(50))
        children: Mapped[list["Category"]] = relationship(back_populates="parent")
        parent: Mapped[Optional["Category"]] = relationship(
            back_populates="children", remote_side=[id]
        )
        live_children: Mapped[list["Category"]] = relationship(
            primaryjoin="and_(Category.id == remote(foreign(Category.parent_id)), "
            "Category.name != 'archived')",
            viewonly=True,
        )

    class Shipment(RichBase):
        __tablename__ = "shipments"
        warehouse: Mapped[str] = mapped_column(String(10), primary_key=True)
        number: Mapped[int] = mapped_column(primary_key=True)
        weight: Mapped[float]
        lines: Mapped[list["ShipmentLine"]] = relationship(
            back_populates="shipment", cascade="all, delete-orphan"
        )
        items = association_proxy("lines", "item")

    class ShipmentLine(RichBase):
        __tablename__ = "shipment_lines"
        __table_args__ = (
            ForeignKeyConstraint(
                ["warehouse", "number"], ["shipments.warehouse", "shipments.number"]
            ),
            CheckConstraint("length(item) > 0"),
        )
        id = Column(Integer, primary_key=True)
        warehouse = Column(String(10), nullable=False)
        number = Column(Integer, nullable=False)
        item = Column(Text, comment="what is shipped")
        fragile = Column(Boolean, default=False, nullable=False)
        shipment = relationship("Shipment", back_populates="lines")

    # A registry holds its classes weakly; keep them alive for the module's tests.
    RichBase.keep_alive = [Person, Employee, Contractor, Category, Shipment, ShipmentLine]
    return RichBase


@pytest.fixture(scope="module")
def rich_text(rich_base: type[DeclarativeBase]) -> str:
    return render_schema(rich_base)


# --------------------------------------------------------------------------- demo rendering


def test_demo_renders_every_class_including_subclass(demo_text: str) -> None:
    for cls in (Author, Book, EBook, Tag, Customer, Order, OrderItem):
        assert f"class {cls.__name__}(" in demo_text
    ebook = class_block(demo_text, "EBook")
    assert ebook.startswith("class EBook(Book):")
    assert "single-table" in ebook and "identity 'ebook'" in ebook
    # The subclass shows only its own columns; inherited ones stay on Book.
    assert "file_size_kb: int | None" in ebook
    assert "title:" not in ebook
    assert "polymorphic_on kind" in class_block(demo_text, "Book")


def test_demo_docstrings_and_comments(demo_text: str) -> None:
    for cls in (Author, Book, EBook, Tag, Customer, Order, OrderItem):
        doc = " ".join(cls.__doc__.split())
        assert f'"""{doc}"""' in class_block(demo_text, cls.__name__)
    assert "# ISO 3166-1 alpha-2 code" in class_block(demo_text, "Author")
    assert "stock: int default=0  # copies on the shelf" in demo_text


def test_demo_types_keys_and_defaults(demo_text: str) -> None:
    author = class_block(demo_text, "Author")
    assert "id: int PK" in author
    assert "name: str(200) unique" in author
    assert "born: date | None" in author
    book = class_block(demo_text, "Book")
    assert "author_id: int FK authors.id" in book
    assert "price: Decimal(10,2)" in book
    assert "title: str(300) index" in book
    assert "constraints: check(price >= 0)" in book
    order = class_block(demo_text, "Order")
    assert "placed_at: datetime default=datetime.now()" in order
    assert "status: OrderStatus default=OrderStatus.PENDING" in order
    assert "customer_id: int FK customers.id index" in order
    item = class_block(demo_text, "OrderItem")  # composite primary key
    assert "order_id: int PK FK orders.id" in item and "book_id: int PK FK books.id" in item


def test_demo_enums_with_values(demo_text: str) -> None:
    assert "class Genre(enum.Enum): FICTION='fiction'; FANTASY='fantasy';" in demo_text
    for member in OrderStatus:
        assert f"{member.name}={member.value!r}" in demo_text
    assert "genre: Genre\n" in demo_text
    # A string-list Enum has no class: its values are spelled out.
    assert "file_format: Literal['epub', 'pdf', 'mobi'] | None" in demo_text


def test_demo_relationships(demo_text: str) -> None:
    author = class_block(demo_text, "Author")
    assert "books: list[Book]  rel back=Book.author cascade=all,delete-orphan" in author
    assert "author: Author  rel back=Author.books" in class_block(demo_text, "Book")
    # many-to-many through the association table, which is itself described
    assert "tags: list[Tag]  rel secondary=book_tags back=Tag.books" in demo_text
    assert "books: list[Book]  rel secondary=book_tags back=Book.tags" in demo_text
    assert "table book_tags:" in demo_text
    assert "book_id: int PK FK books.id ondelete=CASCADE" in demo_text
    assert "tag_id: int PK FK tags.id ondelete=CASCADE" in demo_text


def test_demo_python_members(demo_text: str) -> None:
    assert "line_total: Decimal hybrid property" in class_block(demo_text, "OrderItem")
    assert "total: Decimal property, Python only  # Sum of line_total" in demo_text


def test_demo_rendering_is_shorter_than_source(demo_text: str) -> None:
    source = inspect.getsource(demo_library)
    char_ratio = len(demo_text) / len(source)
    token_ratio = rough_tokens(demo_text) / rough_tokens(source)
    assert char_ratio <= 0.7, char_ratio
    assert token_ratio <= 0.7, token_ratio


def test_rendering_is_deterministic(demo_text: str) -> None:
    assert render_schema(DemoBase) == demo_text
    assert render_schema(DemoBase.registry) == demo_text


def test_mapped_classes_order_and_content() -> None:
    classes = mapped_classes(DemoBase)
    assert classes == [Author, Book, EBook, Tag, Customer, Order, OrderItem]
    assert mapped_classes(DemoBase.registry) == classes


def test_schema_symbols_demo() -> None:
    symbols = schema_symbols(DemoBase)
    for cls in (Author, Book, EBook, Tag, Customer, Order, OrderItem):
        assert symbols[cls.__name__] is cls
    assert symbols["Genre"] is Genre
    assert symbols["OrderStatus"] is OrderStatus
    assert symbols["book_tags"] is book_tags
    assert "Base" not in symbols


# --------------------------------------------------------------------------- rich schema


def test_abstract_base_and_mixin(rich_base: type[DeclarativeBase], rich_text: str) -> None:
    names = [cls.__name__ for cls in mapped_classes(rich_base)]
    assert "Entity" not in names and "Timestamped" not in names
    assert "class Entity(" not in rich_text and "class Timestamped(" not in rich_text
    person = class_block(rich_text, "Person")
    # Columns from the abstract base and the mixin are rendered on the class that has them.
    assert "id: int PK" in person
    assert "created: datetime default=utcnow() server_default=now()" in person
    assert "age_days: int property, Python only  # Days since created." in person
    # ...once: not again on subclasses.
    assert "age_days" not in class_block(rich_text, "Employee")


def test_joined_and_single_table_inheritance(rich_base: type[DeclarativeBase], rich_text: str) -> None:
    names = [cls.__name__ for cls in mapped_classes(rich_base)]
    assert {"Person", "Employee", "Contractor"} <= set(names)
    assert names.index("Person") < names.index("Employee")
    employee = class_block(rich_text, "Employee")
    assert employee.startswith("class Employee(Person):  # table employees, joined-table inheritance")
    assert "identity 'employee'" in employee
    assert "id: int PK FK people.id" in employee
    assert "salary: Decimal  # yearly, in EUR" in employee
    assert "def raise_salary(self, percent: float = 5.0) -> Decimal  # Give a raise." in employee
    contractor = class_block(rich_text, "Contractor")
    assert "single-table inheritance, rows in table people" in contractor
    assert "agency: str(80) | None" in contractor
    assert "polymorphic_on type" in class_block(rich_text, "Person")


def test_column_details(rich_text: str) -> None:
    person = class_block(rich_text, "Person")
    assert "name: str(100)  # full name" in person
    assert "status: Status default=Status.ACTIVE" in person
    assert "extra: JSON | None" in person
    assert "token: UUID unique default=uuid4()" in person
    assert "score: int | None col=score_value server_default=0" in person
    assert "shout: str hybrid property" in person and "The name in capitals." in person
    assert "class Status(enum.Enum): ACTIVE=1; RETIRED=2" in rich_text


def test_self_referential_and_backref(rich_text: str) -> None:
    category = class_block(rich_text, "Category")
    assert "children: list[Category]  rel via parent_id back=Category.parent" in category
    assert "parent: Category | None  rel via parent_id back=Category.children" in category
    assert "constraints: unique(parent_id, name)" in category
    # A custom join condition is shown as such.
    assert "live_children: list[Category]  rel on " in category and "archived" in category
    assert "viewonly" in category
    employee = class_block(rich_text, "Employee")
    # `reports` exists only through backref=, so only the mapper knows about it.
    assert "manager: Employee | None  rel via manager_id back=Employee.reports" in employee
    assert "reports: list[Employee]  rel via manager_id back=Employee.manager" in employee


def test_legacy_columns_composite_keys_and_proxies(rich_text: str) -> None:
    shipment = class_block(rich_text, "Shipment")
    assert "warehouse: str(10) PK" in shipment and "number: int PK" in shipment
    assert "items: association proxy lines.item" in shipment
    line = class_block(rich_text, "ShipmentLine")
    assert "item: str | None  # what is shipped" in line
    assert "fragile: bool default=False" in line
    assert "FK(warehouse, number) -> (shipments.warehouse, shipments.number)" in line
    assert "check(length(item) > 0)" in line
    assert "shipment: Shipment  rel back=Shipment.lines" in line


def test_schema_symbols_rich(rich_base: type[DeclarativeBase]) -> None:
    symbols = schema_symbols(rich_base)
    assert set(symbols) == {
        "Person", "Employee", "Contractor", "Category", "Shipment", "ShipmentLine", "Status",
    }
    assert symbols["Status"] is Status


def test_legacy_declarative_base_and_registry() -> None:
    LegacyBase = declarative_base()

    class Widget(LegacyBase):
        """A legacy-style model."""

        __tablename__ = "widgets"
        id = Column(Integer, primary_key=True)
        label = Column(String(30), nullable=False, unique=True)

    reg = registry()
    parts = Table("parts", reg.metadata, Column("id", Integer, primary_key=True), Column("class", String))

    class Gadget:
        pass

    reg.map_imperatively(Gadget, Table("gadgets", reg.metadata, Column("id", Integer, primary_key=True)))

    rendered = render_schema(LegacyBase)
    assert '"""A legacy-style model."""' in rendered
    assert "label: str(30) unique" in rendered
    assert mapped_classes(LegacyBase) == [Widget]
    assert mapped_classes(reg) == [Gadget]
    assert "class Gadget():  # table gadgets" in render_schema(reg)
    # `class` is a keyword, but the table name `parts` is fine as a symbol.
    assert schema_symbols(reg) == {"Gadget": Gadget, "parts": parts}


# --------------------------------------------------------------------------- exec'd code


EXEC_SOURCE = '''
import enum
from typing import Optional
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

class GenBase(DeclarativeBase):
    pass

class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"

class Shelf(GenBase):
    """A shelf, defined in code that has no source file."""
    __tablename__ = "shelves"
    id: Mapped[int] = mapped_column(primary_key=True)
    colour: Mapped[Colour]
    items: Mapped[list["Item"]] = relationship(back_populates="shelf")

class Item(GenBase):
    """Something on a shelf."""
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[Optional[int]] = mapped_column(ForeignKey("shelves.id"))
    kind: Mapped[str] = mapped_column(String(10))
    shelf: Mapped[Optional[Shelf]] = relationship(back_populates="items")
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "item"}

class Jar(Item):
    """A subclass defined in the same exec'd code."""
    lid: Mapped[Optional[bool]]
    __mapper_args__ = {"polymorphic_identity": "jar"}
'''


def test_exec_defined_classes_render_without_source() -> None:
    namespace: dict[str, Any] = {"__name__": "py_agent_generated_models"}
    code = compile(textwrap.dedent(EXEC_SOURCE), "<generated>", "exec", dont_inherit=True)
    exec(code, namespace)
    # This is what defeated source dumps: there is no file to read.
    with pytest.raises((OSError, TypeError)):
        inspect.getsource(namespace["Shelf"])

    rendered = render_schema(namespace["GenBase"])
    assert '"""A shelf, defined in code that has no source file."""' in rendered
    assert "class Colour(enum.Enum): RED='red'; BLUE='blue'" in rendered
    assert "colour: Colour" in rendered
    assert "items: list[Item]  rel back=Item.shelf" in rendered
    assert "shelf_id: int | None FK shelves.id" in rendered
    assert "class Jar(Item):  # single-table inheritance" in rendered
    assert "lid: bool | None" in rendered
    assert [c.__name__ for c in mapped_classes(namespace["GenBase"])] == ["Shelf", "Item", "Jar"]
    assert set(schema_symbols(namespace["GenBase"])) == {"Shelf", "Item", "Jar", "Colour"}


# --------------------------------------------------------------------------- errors


def test_broken_mapper_raises_schema_error() -> None:
    class BrokenBase(DeclarativeBase):
        pass

    class Shelf(BrokenBase):
        __tablename__ = "broken_shelves"
        id: Mapped[int] = mapped_column(primary_key=True)
        books = relationship("NoSuchBook")

    try:
        with pytest.raises(SchemaError) as caught:
            render_schema(BrokenBase)
        message = str(caught.value)
        assert "Shelf" in message
        assert "NoSuchBook" in message
        assert "relationship()" in message  # says what to fix
        assert "Traceback" not in message
        # A second attempt (SQLAlchemy now raises a different, generic error) is just as clear.
        with pytest.raises(SchemaError, match="Shelf.*NoSuchBook"):
            schema_symbols(BrokenBase)
        # Other schemas are not affected.
        assert "class Author(" in render_schema(DemoBase)
    finally:
        BrokenBase.registry.dispose()


def test_missing_foreign_key_raises_schema_error() -> None:
    class NoFkBase(DeclarativeBase):
        pass

    class Parent(NoFkBase):
        __tablename__ = "nofk_parents"
        id: Mapped[int] = mapped_column(primary_key=True)
        children: Mapped[list["Child"]] = relationship()

    class Child(NoFkBase):
        __tablename__ = "nofk_children"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int]  # no ForeignKey: SQLAlchemy cannot find the join

    try:
        with pytest.raises(SchemaError, match=r"Parent.*ForeignKey"):
            render_schema(NoFkBase)
    finally:
        NoFkBase.registry.dispose()


def test_not_a_base_raises_schema_error() -> None:
    with pytest.raises(SchemaError, match="declarative base"):
        render_schema(object())


def test_duplicate_class_names_raise_schema_error() -> None:
    class DupBase(DeclarativeBase):
        pass

    def make(table: str) -> type:
        class Thing(DupBase):
            __module__ = f"models_{table}"  # two modules, one class name
            __tablename__ = table
            id: Mapped[int] = mapped_column(primary_key=True)

        return Thing

    # Keep the classes alive: SQLAlchemy's registry holds them weakly, so a GC pass
    # between definition and rendering would otherwise make this test flaky.
    kept = [make("things_a"), make("things_b")]
    with pytest.raises(SchemaError, match="named Thing"):
        render_schema(DupBase)
    assert len(kept) == 2


# --------------------------------------------------------------------------- demo data


@pytest.fixture()
def demo_session():
    engine = create_demo_engine()
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_seed_counts(demo_session: Session) -> None:
    def count(model: Any) -> int:
        return demo_session.scalar(select(func.count()).select_from(model))

    assert count(Author) == 10
    assert count(Book) == 26
    assert 0 < count(EBook) < count(Book)
    assert count(Customer) == 8
    assert count(Order) == 15
    assert count(Tag) == 5
    assert count(OrderItem) >= 15
    assert demo_session.scalar(select(func.count()).select_from(book_tags)) > 0
    # The demo request "add Tolkien and two of his books" must have something to do.
    assert demo_session.scalar(select(Author).where(Author.name.like("%Tolkien%"))) is None
    years = {o.placed_at.year for o in demo_session.scalars(select(Order))}
    assert years == {2025, 2026}


def test_customers_who_bought_nothing_this_year(demo_session: Session) -> None:
    year = date.today().year
    start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    bought = (
        select(Order.customer_id)
        .where(Order.placed_at >= start, Order.placed_at < end)
        .where(Order.status != OrderStatus.CANCELLED)
    )
    idle = demo_session.scalars(select(Customer.name).where(Customer.id.not_in(bought))).all()
    assert idle
    assert len(idle) < 8 or year not in (2025, 2026)


def test_demo_data_is_usable_through_the_mapping(demo_session: Session) -> None:
    order = demo_session.scalars(select(Order).order_by(Order.id)).first()
    assert order is not None and order.total == sum(i.quantity * i.unit_price for i in order.items)
    # The hybrid works in SQL too.
    total = demo_session.scalar(select(func.sum(OrderItem.line_total)))
    assert total == sum(o.total for o in demo_session.scalars(select(Order)))
    ebook = demo_session.scalars(select(EBook)).first()
    assert ebook is not None and ebook.kind == "ebook" and ebook.file_format in ("epub", "pdf", "mobi")
    tagged = demo_session.scalars(select(Book).where(Book.tags.any(Tag.name == "classic"))).all()
    assert len(tagged) >= 5
