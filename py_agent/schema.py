"""Describe a SQLAlchemy declarative schema for a language model's system prompt.

The description is rendered from SQLAlchemy's registry and mappers, not from source text:
``inspect.getsource`` fails for classes without a source file (Pyodide, ``exec``'d modules)
and a source dump misses what SQLAlchemy adds at configuration time (backrefs, inherited
tables). The output is compact Python-like pseudo-code, for example::

    class Genre(enum.Enum): FICTION='fiction'; FANTASY='fantasy'

    class Book(Base):  # table books; polymorphic_on kind; identity 'book'
        \"\"\"A title the shop sells.\"\"\"
        id: int PK
        title: str(300) index
        author_id: int FK authors.id
        price: Decimal(10,2)
        published: date | None
        author: Author  rel back=Author.books
        tags: list[Tag]  rel secondary=book_tags back=Tag.books
        constraints: check(price >= 0)

Public API: :func:`mapped_classes`, :func:`render_schema`, :func:`schema_symbols` and
:class:`SchemaError`.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import keyword
import re
from typing import Any, Iterable

import sqlalchemy
from sqlalchemy import exc as sa_exc
from sqlalchemy import types as sqltypes
from sqlalchemy.ext.associationproxy import AssociationProxy
from sqlalchemy.ext.hybrid import hybrid_method, hybrid_property
from sqlalchemy.orm import (
    ColumnProperty,
    CompositeProperty,
    Mapper,
    RelationshipProperty,
    SynonymProperty,
    registry as Registry,
)
from sqlalchemy.orm.interfaces import MANYTOONE
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, ColumnClause
from sqlalchemy.sql.schema import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
)

try:  # Python 3.14+ (Pyodide 314): annotations are evaluated lazily
    import annotationlib  # type: ignore[import-not-found]
except ImportError:  # CPython 3.11-3.13
    annotationlib = None

__all__ = ["SchemaError", "mapped_classes", "render_schema", "schema_symbols"]

# One line that tells the model how to read the notation below it.
LEGEND = (
    "# SQLAlchemy ORM schema. `T | None` = nullable, else NOT NULL; PK primary key;"
    " FK foreign key (table.column); rel = relationship, back = its reverse attribute;"
    " default= applies on insert."
)

# The cascade SQLAlchemy applies when none is given; only other cascades are rendered.
_DEFAULT_CASCADE = frozenset({"save-update", "merge"})
# What cascade="all" expands to.
_ALL_CASCADE = frozenset({"save-update", "merge", "refresh-expire", "expunge", "delete"})


class SchemaError(Exception):
    """The schema cannot be described: a mapper is broken or the argument is not a schema."""


# --------------------------------------------------------------------------- public API


def mapped_classes(base: Any) -> list[type]:
    """Every mapped class of ``base``, subclasses included, in a stable order.

    ``base`` is a ``DeclarativeBase`` subclass, a legacy ``declarative_base()`` class, or a
    :class:`sqlalchemy.orm.registry`. Abstract bases and mixins are not mapped, so they are
    not listed. Order: the order in which the classes' tables were added to the metadata
    (i.e. definition order); classes sharing a table (single-table inheritance) follow their
    parent, by inheritance depth and then name; classes without a table of this metadata go
    last, by name. This does not configure the mappers (see :func:`render_schema`).
    """
    reg = _registry(base)
    table_order = {table: i for i, table in enumerate(reg.metadata.tables.values())}

    def key(mapper: Mapper[Any]) -> tuple[int, int, str, str]:
        depth = sum(1 for _ in mapper.iterate_to_root())
        position = table_order.get(mapper.local_table, len(table_order))  # type: ignore[arg-type]
        return (position, depth, mapper.class_.__name__, mapper.class_.__module__)

    return [m.class_ for m in sorted(reg.mappers, key=key)]


def render_schema(base: Any) -> str:
    """Compact text describing every mapped class, enum and plain table of ``base``.

    Configures the mappers first (so backrefs and inherited tables are known); a broken
    mapping raises :class:`SchemaError` naming the class, the problem and what to fix.
    """
    reg = _registry(base)
    _configure(reg)
    classes = mapped_classes(reg)
    _check_unique_names(classes)

    blocks: list[str] = [LEGEND]
    enum_lines = [_render_enum(e) for e in _enums(reg, classes)]
    if enum_lines:
        blocks.append("\n".join(enum_lines))
    blocks.extend(_render_table(t, classes) for t in _plain_tables(reg))
    blocks.extend(_render_class(cls) for cls in classes)
    return "\n\n".join(blocks) + "\n"


def schema_symbols(base: Any) -> dict[str, Any]:
    """Names for the execution namespace: mapped classes, the enum classes their columns
    use, and plain ``Table`` objects (e.g. many-to-many association tables) under their
    table name.

    A table is left out when its name is not a Python identifier or would shadow a class or
    an enum. Raises :class:`SchemaError` like :func:`render_schema`.
    """
    reg = _registry(base)
    _configure(reg)
    classes = mapped_classes(reg)
    _check_unique_names(classes)

    symbols: dict[str, Any] = {cls.__name__: cls for cls in classes}
    for enum_cls in _enums(reg, classes):
        symbols.setdefault(enum_cls.__name__, enum_cls)
    for table in _plain_tables(reg):
        name = table.name
        if name.isidentifier() and not keyword.iskeyword(name) and name not in symbols:
            symbols[name] = table
    return symbols


# --------------------------------------------------------------------------- discovery


def _registry(base: Any) -> Registry:
    """The registry behind a declarative base class or a registry itself."""
    if isinstance(base, Registry):
        return base
    reg = getattr(base, "registry", None)
    if isinstance(reg, Registry):
        return reg
    raise SchemaError(
        f"{base!r} is not a SQLAlchemy declarative base: pass the class that your models "
        "inherit from (a DeclarativeBase subclass or declarative_base()), or its registry."
    )


def _configure(reg: Registry) -> None:
    """Configure the mappers, turning SQLAlchemy's error into an actionable SchemaError."""
    try:
        reg.configure(cascade=True)
    except Exception as error:  # SQLAlchemy raises several unrelated types here
        raise SchemaError(_explain_configure_error(reg, error)) from error


