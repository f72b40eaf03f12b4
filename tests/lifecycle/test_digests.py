"""The compact digest collections the mark keeps for every blob."""

from __future__ import annotations

from array import array

import pytest

from registry.lifecycle.digests import BlobTable, DigestSet, raw
from registry.references import Digest


def digest(number: int, algorithm: str = "sha256") -> Digest:
    return Digest.of(str(number).encode(), algorithm)


def test_blob_table_is_a_mapping_of_sizes_and_times() -> None:
    table = BlobTable()
    table[digest(1)] = (10, 1.5)
    table[digest(2, "sha512")] = (20, 2.5)
    table[digest(1)] = (11, 3.25)  # replaced, not added
    assert len(table) == 2
    assert table[digest(1)] == (11, 3.25)
    assert table.get(digest(2, "sha512")) == (20, 2.5)
    assert digest(3) not in table
    assert table.get(digest(3)) is None
    assert set(table) == {digest(1), digest(2, "sha512")}
    assert dict(table.items()) == {digest(1): (11, 3.25), digest(2, "sha512"): (20, 2.5)}


def test_blob_table_takes_another_tables_rows_at_once() -> None:
    table = BlobTable()
    table[digest(1)] = (10, 1.5)
    new = [raw(digest(number)) for number in (2, 3)]
    table.put_all_raw(new, array("q", [20, 30]), array("d", [2.5, 3.5]))
    assert dict(table.items()) == {digest(1): (10, 1.5), digest(2): (20, 2.5), digest(3): (30, 3.5)}
    table.put_all_raw([raw(digest(3)), raw(digest(4))], array("q", [31, 40]), array("d", [3.25, 4.5]))
    assert len(table) == 4  # one held already: replaced, not added
    assert table[digest(3)] == (31, 3.25)
    assert table[digest(4)] == (40, 4.5)
    with pytest.raises(ValueError, match="missing"):
        table.put_all_raw([raw(digest(5)), raw(digest(6))], array("q", [50]), array("d", [5.5, 6.5]))
    assert len(table) == 4
    # Some held already, one time missing: refused before any row changes, not half-way through.
    with pytest.raises(ValueError, match="missing"):
        table.put_all_raw([raw(digest(4)), raw(digest(5))], array("q", [41, 50]), array("d", [4.25]))
    assert len(table) == 4
    assert table[digest(4)] == (40, 4.5)


def test_digest_set_adds_many_at_once_as_one_at_a_time() -> None:
    table = BlobTable()
    for number in range(20):
        table[digest(number)] = (number, float(number))
    one, many = DigestSet(table), DigestSet(table)
    keys = [raw(digest(number)) for number in (3, 5, 5, 19, 100, 100)]  # 100: no blob of the table
    for key in keys:
        one.add_new(key)
    many.add(digest(3))
    many.add_all(keys)
    assert len(many) == len(one) == 4
    assert set(many) == set(one) == {digest(3), digest(5), digest(19), digest(100)}


def test_digest_set_holds_table_rows_and_others() -> None:
    table = BlobTable()
    for number in range(20):
        table[digest(number)] = (number, float(number))
    marked = DigestSet(table)
    for number in (0, 7, 8, 19, 7):
        marked.add(digest(number))
    marked.add(digest(100))  # no blob of the table: a manifest whose blob is missing
    marked.add(digest(101, "sha512"))
    assert len(marked) == 6
    assert digest(7) in marked
    assert digest(6) not in marked
    assert digest(101, "sha512") in marked
    assert digest(101) not in marked
    assert set(marked) == {digest(n) for n in (0, 7, 8, 19, 100)} | {digest(101, "sha512")}
    marked.discard(digest(7))
    marked.discard(digest(100))
    marked.discard(digest(5))
    assert len(marked) == 4
    assert digest(7) not in marked
    assert digest(100) not in marked
    assert marked | {digest(5)} == {digest(n) for n in (0, 5, 8, 19)} | {digest(101, "sha512")}


def test_unmarked_gives_the_table_rows_the_set_does_not_hold() -> None:
    table = BlobTable()
    for number in range(12):
        table[digest(number)] = (number, float(number))
    marked = DigestSet(table)
    for number in (0, 3, 8, 11):
        marked.add(digest(number))
    table[digest(12)] = (12, 12.0)  # put after the set was made: past its bits
    table[digest(13)] = (13, 13.0)
    marked.add(digest(13))  # held among its others
    expected = [(raw(digest(n)), n, float(n)) for n in (1, 2, 4, 5, 6, 7, 9, 10, 12)]
    assert list(marked.unmarked()) == expected
    assert [row for row in table.rows() if not marked.holds_raw(row[0])] == expected


def test_a_table_without_some_blobs_keeps_the_others_in_order() -> None:
    table = BlobTable()
    for number in range(6):
        table[digest(number)] = (number, number + 0.5)
    smaller = table.without({raw(digest(1)), raw(digest(4)), raw(digest(99))})
    assert list(smaller.rows()) == [(raw(digest(n)), n, n + 0.5) for n in (0, 2, 3, 5)]
    assert digest(1) not in smaller
    assert smaller[digest(5)] == (5, 5.5)
    smaller[digest(7)] = (7, 7.5)  # still a table to put in
    assert len(smaller) == 5
    assert len(table) == 6


def test_a_tables_sizes_come_from_a_record_and_the_unsized_are_named_in_row_order() -> None:
    table = BlobTable()
    keys = [raw(digest(number)) for number in range(6)]
    for key in keys:
        table.put_raw(key, 0, 1.0)
    recorded = {keys[1]: 10, keys[4]: 40, raw(digest(99)): 990}  # one the table does not hold

    assert table.size_from(recorded) == [keys[0], keys[2], keys[3], keys[5]]
    assert table.sizes() == {key: recorded.get(key, 0) for key in keys}
    assert [modified for _, _, modified in table.rows()] == [1.0] * 6
    assert table.without({keys[1]}).sizes() == {key: recorded.get(key, 0) for key in keys if key != keys[1]}
