"""show() and chart(): what they accept, the JSON the page gets, the summary the model reads,
the limits, and that they hand nothing of the host to model code. Pure: runs in Pyodide too."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import JSON, LargeBinary, Numeric, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, deferred, mapped_column

from py_agent.display import (
    CHART_KINDS,
    DisplayLimits,
    Displays,
    ShowError,
    TableLimits,
    build_table,
    is_query_result,
    json_safe,
)
from py_agent.events import Display, event_from_dict


class Base(DeclarativeBase):
    pass


class Colour(enum.Enum):
    RED = "red"
    DARK_BLUE = "dark blue"


READS: list[str] = []  # properties read by anyone (show() must read none)


class Item(Base):
    __tablename__ = "items"
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "item"}  # noqa: RUF012

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    colour: Mapped[Colour | None]
    made: Mapped[dt.date | None]
    photo: Mapped[bytes | None] = mapped_column(LargeBinary)
    notes: Mapped[Any | None] = mapped_column(JSON)
    secret: Mapped[str | None] = deferred(mapped_column(String(50)))
    kind: Mapped[str] = mapped_column(String(10))

    @property
    def spy(self) -> str:
        READS.append("spy")
        return "read"


class Gadget(Item):
    __mapper_args__ = {"polymorphic_identity": "gadget"}  # noqa: RUF012

    volts: Mapped[int | None]


@pytest.fixture
def session():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all(
            [
                Item(id=1, name="cup", price=Decimal("2.50"), colour=Colour.RED, made=dt.date(2024, 3, 1), photo=b"\x89PNG....", notes={"a": [1, 2]}, secret="s1"),
                Item(id=2, name="plate", price=Decimal("4.00"), colour=Colour.DARK_BLUE, made=None, secret="s2"),
                Gadget(id=3, name="lamp", price=Decimal("19.99"), volts=230),
            ]
        )
        s.commit()
        READS.clear()
        yield s
    engine.dispose()


def shown(displays: Displays) -> list[dict[str, Any]]:
    """The display events' JSON for what ``displays`` collected (as the page receives it)."""
    events = [Display(7, **s.event_fields()).to_dict() for s in displays.take()]
    for event in events:
        json.dumps(event, allow_nan=False)  # strict JSON: no NaN, no objects
    return events


# -- values ---------------------------------------------------------------------------------------

def test_values_become_json_safe_by_fixed_rules():
    class Level(enum.IntEnum):
        LOW = 1

    cases = [
        (None, None), (True, True), ("text", "text"), (3, 3), (2.5, 2.5),
        (2**53 + 1, str(2**53 + 1)), (-(2**60), str(-(2**60))),
        (float("nan"), "nan"), (float("inf"), "inf"),
        (Decimal("10.99"), 10.99), (Decimal(12), 12.0), (Decimal("NaN"), "NaN"),
        (dt.date(2024, 3, 1), "2024-03-01"), (dt.datetime(2024, 3, 1, 9, 30), "2024-03-01T09:30:00"),
        (dt.time(9, 30), "09:30:00"), (dt.timedelta(hours=2), "2:00:00"),
        (Colour.DARK_BLUE, "dark blue"), (Level.LOW, 1),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (b"abc", {"$blob": 3}), (bytearray(5), {"$blob": 5}), (memoryview(b"abcd"), {"$blob": 4}),
        ([1, Decimal("1.5"), (dt.date(2020, 1, 1),)], [1, 1.5, ["2020-01-01"]]),
        ({"k": b"x", 3: None}, {"k": {"$blob": 1}, "3": None}),
    ]
    for value, expected in cases:
        assert json_safe(value) == expected, value
    assert json_safe("x" * 5000, max_chars=10) == "x" * 9 + "…"
    assert len(json_safe(list(range(1000)))) == 101  # 100 items and a note


def test_an_object_of_no_known_kind_is_its_text_and_a_broken_str_is_its_type_name():
    class Odd:
        def __str__(self) -> str:
            return "odd one"

    class Broken:
        def __str__(self) -> str:
            raise ValueError("no")

    assert json_safe(Odd()) == "odd one"
    assert json_safe(Broken()) == "<Broken>"


# -- what show() accepts --------------------------------------------------------------------------

def test_a_result_of_columns(session):
    table = build_table(session.execute(select(Item.name, Item.price, Item.colour, Item.made).order_by(Item.id)))
    assert table.columns == ["name", "price", "colour", "made"]
    assert table.rows == [["cup", 2.5, "red", "2024-03-01"], ["plate", 4.0, "dark blue", None], ["lamp", 19.99, None, None]]
    assert (table.total, table.truncated) == (3, False)