def _explain_configure_error(reg: Registry, error: Exception) -> str:
    # SQLAlchemy records the original error on the mapper that failed; later attempts
    # raise a generic "One or more mappers failed to initialize" that wraps it.
    failed = [m for m in reg.mappers if getattr(m, "_configure_failed", False)]
    original: Any = failed[0]._configure_failed if failed else error
    if not isinstance(original, BaseException):
        original = error
    where = ""
    if failed:
        mapper = failed[0]
        where = f"class {mapper.class_.__name__} (table {_table_name(mapper)})"
    else:
        match = re.search(r"Mapper\[(\w+)\(", str(original))
        where = f"class {match.group(1)}" if match else "a mapped class"
    message = " ".join(str(original).split())
    message = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", message)

    if isinstance(original, sa_exc.NoForeignKeysError):
        fix = (
            "Add a ForeignKey to the column that links the two tables, or pass "
            "foreign_keys=/primaryjoin= to the relationship()."
        )
    elif isinstance(original, sa_exc.AmbiguousForeignKeysError):
        fix = "Pass foreign_keys=[...] to the relationship() to say which column links the tables."
    elif isinstance(original, sa_exc.NoReferencedTableError):
        fix = "Check the table name in ForeignKey('table.column'); that table must be defined on the same metadata."
    elif "failed to locate a name" in message or "has no property" in message:
        fix = (
            "Check the class and attribute names used in relationship() (targets, back_populates, "
            "order_by); the target class must be defined on the same declarative Base and imported "
            "before the schema is rendered."
        )
    else:
        fix = "Fix that mapping; SQLAlchemy cannot use the schema until every mapper configures."
    return f"The SQLAlchemy mapping of {where} is broken: {message} {fix}"


