from pathlib import Path
import pytest
from csbench.book import Book

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def sample_book() -> Book:
    "The committed sample book (2,000 accounts, 36 months)."
    return Book.read(SAMPLE)


@pytest.fixture(scope="session")
def small_book() -> Book:
    "A small synthetic book for tests that validate many variants."
    from csbench.synth import simulate_book
    book, _ = simulate_book(150, start="2023-01-01", months=24, seed=7)
    return book