def test_orm_objects_show_their_mapped_columns_and_subclasses_add_theirs(session):
    table = build_table(session.scalars(select(Item).order_by(Item.id)))
    assert table.columns == ["id", "name", "price", "colour", "made", "photo", "notes", "secret", "kind", "volts"]
    assert table.rows[0] == [1, "cup", 2.5, "red", "2024-03-01", {"$blob": 8}, {"a": [1, 2]}, "s1", "item", None]
    assert table.rows[2][-1] == 230 and table.rows[2][1] == "lamp"
    assert READS == []  # a Python property is never read, only mapped columns
    # select(Item) through execute(): rows of one entity are the same table
    assert build_table(session.execute(select(Item).order_by(Item.id))).rows == table.rows
    # a single object, and columns= picking and ordering what is shown
    one = build_table(session.get(Item, 2), columns=["price", "name"])
    assert (one.columns, one.rows) == (["price", "name"], [[4.0, "plate"]])


def test_rows_mixing_objects_and_columns_prefix_the_objects_columns(session):
    table = build_table(session.execute(select(Item, func.length(Item.name).label("letters")).where(Item.id == 1)))
    assert table.columns[:3] == ["Item.id", "Item.name", "Item.price"] and table.columns[-1] == "letters"
    assert table.rows[0][-1] == 3


def test_lists_of_rows_dicts_tuples_and_values(session):
    rows = session.execute(select(Item.id, Item.name).order_by(Item.id)).all()
    assert build_table(rows).columns == ["id", "name"]
    assert build_table(rows[0]).rows == [[1, "cup"]]
    assert build_table(session.execute(select(Item.id, Item.name)).mappings()).columns == ["id", "name"]

    dicts = build_table([{"a": 1}, {"b": 2, "a": 3}])
    assert (dicts.columns, dicts.rows) == (["a", "b"], [[1, None], [3, 2]])
    assert build_table({"a": 1, "b": "x"}).rows == [[1, "x"]]

    columnar = build_table({"genre": ["fantasy", "romance", "horror"], "books": [5, 3]})
    assert (columnar.columns, columnar.rows, columnar.total) == (["genre", "books"], [["fantasy", 5], ["romance", 3], ["horror", None]], 3)

    tuples = build_table([("a", 1), ("b", 2)], columns=["letter", "n"])
    assert (tuples.columns, tuples.rows) == (["letter", "n"], [["a", 1], ["b", 2]])
    assert build_table([("a", 1)]).columns == ["column 1", "column 2"]
    assert build_table([1, 2, 3]).columns == ["value"]
    assert build_table((x * x for x in range(4)), columns=["square"]).rows == [[0], [1], [4], [9]]


def test_a_legacy_query_and_an_object_that_cannot_load_its_columns(session):
    assert build_table(session.query(Item.name).order_by(Item.id)).rows == [["cup"], ["plate"], ["lamp"]]
    item = session.get(Item, 1)
    session.commit()  # expires it
    session.expunge(item)  # and detaches it: its columns cannot be loaded any more
    table = build_table([item], columns=["id", "name"])
    assert table.rows == [["‹not loaded›", "‹not loaded›"]]


def test_an_empty_result_keeps_its_column_names(session):
    table = build_table(session.execute(select(Item.id, Item.name).where(Item.id < 0)))
    assert (table.columns, table.rows, table.total) == (["id", "name"], [], 0)


def test_text_classes_and_bad_columns_are_refused_with_what_to_do_instead():
    with pytest.raises(ShowError, match="print"):
        build_table("hello")
    with pytest.raises(ShowError, match=r"show\(session.scalars\(select\(Item\)\)\)"):
        build_table(Item)
    with pytest.raises(ShowError, match="list of column names"):
        build_table([(1, 2)], columns="ab")


def test_the_last_expression_is_shown_only_for_query_results(session):
    assert is_query_result(session.execute(select(Item.id)))
    assert is_query_result(session.scalars(select(Item)))
    assert is_query_result(session.get(Item, 1))
    assert is_query_result(session.execute(select(Item.id)).all())
    assert is_query_result(session.scalars(select(Item)).all())  # Item and Gadget share a base
    for value in ([], [{"a": 1}], [(1, 2)], 3, "text", {"a": 1}, Item):
        assert not is_query_result(value), value


# -- limits ---------------------------------------------------------------------------------------