def _check_unique_names(classes: list[type]) -> None:
    """The model refers to classes by bare name, so two classes may not share one."""
    seen: dict[str, type] = {}
    for cls in classes:
        other = seen.setdefault(cls.__name__, cls)
        if other is not cls:
            raise SchemaError(
                f"Two mapped classes are named {cls.__name__} ({other.__module__}.{other.__qualname__} "
                f"and {cls.__module__}.{cls.__qualname__}); the model refers to classes by name, "
                "so rename one of them."
            )


def _mapped_tables(classes: Iterable[type]) -> set[Any]:
    tables: set[Any] = set()
    for cls in classes:
        mapper = sqlalchemy.inspect(cls)
        tables.update(mapper.tables)
        tables.add(mapper.local_table)
    return tables


def _plain_tables(reg: Registry) -> list[Table]:
    """Tables of the metadata that no class maps, e.g. many-to-many association tables."""
    mapped = _mapped_tables(m.class_ for m in reg.mappers)
    return [t for t in reg.metadata.tables.values() if t not in mapped]


def _enums(reg: Registry, classes: list[type]) -> list[type[enum.Enum]]:
    """Python enum classes used by columns, in order of first use."""
    found: dict[type[enum.Enum], None] = {}
    tables = [*reg.metadata.tables.values(), *_mapped_tables(classes)]
    for table in tables:
        for column in getattr(table, "columns", ()):
            enum_cls = getattr(column.type, "enum_class", None)
            if enum_cls is not None:
                found.setdefault(enum_cls, None)
    return list(found)


# --------------------------------------------------------------------------- rendering


def _render_enum(enum_cls: type[enum.Enum]) -> str:
    bases = ", ".join(_class_ref(b) for b in enum_cls.__bases__ if b is not object)
    members = "; ".join(f"{m.name}={m.value!r}" for m in enum_cls)
    line = f"class {enum_cls.__name__}({bases}): {members}"
    doc = _own_doc(enum_cls)
    if doc and doc != "An enumeration.":  # the Enum default docstring on older Pythons
        line += f"  # {doc}"
    return line


def _render_table(table: Table, classes: list[type]) -> str:
    users = []
    for cls in classes:
        for rel in sqlalchemy.inspect(cls).relationships:
            if rel.secondary is table and rel.parent.class_ is cls:
                users.append(f"{cls.__name__}.{rel.key}")
    header = f"table {table.name}:  # plain Table, no class"
    if users:
        header += "; secondary of " + ", ".join(users)
    lines = [header]
    if table.comment:
        lines.append(f'    """{_collapse(table.comment)}"""')
    for column in table.columns:
        lines.append("    " + _column_line(column.name, column))
    constraints = _constraints(table)
    if constraints:
        lines.append("    constraints: " + "; ".join(constraints))
    return "\n".join(lines)


def _render_class(cls: type) -> str:
    mapper: Mapper[Any] = sqlalchemy.inspect(cls)
    parent = mapper.inherits
    bases = ", ".join(_class_ref(b) for b in cls.__bases__ if b is not object)
    lines = [f"class {cls.__name__}({bases}):  # {_class_note(mapper)}"]
    doc = _own_doc(cls)
    if doc:
        lines.append(f'    """{doc}"""')

    # Attributes the class itself defines; inherited ones appear on the parent class.
    own_columns = [p for p in mapper.column_attrs if p.parent is mapper]
    for prop in sorted(own_columns, key=lambda p: _column_sort_key(p, mapper)):
        lines.append("    " + _column_prop_line(prop, mapper))
    for prop in mapper.attrs:
        if prop.parent is not mapper:
            continue
        if isinstance(prop, CompositeProperty):
            attrs = ", ".join(a.key if hasattr(a, "key") else str(a) for a in prop.attrs)
            lines.append(f"    {prop.key}: {_class_ref(prop.composite_class)} composite({attrs})")
        elif isinstance(prop, SynonymProperty):
            lines.append(f"    {prop.key}: synonym of {prop.name}")
    for rel in mapper.relationships:
        if rel.parent is mapper:
            lines.append("    " + _relationship_line(rel, mapper))
    lines.extend("    " + line for line in _python_members(cls))

    # Table-level constraints belong to the class that owns the table (not to single-table
    # subclasses, whose columns live in the parent's table).
    if parent is None or mapper.local_table is not parent.local_table:
        table = mapper.local_table
        if isinstance(table, Table):
            if table.comment:
                lines.append(f"    # table comment: {_collapse(table.comment)}")
            constraints = _constraints(table)
            if constraints:
                lines.append("    constraints: " + "; ".join(constraints))
    return "\n".join(lines)


