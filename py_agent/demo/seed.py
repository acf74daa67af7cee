"""Deterministic seed data for the demo schema.

Chosen so the demo requests have interesting answers:

* J. R. R. Tolkien is deliberately absent ("add Tolkien and two of his books" must create him).
* Orders are dated in 2025 and 2026. Some customers ordered only in 2025, one only placed a
  cancelled order in 2026, and two never ordered, so "which customers bought nothing this
  year?" has a non-empty answer whatever the current year is.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from .library import Author, Book, Customer, EBook, Genre, Order, OrderItem, OrderStatus, Tag

# name, born, country
AUTHORS: list[tuple[str, date, str]] = [
    ("Jane Austen", date(1775, 12, 16), "GB"),
    ("George Orwell", date(1903, 6, 25), "GB"),
    ("Toni Morrison", date(1931, 2, 18), "US"),
    ("Gabriel García Márquez", date(1927, 3, 6), "CO"),
    ("Chimamanda Ngozi Adichie", date(1977, 9, 15), "NG"),
    ("Haruki Murakami", date(1949, 1, 12), "JP"),
    ("Ursula K. Le Guin", date(1929, 10, 21), "US"),
    ("Terry Pratchett", date(1948, 4, 28), "GB"),
    ("Mary Shelley", date(1797, 8, 30), "GB"),
    ("Octavia E. Butler", date(1947, 6, 22), "US"),
]

# title, author, genre, price, published, stock, tags, e-book (format, size in KB) or None
BOOKS: list[tuple[str, str, Genre, str, date, int, tuple[str, ...], tuple[str, int] | None]] = [
    ("Pride and Prejudice", "Jane Austen", Genre.ROMANCE, "8.99", date(1813, 1, 28), 12, ("classic",), None),
    ("Emma", "Jane Austen", Genre.ROMANCE, "7.99", date(1815, 12, 23), 5, ("classic",), None),
    ("Persuasion", "Jane Austen", Genre.ROMANCE, "4.99", date(1817, 12, 20), 0, ("classic",), ("epub", 610)),
    ("Nineteen Eighty-Four", "George Orwell", Genre.SCIENCE_FICTION, "9.99", date(1949, 6, 8), 20, ("classic", "dystopia"), None),
    ("Animal Farm", "George Orwell", Genre.FICTION, "6.99", date(1945, 8, 17), 9, ("classic",), None),
    ("Homage to Catalonia", "George Orwell", Genre.NON_FICTION, "10.50", date(1938, 4, 25), 3, (), None),
    ("Beloved", "Toni Morrison", Genre.FICTION, "11.99", date(1987, 9, 2), 6, ("award-winner", "classic"), None),
    ("Song of Solomon", "Toni Morrison", Genre.FICTION, "10.99", date(1977, 8, 1), 2, ("award-winner",), None),
    ("One Hundred Years of Solitude", "Gabriel García Márquez", Genre.FICTION, "12.99", date(1967, 5, 30), 8, ("classic", "staff-pick"), None),
    ("Love in the Time of Cholera", "Gabriel García Márquez", Genre.ROMANCE, "11.49", date(1985, 9, 1), 4, (), None),
    ("Chronicle of a Death Foretold", "Gabriel García Márquez", Genre.FICTION, "5.99", date(1981, 1, 1), 0, (), ("epub", 420)),
    ("Half of a Yellow Sun", "Chimamanda Ngozi Adichie", Genre.FICTION, "10.99", date(2006, 8, 11), 7, ("award-winner",), None),
    ("Americanah", "Chimamanda Ngozi Adichie", Genre.FICTION, "12.49", date(2013, 5, 14), 10, ("staff-pick",), None),
    ("Purple Hibiscus", "Chimamanda Ngozi Adichie", Genre.FICTION, "9.49", date(2003, 10, 1), 3, (), None),
    ("Norwegian Wood", "Haruki Murakami", Genre.FICTION, "10.99", date(1987, 9, 4), 6, (), None),
    ("Kafka on the Shore", "Haruki Murakami", Genre.FICTION, "8.99", date(2002, 9, 12), 0, ("staff-pick",), ("epub", 1350)),
    ("A Wizard of Earthsea", "Ursula K. Le Guin", Genre.FANTASY, "8.49", date(1968, 11, 1), 11, ("classic", "magic"), None),
    ("The Left Hand of Darkness", "Ursula K. Le Guin", Genre.SCIENCE_FICTION, "9.99", date(1969, 3, 1), 4, ("award-winner",), None),
    ("The Dispossessed", "Ursula K. Le Guin", Genre.SCIENCE_FICTION, "9.49", date(1974, 5, 1), 0, ("award-winner",), ("pdf", 2900)),
    ("Guards! Guards!", "Terry Pratchett", Genre.FANTASY, "8.99", date(1989, 11, 1), 14, ("magic", "staff-pick"), None),
    ("Small Gods", "Terry Pratchett", Genre.FANTASY, "8.99", date(1992, 5, 1), 7, ("magic",), None),
    ("Mort", "Terry Pratchett", Genre.FANTASY, "4.99", date(1987, 11, 12), 0, ("magic",), ("mobi", 780)),
    ("Frankenstein", "Mary Shelley", Genre.HORROR, "5.99", date(1818, 1, 1), 9, ("classic",), None),
    ("The Last Man", "Mary Shelley", Genre.SCIENCE_FICTION, "3.99", date(1826, 1, 23), 0, (), ("pdf", 1900)),
    ("Kindred", "Octavia E. Butler", Genre.SCIENCE_FICTION, "10.49", date(1979, 6, 1), 5, ("staff-pick",), None),
    ("Parable of the Sower", "Octavia E. Butler", Genre.SCIENCE_FICTION, "11.49", date(1993, 10, 1), 0, ("dystopia",), ("epub", 1100)),
]

TAGS = ["classic", "award-winner", "dystopia", "magic", "staff-pick"]

# name, email, joined
CUSTOMERS: list[tuple[str, str, date]] = [
    ("Amira Haddad", "amira.haddad@example.com", date(2023, 3, 14)),
    ("Ben Okafor", "ben.okafor@example.com", date(2023, 9, 2)),
    ("Chloé Martin", "chloe.martin@example.com", date(2024, 1, 20)),
    ("Dmitri Ivanov", "dmitri.ivanov@example.com", date(2024, 6, 5)),
    ("Elena García", "elena.garcia@example.com", date(2024, 11, 30)),
    ("Farah Khan", "farah.khan@example.com", date(2025, 2, 17)),
    ("George Miller", "george.miller@example.com", date(2025, 8, 8)),
    ("Hana Sato", "hana.sato@example.com", date(2026, 4, 1)),
]

# customer, placed at, status, [(book title, quantity)]
ORDERS: list[tuple[str, datetime, OrderStatus, list[tuple[str, int]]]] = [
    ("Amira Haddad", datetime(2025, 2, 3, 10, 15), OrderStatus.SHIPPED, [("Pride and Prejudice", 1), ("Emma", 1)]),
    ("Ben Okafor", datetime(2025, 3, 19, 18, 40), OrderStatus.SHIPPED, [("Nineteen Eighty-Four", 2)]),
    ("Elena García", datetime(2025, 5, 7, 9, 5), OrderStatus.SHIPPED, [("One Hundred Years of Solitude", 1)]),
    ("Chloé Martin", datetime(2025, 6, 22, 14, 30), OrderStatus.SHIPPED, [("Beloved", 1), ("Song of Solomon", 1)]),
    ("Farah Khan", datetime(2025, 8, 30, 16, 0), OrderStatus.SHIPPED, [("Americanah", 1), ("Half of a Yellow Sun", 1)]),
    ("Elena García", datetime(2025, 10, 11, 11, 20), OrderStatus.SHIPPED, [("Love in the Time of Cholera", 1)]),
    ("Amira Haddad", datetime(2025, 12, 18, 20, 45), OrderStatus.SHIPPED, [("Guards! Guards!", 1), ("Mort", 1)]),
    ("Dmitri Ivanov", datetime(2026, 1, 9, 8, 55), OrderStatus.SHIPPED, [("Frankenstein", 1)]),
    ("Amira Haddad", datetime(2026, 2, 14, 12, 0), OrderStatus.SHIPPED, [("Persuasion", 1)]),
    ("Ben Okafor", datetime(2026, 3, 3, 17, 25), OrderStatus.SHIPPED, [("A Wizard of Earthsea", 1), ("The Dispossessed", 1)]),
    ("Chloé Martin", datetime(2026, 4, 27, 19, 10), OrderStatus.SHIPPED, [("Kafka on the Shore", 1), ("Norwegian Wood", 1)]),
    ("Hana Sato", datetime(2026, 5, 15, 13, 35), OrderStatus.SHIPPED, [("Kindred", 1), ("Parable of the Sower", 1)]),
    ("Farah Khan", datetime(2026, 6, 2, 10, 50), OrderStatus.CANCELLED, [("Small Gods", 1)]),
    ("Dmitri Ivanov", datetime(2026, 8, 21, 15, 5), OrderStatus.PAID, [("The Left Hand of Darkness", 1), ("Animal Farm", 3)]),
    ("Ben Okafor", datetime(2026, 10, 6, 9, 40), OrderStatus.PENDING, [("Americanah", 1)]),
]


def seed(session: Session) -> None:
    """Insert the demo rows into an empty database and commit."""
    tags = {name: Tag(name=name) for name in TAGS}
    authors = {
        name: Author(name=name, born=born, country=country) for name, born, country in AUTHORS
    }
    books: dict[str, Book] = {}
    for title, author, genre, price, published, stock, tag_names, ebook in BOOKS:
        fields = dict(
            title=title,
            author=authors[author],
            genre=genre,
            price=Decimal(price),
            published=published,
            stock=stock,
            tags=[tags[t] for t in tag_names],
        )
        if ebook is None:
            books[title] = Book(**fields)
        else:
            books[title] = EBook(**fields, file_format=ebook[0], file_size_kb=ebook[1])
    customers = {
        name: Customer(name=name, email=email, joined=joined) for name, email, joined in CUSTOMERS
    }
    orders = [
        Order(
            customer=customers[customer],
            placed_at=placed_at,
            status=status,
            items=[
                OrderItem(book=books[title], quantity=quantity, unit_price=books[title].price)
                for title, quantity in lines
            ],
        )
        for customer, placed_at, status, lines in ORDERS
    ]
    session.add_all([*tags.values(), *authors.values(), *books.values(), *customers.values(), *orders])
    session.commit()