def test_rows_past_the_limit_are_counted_not_sent():
    limits = TableLimits(max_rows=100)
    listed = build_table([{"n": i} for i in range(250)], limits=limits)
    assert (len(listed.rows), listed.total, listed.truncated) == (100, 250, True)
    generated = build_table(({"n": i} for i in range(250)), limits=limits)
    assert (len(generated.rows), generated.total, generated.truncated) == (100, 250, True)
    exact = build_table(({"n": i} for i in range(100)), limits=limits)
    assert (len(exact.rows), exact.total, exact.truncated) == (100, 100, False)
    capped = build_table(iter(range(10_000)), limits=TableLimits(max_rows=10, count_limit=500))
    assert (capped.total, capped.counted_all) == (500, False)


def test_rows_past_the_byte_limit_are_left_out():
    table = build_table([{"text": "x" * 1000} for _ in range(50)], limits=TableLimits(max_bytes=10_000))
    assert 5 <= len(table.rows) < 10 and table.total == 50 and table.truncated
    assert table.size <= 10_000


def test_a_step_shows_at_most_so_many_displays_and_bytes(capsys):
    displays = Displays(DisplayLimits(max_displays=3, max_step_bytes=50_000))
    for i in range(5):
        displays.show([{"i": i}])
    assert len(displays.take()) == 3
    assert capsys.readouterr().out.count("[not shown: this step already showed 3 tables or charts") == 2
    displays.show([{"text": "x" * 1000} for _ in range(100)])  # ~100 KB: cut at the step's budget
    displays.show([{"i": 1}])
    events = shown(displays)
    assert len(events) == 1 and events[0]["truncated"] and events[0]["total"] == 100
    assert "as many rows as a step may show" in capsys.readouterr().out


# -- what the model reads ---------------------------------------------------------------------------

def test_a_10000_row_table_costs_the_model_a_few_hundred_tokens(capsys):
    displays = Displays()
    rows = [{"id": i, "title": f"book number {i}", "price": Decimal(i) / 100, "published": dt.date(2000, 1, 1) + dt.timedelta(days=i)} for i in range(10_000)]
    displays.show(rows, title="All books")
    summary = capsys.readouterr().out
    print(f"summary of a 10 000-row table: {len(summary)} characters, ~{len(summary) // 4} tokens\n{summary}")
    assert len(summary) < 800  # about 200 tokens
    assert '[table "All books" shown to the person: 10,000 rows × 4 columns, the person sees all of them]' in summary
    assert "\nid | title | price | published\n" in summary
    assert "0 | book number 0 | 0.0 | 2000-01-01" in summary and "4 | book number 4" in summary
    assert "book number 5" not in summary and "9,995 more rows" in summary
    [event] = shown(displays)
    assert (len(event["rows"]), event["total"], event["truncated"]) == (10_000, 10_000, False)


def test_a_wide_table_and_long_cells_stay_short_for_the_model(capsys):
    displays = Displays()
    displays.show([{f"column_{c}": "y" * 500 for c in range(60)} for _ in range(3000)])
    summary = capsys.readouterr().out
    assert len(summary) < 2_500, len(summary)
    assert "… (20 more)" in summary and "3,000 rows × 60 columns" in summary


