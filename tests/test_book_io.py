"""Round trips between formats, the sample book, and the as_of contract of the frames on a synthetic book."""
import numpy as np
import pandas as pd
import pytest
from csbench.book import Book
from conftest import SAMPLE
from csbench.frames import account_frame, monthly_panel, survival_frame, churn_labels


def test_sample_validates(sample_book):
    assert len(sample_book.accounts) == 2000
    assert sample_book.meta.currency == "JPY"
    assert set(sample_book.tables) >= {"accounts", "subscriptions", "usage", "tickets", "invoices", "surveys",
                                       "contacts", "csms", "activities", "milestones"}


def test_round_trip_csv_parquet_duckdb_csv(sample_book, tmp_path):
    b1 = Book.read(sample_book.write(tmp_path / "csv", format="csv"))
    b2 = Book.read(b1.write(tmp_path / "pq", format="parquet"))
    b3 = Book.read(b2.write(tmp_path / "book.duckdb", format="duckdb"))
    b4 = Book.read(b3.write(tmp_path / "csv2", format="csv"))
    for t, df in sample_book.tables.items():
        for b in (b1, b2, b3, b4):
            pd.testing.assert_frame_equal(b.tables[t], df, obj=t)
    assert b4.fingerprint() == sample_book.fingerprint()
    # and the CSV files themselves are byte-identical after the trip
    for f in (tmp_path / "csv").iterdir():
        assert f.read_bytes() == (tmp_path / "csv2" / f.name).read_bytes(), f.name


def test_sample_regenerates_identically(tmp_path):
    "`make sample` (csbench synth with the sample's parameters) rewrites data/sample byte for byte."
    from typer.testing import CliRunner
    from csbench.cli import app
    res = CliRunner().invoke(app, ["synth", str(tmp_path / "s"), "--accounts", "2000", "--months", "36",
                                   "--start", "2023-01-01", "--seed", "42", "--currency", "JPY", "--format", "csv"])
    assert res.exit_code == 0, res.output
    committed = sorted(p.name for p in SAMPLE.iterdir())
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == committed
    for name in committed:
        assert (tmp_path / "s" / name).read_bytes() == (SAMPLE / name).read_bytes(), name


def _frames(book, as_of):
    snap = pd.Timestamp(as_of) - pd.DateOffset(months=6)
    return {"account_frame": account_frame(book, as_of), "monthly_panel": monthly_panel(book, as_of),
            "survival_frame": survival_frame(book, as_of), "churn_labels": churn_labels(book, snap, 3, as_of=as_of)}


@pytest.mark.parametrize("as_of", ["2024-06-30", "2025-03-15"])
def test_frames_use_nothing_after_as_of(small_book, as_of):
    full, cut = _frames(small_book, as_of), _frames(small_book.truncate(as_of), as_of)
    for name in full:
        pd.testing.assert_frame_equal(full[name], cut[name], obj=name)


def test_frames_ignore_scrambled_future(small_book):
    "Rewriting every fact dated after as_of (values, closures, payments) leaves the frames unchanged."
    as_of = pd.Timestamp("2024-06-30")
    rng = np.random.default_rng(0)
    t = dict(small_book.tables)
    u = t["usage"].copy(); fut = u.period > as_of
    u.loc[fut, "value"] = rng.integers(0, 1000, fut.sum()).astype(float)
    tk = t["tickets"].copy(); fut = tk.closed_at > as_of
    tk.loc[fut, "closed_at"] = tk.loc[fut, "closed_at"] + pd.Timedelta(days=40)
    iv = t["invoices"].copy(); fut = iv.paid_at > as_of
    iv.loc[fut, "paid_at"] = pd.NaT
    sv = t["surveys"].copy(); fut = sv.answered_at > as_of
    sv.loc[fut & (sv.kind == "nps"), "score"] = 0.0
    s = t["subscriptions"].copy(); fut = s.end_date.notna() & (s.end_date > as_of) & (s.end_reason.notna())
    s.loc[fut, "end_reason"] = "cancelled_involuntary"
    scrambled = small_book.replace(usage=u, tickets=tk, invoices=iv, surveys=sv, subscriptions=s)
    a, b = _frames(small_book, as_of), _frames(scrambled, as_of)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    # the same scramble before as_of does change them (the comparison can fail)
    sv2 = t["surveys"].copy(); sv2.loc[sv2.kind == "nps", "score"] = 0.0
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(monthly_panel(small_book, as_of), monthly_panel(small_book.replace(surveys=sv2), as_of))
