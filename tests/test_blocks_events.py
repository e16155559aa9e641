"""Blocks and science events (issue 2): ams02 against the independent encoder."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import ams02
import amsenc as E
from _checks import assert_table, error_rows, kinds, n_rows, runs

ERROR_KINDS_BLOCK = {"bad_block_header", "block_overrun", "bad_chain"}


def other(order: str) -> str:
    return "big" if order == "little" else "little"


def check_errors_dtypes(err: dict) -> None:
    assert set(err) >= {"offset", "event_index", "kind", "detail"}
    assert err["offset"].dtype == np.uint64
    assert err["event_index"].dtype == np.int64
    assert err["kind"].dtype.kind == "U"
    assert err["detail"].dtype.kind == "U"
    n = len(err["offset"])
    assert all(len(err[c]) == n for c in ("event_index", "kind", "detail"))
    assert np.all(np.diff(err["offset"].astype(np.int64)) >= 0), "errors() must be sorted by offset"


def check_run(f, run: E.Run) -> None:
    assert_table(f.blocks(), run.truth_blocks(), E.BLOCK_COLUMNS, name="blocks")
    assert_table(f.events(), run.truth_events(), E.EVENT_COLUMNS, name="events")
    assert f.n_events == run.n_events
    assert f.n_blocks == len(run.block_rows)


# ---------------------------------------------------------------- properties


@given(run=runs())
def test_random_runs_blocks_and_events(run, write_file):
    path = write_file(run.to_bytes())
    f = ams02.open(path, byte_order=run.order)
    assert f.byte_order == run.order
    check_run(f, run)
    err = f.errors()
    check_errors_dtypes(err)
    assert error_rows(err) == []


@given(run=runs())
def test_auto_byte_order(run, write_file):
    data = run.to_bytes()
    assume(not E.chain_ok(data, other(run.order)))  # a file both orders can read is ambiguous
    path = write_file(data)
    with ams02.open(path) as f:
        assert f.byte_order == run.order
        check_run(f, run)


@given(run=runs(max_blocks=6), cols=st.data())
def test_column_subsets(run, cols, write_file):
    path = write_file(run.to_bytes())
    f = ams02.open(path, byte_order=run.order)
    for method, columns, truth in (
        (f.blocks, E.BLOCK_COLUMNS, run.truth_blocks()),
        (f.events, E.EVENT_COLUMNS, run.truth_events()),
    ):
        names = cols.draw(st.lists(st.sampled_from(sorted(columns)), min_size=1, unique=True))
        got = method(columns=names)
        assert set(got) == set(names)
        assert_table(got, truth, {n: columns[n] for n in names})


@given(run=runs(max_blocks=15, p_event=0.9), data=st.data())
def test_entry_start_stop(run, data, write_file):
    path = write_file(run.to_bytes())
    f = ams02.open(path, byte_order=run.order)
    n = run.n_events
    start = data.draw(st.integers(0, n))
    stop = data.draw(st.integers(start, n))
    truth = {k: v[start:stop] for k, v in run.truth_events().items()}
    assert_table(f.events(entry_start=start, entry_stop=stop), truth, E.EVENT_COLUMNS)
    assert_table(f.events(entry_start=start), {k: v[start:] for k, v in run.truth_events().items()}, E.EVENT_COLUMNS)
    assert_table(f.events(entry_stop=stop), {k: v[:stop] for k, v in run.truth_events().items()}, E.EVENT_COLUMNS)


# ---------------------------------------------------------------- large runs


@pytest.fixture(scope="module", params=E.ORDERS)
def big_run(request, tmp_path_factory):
    opts = E.RunOptions(p_event=0.92, p_raw=0.03, p_long=0.02, p_level3=0.3, max_hits=8, max_udrs=3, random_subblock_bits=True)
    run = E.random_run(random.Random(20240611), request.param, 4000, opts)
    path = tmp_path_factory.mktemp("big") / f"big_{request.param}.dat"
    run.write(path)
    return run, path


def test_large_run_all_columns(big_run):
    run, path = big_run
    assert run.n_events > 3000
    f = ams02.open(path)
    assert f.byte_order == run.order
    check_run(f, run)
    assert error_rows(f.errors()) == []


@pytest.mark.parametrize("threads", [2, 3])
def test_large_run_threads_agree(big_run, threads):
    # 4000 events make 256-event chunks decoded in rounds of one chunk per thread (the
    # last round partial with 3 threads) and copied into the result in parallel.
    run, path = big_run
    one = ams02.open(path, threads=1)
    many = ams02.open(path, threads=threads)
    tables = ("blocks", "events", "fragments", "trd_hits", "trd_raw", "errors")
    for method in tables:
        a, b = getattr(one, method)(), getattr(many, method)()
        assert set(a) == set(b)
        if method != "errors":
            assert len(next(iter(a.values()))) > 0, method
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{method}.{k}")
    # The fragment tree survives the parallel join: parents are earlier rows of the same event.
    fr = many.fragments()
    has_parent = fr["parent"] >= 0
    parents = fr["parent"][has_parent]
    assert np.all(parents < np.flatnonzero(has_parent))
    np.testing.assert_array_equal(fr["event_index"][parents], fr["event_index"][has_parent])


# ---------------------------------------------------------------- fixed files


def small_run(order: str = "little") -> E.Run:
    run = E.Run(order)
    run.add_block([1, 2, 3], rr=False, node=511, type=3, status=2, tag=5)  # request, FBI=2
    run.add_event(jmdc=E.Jmdc(run=7, event=1, time=1000, status=0x8001, gps_week=5, gps_second=6, gps_fraction=7), node=1, tag=3, time=11)
    run.add_block([9], rr=True, node=130, type=0x1F, type_ext=0x0203, status=0, tag=9, time=12)
    run.add_event(jmdc=E.Jmdc(run=7, event=2, time=1001), groups=[E.Group(136, E.leaf(0, [4, 5]))], node=1, time=13)
    run.add_block([0] * 5, rr=True, node=3, type=5, status=8, time=14)  # TYPE=5 from a JMDC but STATUS=8: not an event
    run.add_event(jmdc=E.Jmdc(run=7, event=3, time=1002), level3=E.Level3([1, 2]), node=1, time=15, long=True)
    return run


@pytest.mark.parametrize("order", E.ORDERS)
def test_small_run_fixed(order, run_file):
    run = small_run(order)
    path, _ = run_file(run)
    f = ams02.open(path)
    assert f.byte_order == order
    check_run(f, run)
    ev = f.events()
    assert ev["event"].tolist() == [1, 2, 3]
    assert ev["gps"].tolist() == [True, False, False]
    assert ev["gps_week"].tolist() == [5, 0, 0]
    assert ev["n_groups"].tolist() == [0, 1, 0]
    assert ev["level3"].tolist() == [False, False, True]
    bl = f.blocks()
    assert bl["data_type"].tolist() == [3, 5, 0x1F0203, 5, 5, 5]
    assert bl["status"].tolist() == [2, 0, 0, 0, 8, 0]
    assert bl["time"].tolist() == [0, 11, 12, 13, 14, 15]
    assert bl["long"].tolist() == [False, False, False, False, False, True]


def test_explicit_order_reads_words_in_that_order(run_file):
    run = small_run("big")
    path, _ = run_file(run)
    assert ams02.open(path, byte_order="big").byte_order == "big"
    assert ams02.open(path, byte_order="auto").byte_order == "big"


def test_file_attributes_and_context_manager(run_file):
    run = small_run()
    path, _ = run_file(run)
    with ams02.open(path) as f:
        assert isinstance(f, ams02.File)
        assert f.n_events == 3
        assert f.n_blocks == 6
        assert str(f.path) == str(path)
        assert f.events(columns=["event"])["event"].tolist() == [1, 2, 3]


def test_open_accepts_str_path(run_file):
    run = small_run()
    path, _ = run_file(run)
    assert ams02.open(str(path)).n_events == 3


def test_unknown_column_raises_keyerror(run_file):
    path, _ = run_file(small_run())
    f = ams02.open(path)
    with pytest.raises(KeyError) as ei:
        f.events(columns=["event", "no_such_column"])
    msg = str(ei.value)
    assert "no_such_column" in msg
    for valid in ("jmdc_node", "unix_time", "crc_ok"):
        assert valid in msg
    with pytest.raises(KeyError) as ei:
        f.blocks(columns=["nope"])
    assert "data_type" in str(ei.value) and "type_ext" in str(ei.value)


def test_empty_entry_range_keeps_dtypes(run_file):
    path, _ = run_file(small_run())
    ev = ams02.open(path).events(entry_start=1, entry_stop=1)
    for k, dt in E.EVENT_COLUMNS.items():
        assert ev[k].dtype == np.dtype(dt) and len(ev[k]) == 0


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        ams02.open(tmp_path / "does_not_exist.dat")


def test_exception_hierarchy():
    assert issubclass(ams02.FormatError, ams02.Ams02Error)
    assert issubclass(ams02.Ams02Error, Exception)


def test_text_file_is_format_error(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("This is a text file, not AMS data.\n" * 20)
    for order in ("auto",):
        with pytest.raises(ams02.FormatError) as ei:
            ams02.open(p, byte_order=order).blocks()
        assert "notes.txt" in str(ei.value)
    with pytest.raises(ams02.Ams02Error):
        ams02.open(p)


def test_random_junk_is_format_error(tmp_path):
    rng = random.Random(99)
    # first word: 0xFF7F -> little 0x7FFF (32767 bytes: past the end), big 0xFF7F (L=1, huge)
    data = b"\xff\x7f" + bytes(rng.getrandbits(8) for _ in range(4094))
    assert not E.first_block_fits(data, "little") and not E.first_block_fits(data, "big")
    p = tmp_path / "junk.bin"
    p.write_bytes(data)
    with pytest.raises(ams02.FormatError) as ei:
        ams02.open(p).blocks()
    assert "junk.bin" in str(ei.value)


# ---------------------------------------------------------------- corruption


def corruptible_run(order: str):
    """A, B, C, D where B's header words can never look like a valid size word
    (so resynchronisation can only restart at C)."""
    run = E.Run(order)
    a = run.add_event(jmdc=E.Jmdc(event=1), groups=[E.Group(137, E.leaf(0, [1]))], node=0, tag=0, time=0)
    # B: RR=1 (ID word as a size word has L=1 and is huge), STATUS=8 TAG=0 and TIME=0
    b = run.add_block([0] * 6, rr=True, node=140, type=3, status=8, tag=0, time=0)
    c = run.add_event(jmdc=E.Jmdc(event=2), node=0, tag=0, time=0)  # TAG 0: secondary header word is 0
    d = run.add_block([7, 7], rr=False, node=300, type=2, status=1, tag=0)
    return run, (a, b, c, d)


def assert_blocks_except(f, run: E.Run, skip_offsets: set) -> None:
    """Every block of ``run`` not in ``skip_offsets`` is decoded with its truth;
    nothing else is reported except possibly the skipped ones."""
    truth = run.truth_blocks()
    got = f.blocks()
    keep = np.array([int(o) not in skip_offsets for o in truth["offset"]])
    got_keep = np.array([int(o) not in skip_offsets for o in got["offset"]])
    assert_table({k: v[got_keep] for k, v in got.items()}, {k: v[keep] for k, v in truth.items()}, E.BLOCK_COLUMNS)


@pytest.mark.parametrize("order", E.ORDERS)
@pytest.mark.parametrize("how", ["past_end", "into_next"])
def test_corrupt_size_word(order, how, run_file):
    run, (a, b, c, d) = corruptible_run(order)
    words = list(run.words)
    if how == "past_end":
        words[b.offset // 2] = 0x7FF0  # way past the end of the file
    else:
        words[b.offset // 2] += 4  # lands on C's secondary header word (0: not a header)
    run.words = words
    path, data = run_file(run)
    f = ams02.open(path, byte_order=order)
    err = f.errors()
    check_errors_dtypes(err)
    rows = error_rows(err)
    assert any(o == b.offset and k in ERROR_KINDS_BLOCK for o, _e, k, _d in rows), rows
    assert all(o == b.offset for o, _e, _k, _d in rows), rows
    assert all(e == -1 for _o, e, _k, _d in rows), rows
    assert_blocks_except(f, run, {b.offset})
    ev = f.events()
    assert ev["offset"].tolist() == [a.offset, c.offset]
    assert ev["event"].tolist() == [1, 2]


@pytest.mark.parametrize("order", E.ORDERS)
@pytest.mark.parametrize("junk", [[0, 0, 0], [0xFFFF], [0x0001, 0, 0, 0, 0]])
@pytest.mark.parametrize("requested", ["explicit", "auto"])
def test_junk_between_blocks(order, junk, requested, run_file):
    run = E.Run(order)
    for i in range(20):  # a long good chain before the damage
        run.add_block([i, 2 * i], rr=bool(i % 2), node=300 + i, type=2, status=i % 16, tag=0, time=0)
    a = run.add_event(jmdc=E.Jmdc(event=1), node=0, tag=0, time=0)
    b = run.add_block([0] * 2, rr=True, node=140, type=3, status=8, tag=0, time=0)
    j = run.add_junk(junk)
    c = run.add_event(jmdc=E.Jmdc(event=2), node=0, tag=0, time=0)
    run.add_block([7, 7], rr=False, node=300, type=2, status=1, tag=0)
    path, _ = run_file(run)
    f = ams02.open(path, byte_order=order if requested == "explicit" else "auto")
    assert f.byte_order == order  # a valid chain at the start is enough for "auto"
    rows = error_rows(f.errors())
    assert any(o == j and k in ERROR_KINDS_BLOCK for o, _e, k, _d in rows), (j, rows)
    assert_blocks_except(f, run, set())  # A, B, C, D all decoded (B's header is valid)
    assert f.events()["offset"].tolist() == [a.offset, c.offset]
    assert b.offset in f.blocks()["offset"].tolist()


@pytest.mark.parametrize("order", E.ORDERS)
def test_auto_with_early_damage(order, run_file):
    """Two good blocks, then junk, then good blocks: only one byte order gives a
    valid chain at the start of the file (FORMAT.md section 1), so "auto" must
    pick it rather than refuse the file."""
    run = E.Run(order)
    run.add_event(jmdc=E.Jmdc(event=1), node=0, tag=0, time=0)
    run.add_block([0] * 2, rr=True, node=140, type=3, status=8, tag=0, time=0)
    j = run.add_junk([0, 0, 0])
    run.add_event(jmdc=E.Jmdc(event=2), node=0, tag=0, time=0)
    run.add_block([7, 7], rr=False, node=300, type=2, status=1, tag=0)
    data = run.to_bytes()
    assert E.first_block_fits(data, order) and not E.first_block_fits(data, other(order))
    path, _ = run_file(run)
    f = ams02.open(path)
    assert f.byte_order == order
    assert [(o, k in ERROR_KINDS_BLOCK) for o, _e, k, _d in error_rows(f.errors())] == [(j, True)]
    assert_blocks_except(f, run, set())


@pytest.mark.parametrize("order", E.ORDERS)
def test_truncated_last_block(order, run_file):
    run, (a, b, c, d) = corruptible_run(order)
    run.words = run.words[:-1]  # D loses its last word
    path, _ = run_file(run)
    f = ams02.open(path, byte_order=order)
    rows = error_rows(f.errors())
    assert any(o == d.offset and k == "block_overrun" for o, _e, k, _d in rows), rows
    assert f.events()["offset"].tolist() == [a.offset, c.offset]


@pytest.mark.parametrize("order", E.ORDERS)
def test_trailing_byte(order, tmp_path):
    run, _ = corruptible_run(order)
    data = run.to_bytes() + b"\x00"
    p = tmp_path / "t.dat"
    p.write_bytes(data)
    f = ams02.open(p, byte_order=order)
    rows = error_rows(f.errors())
    assert [(o, k) for o, _e, k, _d in rows] == [(len(data) - 1, "trailing_byte")]
    assert_table(f.blocks(), run.truth_blocks(), E.BLOCK_COLUMNS)


# ---------------------------------------------------------------- event-level problems


@pytest.mark.parametrize("order", E.ORDERS)
def test_bad_crc(order, run_file):
    run = E.Run(order)
    top = E.cddc(0, [E.leaf(4, [1, 2, 3])])  # an SDR on JINJ port 4: a leaf
    good = E.Group(128, top)
    run.add_event(jmdc=E.Jmdc(event=1), groups=[good])
    body = good.body(2)
    bad = E.Group(128, top, crc=E.crc16_words(body) ^ 0x0100)
    run.add_event(jmdc=E.Jmdc(event=2), groups=[good, bad])
    run.add_event(jmdc=E.Jmdc(event=3), groups=[good])
    path, _ = run_file(run)
    f = ams02.open(path)
    ev = f.events()
    assert ev["crc_ok"].tolist() == [True, False, True]
    assert ev["n_groups"].tolist() == [1, 2, 1]
    rows = error_rows(f.errors())
    assert [(e, k) for _o, e, k, _d in rows] == [(1, "crc_mismatch")]
    info = run.event_infos[1]
    g_off = info["subblock_offsets"][2]
    g_end = g_off + 2 * info["subblock_infos"][2].n_words
    assert g_off <= rows[0][0] < g_end, (rows, g_off, g_end)
    assert_table(ev, run.truth_events(), E.EVENT_COLUMNS)


def _event_problem(run_file, order, subblocks, node=0):
    run = E.Run(order)
    run.add_event(jmdc=E.Jmdc(event=1), node=node)
    info = run.add_event(subblocks=subblocks, node=node)
    run.add_event(jmdc=E.Jmdc(event=3), node=node)
    path, _ = run_file(run)
    f = ams02.open(path)
    ev = f.events()
    assert ev["offset"].tolist() == [r["offset"] for r in run.event_rows]
    rows = error_rows(f.errors())
    end = info.offset + 2 * info.n_words
    for o, e, _k, _d in rows:
        assert e == 1 and info.offset <= o < end, (rows, info.offset, end)
    return run, f, ev, rows


@pytest.mark.parametrize("order", E.ORDERS)
def test_jmdc_missing(order, run_file):
    g = E.Group(136, E.leaf(0, [1]), event_number=2)
    run, f, ev, rows = _event_problem(run_file, order, [g])
    assert ev["jmdc_ok"].tolist() == [True, False, True]
    assert "jmdc_missing" in [k for *_x, k, _d in rows]


@pytest.mark.parametrize("order", E.ORDERS)
def test_jmdc_gps_mismatch(order, run_file):
    # G=1 but only 24 bytes (no GPS words)
    j = E.Jmdc(event=2, status=0x8000, gps_words=False)
    run, f, ev, rows = _event_problem(run_file, order, [j])
    assert "jmdc_gps_mismatch" in [k for *_x, k, _d in rows]
    # G=0 but 34 bytes
    j = E.Jmdc(event=2, status=0x0000, gps_words=True)
    run, f, ev, rows = _event_problem(run_file, order, [j])
    assert "jmdc_gps_mismatch" in [k for *_x, k, _d in rows]


@pytest.mark.parametrize("order", E.ORDERS)
def test_jmdc_size(order, run_file):
    # FORMAT.md 4.1 (changed): a longer 2007 header is reported (jmdc_extra_words) and its
    # words 0-10 decoded; a shorter one (jmdc_size) has no fields.
    j = E.Jmdc(run=7, run_tag=8, event=2, time=1_300_000_000, fine_time=5)
    longer = E.RawSub(E.subblock(j.data_words() + [0, 0], node=0, type=5)[0])  # 28 bytes
    run, f, ev, rows = _event_problem(run_file, order, [longer])
    assert [k for *_x, k, _d in rows] == ["jmdc_extra_words"]
    assert ev["jmdc_ok"].tolist() == [True, True, True]
    assert (ev["run"][1], ev["run_tag"][1], ev["event"][1], ev["time"][1]) == (7, 8, 2, 1_300_000_000)
    assert ev["unix_time"][1] == 1_300_000_000 + 5e-6
    shorter = E.RawSub(E.subblock(j.data_words()[:9], node=0, type=5)[0])  # 20 bytes
    run, f, ev, rows = _event_problem(run_file, order, [shorter])
    assert [k for *_x, k, _d in rows] == ["jmdc_size"]
    assert ev["jmdc_ok"].tolist() == [True, False, True]


@pytest.mark.parametrize("order", E.ORDERS)
def test_group_event_number(order, run_file):
    g = E.Group(136, E.leaf(0, [1]), event_number=0x1234)
    run, f, ev, rows = _event_problem(run_file, order, [E.Jmdc(event=2), g])
    assert [k for *_x, k, _d in rows] == ["group_event_number"]
    assert ev["n_groups"].tolist() == [0, 1, 0]


@pytest.mark.parametrize("order", E.ORDERS)
def test_unknown_subblock_skipped(order, run_file):
    odd = E.RawSub(E.subblock([1, 2, 3], node=40, type=9)[0])
    l3_wrong_node = E.Level3([4, 5], node=200)  # TYPE=6 but not from a JMDC
    g = E.Group(136, E.leaf(0, [1]))
    run, f, ev, rows = _event_problem(run_file, order, [E.Jmdc(event=2), odd, g, l3_wrong_node])
    assert [k for *_x, k, _d in rows] == ["unknown_subblock", "unknown_subblock"]
    assert ev["n_groups"].tolist() == [0, 1, 0]
    assert ev["level3"].tolist() == [False, False, False]
    assert ev["jmdc_ok"].tolist() == [True, True, True]


@pytest.mark.parametrize("order", E.ORDERS)
def test_type_ext_subblock_is_unknown(order, run_file):
    ext = E.RawSub(E.subblock([5, 6], node=128, type=0x1F, type_ext=0x0001)[0])  # TYPE_EXT 1: still not a group
    g = E.Group(136, E.leaf(0, [1]))
    run, f, ev, rows = _event_problem(run_file, order, [E.Jmdc(event=2), ext, g])
    assert [k for *_x, k, _d in rows] == ["unknown_subblock"]
    assert rows[0][0] == run.event_infos[1]["subblock_offsets"][1]
    assert ev["n_groups"].tolist() == [0, 1, 0]
    assert ev["crc_ok"].tolist() == [True, True, True]


@pytest.mark.parametrize("order", E.ORDERS)
def test_subblock_order(order, run_file):
    g = E.Group(136, E.leaf(0, [1]))
    run, f, ev, rows = _event_problem(run_file, order, [E.Jmdc(event=2), E.Level3([1]), g])
    assert "subblock_order" in [k for *_x, k, _d in rows]
    run, f, ev, rows = _event_problem(run_file, order, [E.Jmdc(event=2), g, E.Jmdc(event=2)])
    assert "subblock_order" in [k for *_x, k, _d in rows]
    assert ev["event"].tolist() == [1, 2, 3] and ev["n_groups"].tolist() == [0, 1, 0]


def test_library_np_is_default(run_file):
    path, _ = run_file(small_run())
    f = ams02.open(path)
    a, b = f.events(), f.events(library="np")
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("order", E.ORDERS)
def test_duplicate_level3(order, run_file):
    run, f, ev, rows = _event_problem(run_file, order, [E.Jmdc(event=2), E.Level3([1, 2, 3]), E.Level3([4])])
    assert [k for *_x, k, _d in rows] == ["duplicate_level3"]
    assert ev["level3"].tolist() == [False, True, False]
    assert int(ev["level3_words"][1]) == 3
    assert int(ev["level3_offset"][1]) == run.event_rows[1]["level3_offset"]


@pytest.mark.parametrize("order", E.ORDERS)
def test_subblock_overrun(order, run_file):
    g = E.Group(136, E.leaf(0, [1, 2]), size=200)  # says 200 bytes; the event ends sooner
    run, f, ev, rows = _event_problem(run_file, order, [E.Jmdc(event=2), g])
    assert "subblock_overrun" in [k for *_x, k, _d in rows]
    assert ev["jmdc_ok"].tolist() == [True, True, True]
    assert int(ev["event"][1]) == 2


@pytest.mark.parametrize("order", E.ORDERS)
@pytest.mark.parametrize("jtype", [0x10, 0x11, 0x12, 0x13])
def test_flight_jmdc_header(order, jtype, run_file):
    """FORMAT.md 9.1: the flight header's fields, records and times equal the encoder's truth."""
    l3 = E.record_words(9, [0xAB, 1, 2, 3, 4], flags=5) if jtype & 1 else None
    gps = E.record_words(11, [0x12, 0x3456, 0x789A, 0xBCDE, 0xF012, 0x3456]) if jtype & 2 else None
    j = E.FlightJmdc(fine_ms=123, run_type=7, run_id=1_400_000_000, event=2, level3=l3, gps=gps)
    run = E.Run(order)
    run.add_event(jmdc=E.FlightJmdc(event=1, run_id=1_400_000_000), node=5, time=1_400_000_001)
    run.add_event(jmdc=j, node=13, time=1_400_000_002, groups=[E.Group(136, E.leaf(0, [9]))])
    path, _ = run_file(run)
    f = ams02.open(path)
    ev = f.events()
    assert error_rows(f.errors()) == []
    assert_table(ev, run.truth_events(), E.EVENT_COLUMNS)
    assert ev["layout"].tolist() == [2, 2] and ams02.LAYOUTS[2] == "flight"
    assert ev["jmdc_type"].tolist() == [0x10, jtype]
    assert ev["fine_time"][1] == 123_000 and ev["run_type"][1] == 7
    assert ev["time"][1] == 1_400_000_002 and ev["unix_time"][1] == 1_400_000_002.123
    assert ev["level3"][1] == bool(jtype & 1)
    if jtype & 2:
        assert ev["gps_n"][1] == 3
        assert ev["gps_values"][1].tolist() == [0x0B12_3456, 0x789A_BCDE, 0xF012_3456, 0, 0, 0, 0]


@pytest.mark.parametrize("order", E.ORDERS)
def test_flight_jmdc_header_problems(order, run_file):
    """A record that overruns the header: jmdc_short, no fields, the event's groups decoded;
    odd record lengths and words after the records: reported, kept."""
    short = E.FlightJmdc(event=2, type=0x13, level3=E.record_words(9)[:2])
    g = E.Group(136, E.leaf(0, [9]))
    run, f, ev, rows = _event_problem(run_file, order, [short, g])
    assert [k for *_x, k, _d in rows] == ["jmdc_short"]
    assert ev["jmdc_ok"].tolist() == [True, False, True] and ev["layout"][1] == 2
    assert ev["n_groups"][1] == 1
    odd = E.FlightJmdc(event=2, level3=E.record_words(7), gps=E.record_words(8), extra=[1, 2])
    run, f, ev, rows = _event_problem(run_file, order, [odd, g])
    assert [k for *_x, k, _d in rows] == ["level3_length", "gps_length", "jmdc_extra_words"]
    assert ev["level3_words"][1] == 4 and ev["gps_words"][1] == 4 and ev["gps_n"][1] == 0
    # A JMDC header TYPE outside 5 and 0x10..0x13: one jmdc_missing row, the rest decoded.
    other = E.Jmdc(event=2, type=0x14)
    run, f, ev, rows = _event_problem(run_file, order, [other, g])
    assert [k for *_x, k, _d in rows] == ["jmdc_missing"]
    assert ev["layout"][1] == 0 and ev["n_groups"][1] == 1


@pytest.mark.parametrize("order", E.ORDERS)
@pytest.mark.parametrize("run_id", [1_300_000_000, 1_400_000_000])
def test_huffman_coded_group_equals_the_plain_group(order, run_id, run_file):
    """FORMAT.md 9.3: a TYPE 4 group decodes to the same fragments and hits as TYPE 1 (the
    table chosen by the run ID: B50A, then B606)."""
    rng = random.Random(run_id)
    opts = E.RunOptions()
    tables = []
    for coded in (False, True):
        rng.seed(run_id)
        g = E.random_group(rng, opts, flight=True)
        g.top = E.cddc(0, [E.random_jinf_u(rng, 1, opts, True)], cdp=False)
        g.node = 128
        if coded:
            g.type = E.TYPE_GROUP_CODED
        run = E.Run(order)
        run.add_event(jmdc=E.FlightJmdc(event=1, run_id=run_id), groups=[g], time=run_id)
        path, _ = run_file(run)
        f = ams02.open(path)
        assert error_rows(f.errors()) == []
        fr = f.fragments()
        assert_table(fr, run.truth_fragments(), E.FRAGMENT_COLUMNS)
        assert fr["compressed"].all() == coded
        tables.append((f.trd_hits(), fr, f.events()))
    (h0, f0, e0), (h1, f1, e1) = tables
    for k in h0:
        assert np.array_equal(h0[k], h1[k]), k
    for k in ("depth", "parent", "node_status", "n_words", "role", "jinf_mask"):
        assert np.array_equal(f0[k], f1[k]), k
    assert e0["n_trd_hits"].tolist() == e1["n_trd_hits"].tolist()
    assert f1["coded_words"][0] > 0 and (f1["coded_words"][1:] == 0).all()


@pytest.mark.parametrize("order", E.ORDERS)
def test_huffman_stream_damage(order, run_file):
    """A corrupt coded stream: one huffman_invalid row, crc_ok False, the group counted, the
    other groups and events decoded."""
    plain = E.Group(128, E.cddc(0, [E.leaf(4, [1, 2], cdp=True)], cdp=False))
    bad = E.Group(128, E.cddc(0, [E.leaf(4, [1, 2], cdp=True)], cdp=False), type=E.TYPE_GROUP_CODED)
    bad.coded = [0x0000] * 3 + [0xFFFF]  # END at bit 0, 52 bits left unread
    run, f, ev, rows = _event_problem(run_file, order, [E.FlightJmdc(event=2), bad, plain])
    assert [k for *_x, k, _d in rows] == ["huffman_invalid"]
    assert ev["n_groups"][1] == 2 and ev["crc_ok"].tolist() == [True, False, True]
    assert (f.fragments()["event_index"] == 1).sum() == 2  # the plain group's two rows


# ---------------------------------------------------------------- simulate


def test_simulate_deterministic(tmp_path):
    a, b, c = tmp_path / "a.dat", tmp_path / "b.dat", tmp_path / "c.dat"
    ams02.simulate(a, 50, seed=3)
    ams02.simulate(b, 50, seed=3)
    ams02.simulate(c, 50, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("order", E.ORDERS)
def test_simulate_decodes_cleanly(order, tmp_path):
    p = tmp_path / "sim.dat"
    ams02.simulate(p, 200, seed=1, byte_order=order, compressed=0.5)
    data = p.read_bytes()
    assert E.chain_ok(data, order)  # our own chain walker agrees on the layout
    f = ams02.open(p)
    assert f.byte_order == order
    assert f.n_events == 200
    assert error_rows(f.errors()) == []
    ev = f.events()
    assert ev["event"].tolist() == list(range(1, 201))
    assert ev["crc_ok"].all()
    assert ev["jmdc_ok"].all()
    # our own reading of the simulated file: every group's CRC checks with our CRC
    words = E.unpack_words(data, order)
    n_groups = 0
    ev_offsets = set(int(o) for o in ev["offset"])
    # (events inside envelopes too: FORMAT.md 10)
    nested = [(r["offset"], r["size"], 2 if r["long"] else 1) for r in E.walk_nested_blocks(data, order)]
    assert ev_offsets <= {off for off, _, _ in nested}
    for off, size, ns in nested:
        if off not in ev_offsets:
            continue
        for soff, ssize, sns, sid in E.event_subblocks(words, off, size, ns):
            body = words[soff // 2 + sns + 1 : soff // 2 + sns + ssize // 2]
            if sid & 0x1F == E.TYPE_GROUP_CODED:
                # Huffman-coded (flight data): decode with our own decoder first
                import huffenc

                table = huffenc.table_for_run(int(ev["run_tag"][0]))
                plain = huffenc.decode(body, table)
                body = [(plain[i] << 8) | plain[i + 1] for i in range(0, len(plain), 2)]
            if sid & 0x1F in (E.TYPE_GROUP, E.TYPE_GROUP_CODED):
                assert E.crc16_words(body) == 0
                n_groups += 1
    assert n_groups == int(ev["n_groups"].sum())


# ---------------------------------------------------------------- robustness


@given(run=runs(max_blocks=8, p_trd_group=0.7), data=st.data())
def test_damaged_files_never_crash(run, data, write_file):
    """Random byte damage: every table still comes back well-formed, every
    offset stays inside the file, and blocks before the damage are intact."""
    raw = bytearray(run.to_bytes())
    n_flips = data.draw(st.integers(1, 6))
    positions = sorted(data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=n_flips, max_size=n_flips)))
    for p in positions:
        raw[p] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.sampled_from([len(raw), len(raw) - 1, len(raw) // 2]))
    raw = bytes(raw[:max(cut, 2)])
    path = write_file(raw)
    try:
        f = ams02.open(path, byte_order=run.order)
    except ams02.FormatError as e:
        # FORMAT.md 1: damage that breaks the chain at the start, with no event left to
        # anchor on, reads like data that are not AMS blocks: refused, never misread.
        assert "not AMS block data" in str(e)
        return
    tables = {
        "blocks": f.blocks(), "events": f.events(), "errors": f.errors(), "fragments": f.fragments(),
        "trd_hits": f.trd_hits(), "trd_raw": f.trd_raw(),
    }
    for name, t in tables.items():
        lens = {k: len(v) for k, v in t.items()}
        assert len(set(lens.values())) <= 1, (name, lens)
    check_errors_dtypes(tables["errors"])
    assert_table(tables["blocks"], {k: tables["blocks"][k] for k in E.BLOCK_COLUMNS}, E.BLOCK_COLUMNS)
    assert_table(tables["events"], {k: tables["events"][k] for k in E.EVENT_COLUMNS}, E.EVENT_COLUMNS)
    assert_table(tables["fragments"], {k: tables["fragments"][k] for k in E.FRAGMENT_COLUMNS}, E.FRAGMENT_COLUMNS)
    assert all(int(o) < len(raw) for o in tables["blocks"]["offset"])
    assert all(int(o) <= len(raw) for o in tables["errors"]["offset"])
    fr = tables["fragments"]
    for off, k in zip(fr["data_offset"], fr["n_words"]):
        assert int(off) + 2 * int(k) + 2 <= len(raw)
        assert len(f.words(int(off), int(k))) == int(k)
    ev_idx = tables["trd_hits"]["event_index"]
    assert all(0 <= int(e) < f.n_events for e in ev_idx)
    # blocks wholly before the first damaged byte are decoded exactly
    first = min(positions[0], len(raw))
    truth = run.truth_blocks()
    ends = [int(o) + 2 * (2 if lg else 1) + int(s) for o, s, lg in zip(truth["offset"], truth["size"], truth["long"])]
    intact = [i for i, e in enumerate(ends) if e <= first]
    got = tables["blocks"]
    for i in intact[:-1]:  # the last intact block may legitimately be blamed for what follows it
        j = np.nonzero(got["offset"] == truth["offset"][i])[0]
        assert j.size == 1, f"intact block at {truth['offset'][i]} not decoded"
        for col in E.BLOCK_COLUMNS:
            assert got[col][j[0]] == truth[col][i], (col, i)