def _class_note(mapper: Mapper[Any]) -> str:
    """The comment on a class line: its table and how it takes part in inheritance."""
    parts: list[str] = []
    parent = mapper.inherits
    if parent is None:
        parts.append(f"table {_table_name(mapper)}")
    elif mapper.concrete:
        parts.append(f"table {_table_name(mapper)}, concrete inheritance")
    elif mapper.single or mapper.local_table is parent.local_table:
        parts.append(f"single-table inheritance, rows in table {_table_name(mapper)}")
    else:
        parts.append(f"table {_table_name(mapper)}, joined-table inheritance (joined to {_table_name(parent)})")
    if mapper.polymorphic_on is not None and (parent is None or parent.polymorphic_on is not mapper.polymorphic_on):
        on = mapper.polymorphic_on
        key = _attr_key_for_column(mapper, on) or str(on)
        parts.append(f"polymorphic_on {key}")
    if mapper.polymorphic_identity is not None:
        parts.append(f"identity {mapper.polymorphic_identity!r}")
    return "; ".join(parts)


def _table_name(mapper: Mapper[Any]) -> str:
    table = mapper.local_table
    name = getattr(table, "fullname", None) or getattr(table, "name", None)
    return name if name else str(table)


def _attr_key_for_column(mapper: Mapper[Any], column: Any) -> str | None:
    try:
        return mapper.get_property_by_column(column).key
    except Exception:  # not mapped as an attribute (e.g. an expression)
        return None


def _column_sort_key(prop: ColumnProperty[Any], mapper: Mapper[Any]) -> tuple[int, int, int]:
    """Primary key first, then table order (mixin columns otherwise land at odd places),
    then SQL-expression attributes."""
    column = _own_column(prop, mapper)
    if column is None or column.table is None:
        return (2, 0, 0)
    position = list(column.table.columns).index(column)
    return (0 if column.primary_key else 1, position, 0)


def _own_column(prop: ColumnProperty[Any], mapper: Mapper[Any]) -> Column[Any] | None:
    """The table column behind a column attribute, or None for a SQL expression.

    A joined subclass maps its own primary key together with the parent's: prefer its own.
    """
    columns = [c for c in prop.columns if isinstance(c, Column)]
    own = [c for c in columns if c.table is mapper.local_table]
    return (own or columns or [None])[0]


def _column_prop_line(prop: ColumnProperty[Any], mapper: Mapper[Any]) -> str:
    column = _own_column(prop, mapper)
    if column is None:  # column_property(<SQL expression>)
        expr = prop.columns[0]
        line = f"{prop.key}: {_type_text(expr.type)} = SQL({_sql(expr)}) read-only"
        doc = prop.doc
        return line + (f"  # {_collapse(doc)}" if doc else "")
    # A deferred column is loaded on first access rather than with its row.
    return _column_line(prop.key, column, doc=prop.doc, extra=["deferred"] if prop.deferred else [])


