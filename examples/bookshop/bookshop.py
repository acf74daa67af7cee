"""The bookshop: py-agent's built-in demo schema as an app module (a single-file app).

    py-agent chat --app examples/bookshop/bookshop.py          # the recorded demo, no key needed
    py-agent check examples/bookshop/bookshop.py

The schema and seed live in ``py_agent.demo`` because the browser build still opens that
module by name; an app of your own keeps them in its own files (see ``examples/clinic``).
"""

from decimal import ROUND_HALF_UP, Decimal

from py_agent import tool
from py_agent.demo import Base, seed  # noqa: F401 - the contract's Base and seed(session)


@tool
def price_with_vat(price: Decimal, rate: Decimal = Decimal("0.06")) -> Decimal:
    """A net book price plus VAT (6% on books unless `rate` says otherwise), rounded to cents."""
    return (Decimal(price) * (1 + Decimal(rate))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


title = "Bookshop"
description = "A small bookshop: authors, books and e-books, tags, customers and their orders."
tools = [price_with_vat]
allowed_imports = ["datetime", "decimal", "tabulate"]
# Installed in the browser the first time the model's code imports it (pure wheels only).
allowed_packages = ["tabulate==0.10.0"]
DEMO = "demo.json"
prompt = "Prices are net, in euros. An e-book is an EBook row in the books table."