def test_a_small_table_is_shown_to_the_model_whole(capsys):
    Displays().show([{"genre": g, "books": n} for g, n in [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", 6), ("g", 7)]])
    summary = capsys.readouterr().out
    assert "g | 7" in summary and "more rows" not in summary


def test_a_truncated_table_says_so(capsys):
    Displays(DisplayLimits(max_rows=10)).show(range(25))
    assert "25 rows × 1 column, the person sees the first 10 (the display limit)" in capsys.readouterr().out


# -- charts ---------------------------------------------------------------------------------------

GENRES = [{"genre": "fantasy", "books": 5, "price": 10.5}, {"genre": "romance", "books": 3, "price": 7.0}, {"genre": "horror", "books": 4, "price": 9.25}]


def chart_event(**kwargs: Any) -> dict[str, Any]:
    displays = Displays()
    displays.chart(kwargs.pop("data", GENRES), **kwargs)
    [event] = shown(displays)
    assert event["kind"] == "chart"
    assert '"url"' not in json.dumps(event["spec"])  # the page refuses specs that fetch
    return event


def test_a_bar_chart_with_its_data_inline(capsys):
    event = chart_event(x="genre", y="books", title="Books per genre")
    spec = event["spec"]
    assert spec["$schema"].endswith("/vega-lite/v6.json") and spec["mark"] == {"type": "bar"}
    assert spec["data"]["values"] == [{"genre": "fantasy", "books": 5}, {"genre": "romance", "books": 3}, {"genre": "horror", "books": 4}]
    assert spec["encoding"]["x"] == {"field": "genre", "type": "nominal", "title": "genre", "sort": None, "axis": {"labelAngle": 0}}
    assert spec["encoding"]["y"] == {"field": "books", "type": "quantitative", "title": "books"}
    assert spec["description"] == "Books per genre"
    assert (event["columns"], event["rows"], event["total"]) == (["genre", "books"], [["fantasy", 5], ["romance", 3], ["horror", 4]], 3)
    assert '[bar chart "Books per genre" (books by genre) shown to the person: 3 rows × 2 columns' in capsys.readouterr().out


def test_chart_defaults_every_kind_and_several_series():
    assert chart_event()["spec"]["encoding"]["y"]["field"] == "books"  # x: first column; y: first number after it
    assert chart_event(data=[{"genre": "a"}, {"genre": "a"}])["spec"]["encoding"]["y"]["aggregate"] == "count"
    for kind in CHART_KINDS:
        spec = chart_event(kind=kind, **({"x": "price"} if kind == "histogram" else {}))["spec"]
        assert spec["mark"]["type"] == {"scatter": "point", "pie": "arc", "histogram": "bar"}.get(kind, kind)
    histogram = chart_event(kind="histogram", x="price", bins=5)["spec"]["encoding"]
    assert histogram["x"]["bin"] == {"maxbins": 5} and histogram["y"]["aggregate"] == "count"
    pie = chart_event(kind="pie", x="genre", y="books")["spec"]["encoding"]
    assert pie["theta"]["field"] == "books" and pie["color"]["field"] == "genre"
    both = chart_event(kind="line", x="genre", y=["books", "price"])["spec"]
    assert both["transform"] == [{"fold": ["books", "price"], "as": ["series", "value"]}]
    assert both["encoding"]["color"]["field"] == "series"
    dates = chart_event(data=[{"day": dt.date(2024, 1, d), "sales": d} for d in range(1, 4)], kind="line")["spec"]
    assert dates["encoding"]["x"]["type"] == "temporal" and dates["data"]["values"][0]["day"] == "2024-01-01"
    coloured = chart_event(kind="scatter", x="price", y="books", color="genre")["spec"]["encoding"]
    assert coloured["color"]["field"] == "genre" and coloured["x"]["type"] == "quantitative"


def test_column_names_with_dots_are_escaped_for_vega():
    spec = chart_event(data=[{"Item.name": "a", "avg(price)": 1}], x="Item.name", y="avg(price)")["spec"]
    assert spec["encoding"]["x"]["field"] == "Item\\.name" and spec["data"]["values"] == [{"Item.name": "a", "avg(price)": 1}]


def test_chart_mistakes_name_the_columns_and_read_nothing(session):
    displays = Displays()
    with pytest.raises(ShowError, match="no column 'pric' for y=; the columns are: genre, books, price"):
        displays.chart(GENRES, x="genre", y="pric")
    with pytest.raises(ShowError, match="does not hold numbers"):
        displays.chart(GENRES, x="books", y="genre")
    with pytest.raises(ShowError, match="leave out y"):
        displays.chart(GENRES, x="price", y="books", kind="histogram")
    result = session.execute(select(Item.name, Item.price))
    with pytest.raises(ShowError, match="use one of: bar, line, area, scatter, histogram, pie"):
        displays.chart(result, kind="donut")
    assert len(result.all()) == 3  # the result was not consumed by the refused call
    assert displays.take() == ()


def test_a_chart_has_fewer_points_than_a_table():
    displays = Displays(DisplayLimits(max_chart_rows=50))
    displays.chart([{"x": i, "y": i} for i in range(120)], kind="scatter")
    [event] = shown(displays)
    assert (len(event["spec"]["data"]["values"]), event["total"], event["truncated"]) == (50, 120, True)


# -- the event ---------------------------------------------------------------------------------------

def test_the_display_event_round_trips_as_json(session):
    displays = Displays()
    displays.show(session.scalars(select(Item).order_by(Item.id)), title="Items")
    [event] = shown(displays)
    assert event["type"] == "display" and event["step"] == 7 and event["spec"] is None
    assert set(event) == {"type", "step", "kind", "title", "columns", "rows", "total", "truncated", "spec"}
    back = event_from_dict(json.loads(json.dumps(event)))
    assert isinstance(back, Display) and back.to_dict() == event


def test_what_is_shown_is_a_copy_taken_at_the_call(session, capsys):
    displays = Displays()
    item = session.get(Item, 1)
    displays.show([item])
    item.name = "changed later"
    [event] = shown(displays)
    assert event["rows"][0][1] == "cup"
    assert displays.functions()["show"]([item]) is None  # nothing comes back to model code