def _column_line(
    key: str, column: Column[Any], doc: str | None = None, extra: Iterable[str] = ()
) -> str:
    """``name: type flags  # comment`` for one table column."""
    text = f"{key}: {_type_text(column.type, column)}"
    if column.nullable and not column.primary_key:
        text += " | None"
    flags: list[str] = []
    if column.name != key:
        flags.append(f"col={column.name}")
    if column.primary_key:
        flags.append("PK")
    for fk in sorted(column.foreign_keys, key=lambda f: f.target_fullname):
        # Multi-column foreign keys are shown once, as a table constraint.
        if fk.constraint is not None and len(fk.constraint.columns) > 1:
            continue
        flag = f"FK {fk.target_fullname}"
        if fk.ondelete:
            flag += f" ondelete={fk.ondelete}"
        if fk.onupdate:
            flag += f" onupdate={fk.onupdate}"
        flags.append(flag)
    if column.unique:
        flags.append("unique")
    if column.index:
        flags.append("index")
    if column.default is not None:
        flags.append(f"default={_default_text(column.default)}")
    if column.onupdate is not None:
        flags.append(f"onupdate={_default_text(column.onupdate)}")
    if column.server_default is not None:
        flags.append(f"server_default={_server_default_text(column.server_default)}")
    if column.server_onupdate is not None:
        flags.append(f"server_onupdate={_server_default_text(column.server_onupdate)}")
    flags.extend(extra)
    if flags:
        text += " " + " ".join(flags)
    notes = [_collapse(n) for n in (column.comment, doc or column.doc) if n]
    if len(notes) == 2 and notes[0] == notes[1]:
        notes = notes[:1]
    if notes:
        text += "  # " + "; ".join(notes)
    return text


def _type_text(coltype: Any, column: Column[Any] | None = None) -> str:
    """A Python-ish name for a column type: ``int``, ``str(200)``, ``Decimal(10,2)``..."""
    if isinstance(coltype, sqltypes.NullType) and column is not None:
        # A Column(ForeignKey(...)) without a type takes the referenced column's type.
        for fk in column.foreign_keys:
            try:
                return _type_text(fk.column.type)
            except Exception:
                pass
    if isinstance(coltype, sqltypes.TypeDecorator):
        impl = getattr(coltype, "impl_instance", None) or coltype.impl
        return f"{type(coltype).__name__}({_type_text(impl)})"
    if isinstance(coltype, sqltypes.Enum):
        if coltype.enum_class is not None:
            return coltype.enum_class.__name__
        return "Literal[" + ", ".join(repr(v) for v in coltype.enums) + "]"
    if isinstance(coltype, sqltypes.Boolean):
        return "bool"
    if isinstance(coltype, sqltypes.Integer):
        return "int"
    if isinstance(coltype, sqltypes.Float):
        return "float"
    if isinstance(coltype, sqltypes.Numeric):
        if not coltype.asdecimal:
            return "float"
        if coltype.precision is not None:
            scale = f",{coltype.scale}" if coltype.scale is not None else ""
            return f"Decimal({coltype.precision}{scale})"
        return "Decimal"
    if isinstance(coltype, sqltypes.String):
        return f"str({coltype.length})" if coltype.length else "str"
    if isinstance(coltype, sqltypes.DateTime):
        return "datetime(tz)" if coltype.timezone else "datetime"
    if isinstance(coltype, sqltypes.Date):
        return "date"
    if isinstance(coltype, sqltypes.Time):
        return "time(tz)" if coltype.timezone else "time"
    if isinstance(coltype, sqltypes.Interval):
        return "timedelta"
    if isinstance(coltype, sqltypes.PickleType):
        return "pickle"
    if isinstance(coltype, sqltypes.LargeBinary):
        return f"bytes({coltype.length})" if coltype.length else "bytes"
    if isinstance(coltype, sqltypes.JSON):
        return "JSON"
    if isinstance(coltype, sqltypes.Uuid):
        return "UUID" if coltype.as_uuid else "str(uuid)"
    if isinstance(coltype, sqltypes.ARRAY):
        return f"list[{_type_text(coltype.item_type)}]"
    return type(coltype).__name__


def _default_text(default: Any) -> str:
    """A Python-side default: a value, ``fn()`` for a callable, ``SQL(...)`` for SQL."""
    if isinstance(default, sqlalchemy.Sequence):
        return f"Sequence({default.name!r})"
    arg = getattr(default, "arg", default)
    if getattr(default, "is_callable", False) or (callable(arg) and not getattr(default, "is_scalar", False)):
        fn = getattr(arg, "__wrapped__", arg)
        name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
        return "(computed)" if name == "<lambda>" else f"{name}()"
    if getattr(default, "is_clause_element", False):
        return f"SQL({_sql(arg)})"
    return _value_text(arg)


def _server_default_text(default: Any) -> str:
    arg = getattr(default, "arg", None)
    if arg is None:  # FetchedValue: the database computes it (trigger, computed column...)
        sqltext = getattr(default, "sqltext", None)
        if sqltext is not None:
            return f"{type(default).__name__}({_sql(sqltext)})"
        return "database"
    if isinstance(arg, str):
        return repr(arg)
    return _sql(arg)


def _value_text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return repr(value)


def _constraints(table: Table) -> list[str]:
    """Table-level facts not already shown on a column line."""
    out: list[str] = []
    for constraint in sorted(table.constraints, key=_constraint_sort_key):
        if isinstance(constraint, PrimaryKeyConstraint):
            continue
        names = [c.name for c in constraint.columns]
        if isinstance(constraint, UniqueConstraint):
            if len(names) == 1 and getattr(constraint.columns[0], "unique", False):
                continue  # shown as `unique` on the column
            out.append(f"unique({', '.join(names)})")
        elif isinstance(constraint, CheckConstraint):
            out.append(f"check({_sql(constraint.sqltext)})")
        elif isinstance(constraint, ForeignKeyConstraint):
            if len(constraint.elements) > 1:
                targets = ", ".join(e.target_fullname for e in constraint.elements)
                text = f"FK({', '.join(names)}) -> ({targets})"
                if constraint.ondelete:
                    text += f" ondelete={constraint.ondelete}"
                out.append(text)
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        exprs = [e.name if isinstance(e, Column) else _sql(e) for e in index.expressions]
        if len(exprs) == 1 and index.columns:
            column = list(index.columns)[0]
            if column.index and (bool(column.unique) == bool(index.unique)):
                continue  # shown as `index`/`unique` on the column
        kind = "unique index" if index.unique else "index"
        out.append(f"{kind}({', '.join(exprs)})")
    return out


def _constraint_sort_key(constraint: Any) -> tuple[str, str]:
    # table.constraints is a set: sort for a deterministic rendering.
    if isinstance(constraint, CheckConstraint):
        return ("check", str(constraint.sqltext))
    return (type(constraint).__name__, ",".join(c.name for c in constraint.columns))


def _relationship_line(rel: RelationshipProperty[Any], mapper: Mapper[Any]) -> str:
    target = rel.mapper.class_.__name__
    if rel.uselist:
        collection = rel.collection_class
        if collection is None or collection is list:
            kind = "list"
        else:
            kind = getattr(collection, "__name__", "collection")
            if kind == "<lambda>":
                kind = "collection"
        type_text = f"{kind}[{target}]"
    else:
        type_text = target
        local_fks = [c for c in rel.local_columns if c.foreign_keys]
        # A scalar is required only when a NOT NULL foreign key on this side demands it.
        if rel.direction is not MANYTOONE or not local_fks or any(c.nullable for c in local_fks):
            type_text += " | None"

    flags: list[str] = ["rel"]
    if rel.secondary is not None:
        flags.append(f"secondary={getattr(rel.secondary, 'name', rel.secondary)}")
    explicit_join = _explicit_join(rel)
    if explicit_join:
        flags.append(f"on {explicit_join}")
    elif _needs_via(rel, mapper):
        fks = sorted({c.name for c in getattr(rel, "_calculated_foreign_keys", ()) if hasattr(c, "name")})
        if fks:
            flags.append("via " + ",".join(fks))
    back = _reverse_name(rel)
    if back:
        flags.append(f"back={target}.{back}")
    cascade = set(rel.cascade)
    if cascade != _DEFAULT_CASCADE and not rel.viewonly:  # viewonly never cascades
        if _ALL_CASCADE <= cascade:
            cascade = (cascade - _ALL_CASCADE) | {"all"}
        order = ["all", *sorted(cascade - {"all"})]
        flags.append("cascade=" + ",".join(c for c in order if c in cascade))
    if rel.order_by:
        flags.append("order_by=" + ",".join(_sql(c) for c in rel.order_by))
    if rel.viewonly:
        flags.append("viewonly")
    if rel.lazy not in ("select", True):
        flags.append(f"lazy={rel.lazy}")
    if rel.passive_deletes:
        flags.append("passive_deletes")
    text = f"{rel.key}: {type_text}  " + " ".join(flags)
    if rel.doc:
        text += f"  # {_collapse(rel.doc)}"
    return text


def _explicit_join(rel: RelationshipProperty[Any]) -> str | None:
    """The join condition if the relationship was given one (not derived from foreign keys)."""
    init_args = getattr(rel, "_init_args", None)
    given = getattr(getattr(init_args, "primaryjoin", None), "argument", None)
    if given is None:
        return None
    joins = [rel.primaryjoin] + ([rel.secondaryjoin] if rel.secondaryjoin is not None else [])
    if all(_is_column_equality(j) for j in joins):
        return None  # plain foreign-key equality: `via` says it more briefly
    return " and ".join(_sql(j) for j in joins)


def _is_column_equality(expr: Any) -> bool:
    """True if ``expr`` is only ``col = col`` comparisons joined by AND."""
    for element in visitors.iterate(expr):
        if isinstance(element, BindParameter):
            return False
        if isinstance(element, BinaryExpression):
            if element.operator is not operators.eq:
                return False
            if not (isinstance(element.left, ColumnClause) and isinstance(element.right, ColumnClause)):
                return False
        elif isinstance(element, BooleanClauseList) and element.operator is not operators.and_:
            return False
    return True


def _needs_via(rel: RelationshipProperty[Any], mapper: Mapper[Any]) -> bool:
    """Name the foreign key when the target alone does not say which link is meant."""
    if rel.mapper is mapper or rel.mapper.class_ is mapper.class_:
        return True  # self-referential: parent vs children
    same_target = [r for r in mapper.relationships if r.mapper is rel.mapper]
    return len(same_target) > 1


def _reverse_name(rel: RelationshipProperty[Any]) -> str | None:
    if rel.back_populates:
        return rel.back_populates
    backref = rel.backref
    if isinstance(backref, str):
        return backref
    if isinstance(backref, tuple) and backref:
        return str(backref[0])
    reverse = getattr(rel, "_reverse_property", ())
    for other in reverse:
        return other.key
    return None


def _python_members(cls: type) -> list[str]:
    """Hybrids, association proxies, properties and public methods defined in Python.

    Looks at the class and at its unmapped mixins/abstract bases; members of mapped parents
    are rendered on those parents.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for owner in _own_and_mixins(cls):
        for name, value in vars(owner).items():
            if name.startswith("_") or name in seen:
                continue
            line = _member_line(name, value, cls)
            if line:
                seen.add(name)
                lines.append(line)
    return lines


def _own_and_mixins(cls: type) -> list[type]:
    owners = [cls]
    parent = sqlalchemy.inspect(cls).inherits
    inherited = set(parent.class_.__mro__) if parent is not None else set()
    for klass in cls.__mro__[1:]:
        if klass in inherited:
            continue  # shown on the mapped parent
        if klass is object or klass.__module__.startswith(("sqlalchemy.", "typing")):
            continue
        if sqlalchemy.inspect(klass, raiseerr=False) is not None:
            continue  # a mapped parent: described on its own
        if "registry" in vars(klass) or "metadata" in vars(klass):
            continue  # the declarative base itself
        owners.append(klass)
    return owners


def _member_line(name: str, value: Any, cls: type) -> str | None:
    if isinstance(value, hybrid_property):
        ret = _annotation_text(_return_annotation(value.fget))
        kind = "hybrid property (Python and SQL)"
        if value.fset is not None:
            kind += ", settable"
        text = f"{name}: {ret + ' ' if ret else ''}{kind}"
        return _with_doc(text, value.__doc__ or getattr(value.fget, "__doc__", None))
    if isinstance(value, hybrid_method):
        return _with_doc(f"def {name}{_signature_text(value.func)}  hybrid method", value.func.__doc__)
    if isinstance(value, AssociationProxy):
        return _with_doc(
            f"{name}: association proxy {value.target_collection}.{value.value_attr}",
            getattr(value, "info", {}).get("doc") if isinstance(getattr(value, "info", None), dict) else None,
        )
    if isinstance(value, property):
        ret = _annotation_text(_return_annotation(value.fget))
        kind = "property, Python only" + (", settable" if value.fset else "")
        return _with_doc(f"{name}: {ret + ' ' if ret else ''}{kind}", value.__doc__)
    if isinstance(value, (staticmethod, classmethod)):
        fn = value.__func__
        prefix = "@staticmethod " if isinstance(value, staticmethod) else "@classmethod "
        return _with_doc(f"{prefix}def {name}{_signature_text(fn)}", fn.__doc__)
    if inspect.isfunction(value):
        return _with_doc(f"def {name}{_signature_text(value)}", value.__doc__)
    return None


def _with_doc(text: str, doc: str | None) -> str:
    return f"{text}  # {_collapse(doc)}" if doc else text


def _annotations_of(fn: Any) -> dict[str, Any]:
    """A function's annotations without failing on names that do not resolve.

    Python 3.14 (Pyodide 314) evaluates annotations lazily, so reading ``__annotations__``
    can raise NameError (e.g. for names imported only under TYPE_CHECKING); ask for
    forward references instead.
    """
    try:
        if annotationlib is not None:
            return dict(annotationlib.get_annotations(fn, format=annotationlib.Format.FORWARDREF))
        return dict(getattr(fn, "__annotations__", None) or {})
    except Exception:  # an object that is not a plain function, or an odd annotation
        return {}


def _return_annotation(fn: Any) -> Any:
    return _annotations_of(fn).get("return", inspect.Parameter.empty)


def _signature_text(fn: Any) -> str:
    """``(self, days: int = 14) -> None``, built without reading source code."""
    try:
        if annotationlib is not None:
            signature = inspect.signature(fn, annotation_format=annotationlib.Format.FORWARDREF)
        else:
            signature = inspect.signature(fn)
    except Exception:  # builtins without signatures; 3.14 evaluating a bad annotation
        return "(...)"
    annotations = _annotations_of(fn)
    params = []
    for param in signature.parameters.values():
        text = param.name
        if param.kind is param.VAR_POSITIONAL:
            text = "*" + text
        elif param.kind is param.VAR_KEYWORD:
            text = "**" + text
        annotation = _annotation_text(annotations.get(param.name, inspect.Parameter.empty))
        if annotation:
            text += f": {annotation}"
        if param.default is not param.empty:
            text += f" = {_value_text(param.default)}"
        params.append(text)
    ret = _annotation_text(annotations.get("return", inspect.Parameter.empty))
    return f"({', '.join(params)})" + (f" -> {ret}" if ret else "")


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty or annotation is inspect.Signature.empty:
        return ""
    if isinstance(annotation, str):  # `from __future__ import annotations`
        return annotation
    forward = getattr(annotation, "__forward_arg__", None)
    if isinstance(forward, str):  # typing.ForwardRef / annotationlib.ForwardRef
        return forward
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"\b(typing|collections\.abc|datetime|decimal)\.", "", repr(annotation))


def _class_ref(klass: type) -> str:
    # __name__, not __qualname__: classes defined in functions would read `f.<locals>.X`.
    if klass.__module__ == "enum":
        return f"enum.{klass.__name__}"
    return klass.__name__


def _own_doc(cls: type) -> str | None:
    """The class's own docstring (not inherited, not a dataclass-generated signature)."""
    doc = vars(cls).get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return None
    if dataclasses.is_dataclass(cls) and doc.startswith(cls.__name__ + "("):
        return None
    return _collapse(doc)


def _sql(expr: Any) -> str:
    """SQL text of an expression on one line, with bound values inlined (``!= 'x'``, not
    ``!= :name_1``) when the default compiler can render them."""
    try:
        text = str(expr.compile(compile_kwargs={"literal_binds": True}))
    except Exception:  # a value the compiler cannot inline, or not an expression at all
        text = str(expr)
    return _collapse(text)


def _collapse(text: str) -> str:
    return " ".join(text.split())
