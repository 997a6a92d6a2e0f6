"""The groups' key of convscope's ParaView views, worked out by hand (no ParaView needed)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from convscope.paraview.looks import GROUP_COLOURS, group_colour_index, group_slots, key_lines, spans, tick_step


def test_a_group_takes_its_id_modulo_the_colours_or_the_next_free_one() -> None:
    assert len(GROUP_COLOURS) == 8
    assert group_slots([-1, 0, 0, 9, 9, 2]) == {0: 0, 2: 2, 9: 1}  # (9 modulo 8)
    # 8 and 16 would have 0's colour: the older (smaller id) keeps it, they take the next free ones
    assert group_slots([16, 8, 0, 1, -1]) == {0: 0, 1: 1, 8: 2, 16: 3}
    assert group_slots([7, 15]) == {7: 7, 15: 0}  # (past the last colour, the first)
    assert group_slots([-1, -1]) == {}
    # the strips' array: each filter's colour, as the Python Calculator gets the ids (a numpy array)
    colours = group_colour_index(np.array([16, 8, 0, -1, 8], np.int32))
    assert colours.dtype == np.int32 and colours.tolist() == [2, 1, 0, -1, 1]


@given(st.lists(st.integers(min_value=-1, max_value=200), max_size=64))
def test_the_groups_of_a_step_have_distinct_colours_while_there_are_enough(labels: list[int]) -> None:
    slots = group_slots(labels)
    assert set(slots) == {g for g in labels if g >= 0}
    assert all(0 <= s < len(GROUP_COLOURS) for s in slots.values())
    if len(slots) <= len(GROUP_COLOURS):
        assert len(set(slots.values())) == len(slots)
    else:  # (then the colours repeat, each as often as the others give or take one)
        assert len(set(slots.values())) == len(GROUP_COLOURS)


def test_filter_indices_read_as_runs() -> None:
    assert spans([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7, 8"
    assert spans([9, 3, 4, 5, 6]) == "3-6, 9"
    assert spans([4]) == "4" and spans([]) == ""


def test_the_key_names_each_group_with_its_filters_and_the_grey_as_no_group() -> None:
    labels = [-1, 0, 0, 0, 9, 9, -1, 2, 2]
    assert key_lines(labels, threshold=0.9) == [
        (None, "filter groups (threshold 0.9)"),
        (0, "group 0: filters 1-3"),
        (2, "group 2: filters 7, 8"),
        (1, "group 9: filters 4, 5"),
        (-1, "no group: filters 0, 6"),
    ]
    # all in groups, or none
    assert key_lines([3, 3]) == [(None, "filter groups"), (3, "group 3: filters 0, 1")]
    assert key_lines([-1, -1, -1]) == [(None, "filter groups"), (-1, "no group: filters 0-2")]


def test_a_narrow_key_breaks_its_lines_between_words_and_the_title_between_its_parts() -> None:
    lines = key_lines([0, 0, 0, -1, 0, -1, 0, 0], threshold=0.85, chars=20)
    assert lines == [
        (None, "filter groups"),
        (None, "(threshold 0.85)"),
        (0, "group 0: filters"),  # (the list on lines of its own, not "filters 0-2," over the rest)
        (None, "  0-2, 4, 6, 7"),
        (-1, "no group: filters"),
        (None, "  3, 5"),
    ]
    assert all(len(text) <= 20 for _, text in lines)


def test_a_key_with_no_room_leaves_out_the_filters_in_no_group_then_the_last_groups() -> None:
    labels = [0, 0, 1, 1, 2, 2, -1, -1]
    groups = [(0, "group 0: filters 0, 1"), (1, "group 1: filters 2, 3"), (2, "group 2: filters 4, 5")]
    assert key_lines(labels) == [(None, "filter groups"), *groups, (-1, "no group: filters 6, 7")]
    assert key_lines(labels, chars=21) == [(None, "filter groups"), *groups, (-1, "no group: filters"), (None, "  6, 7")]
    assert key_lines(labels, chars=21, max_lines=5) == [(None, "filter groups"), *groups, (-1, "no group")]
    assert key_lines(labels, max_lines=4) == [(None, "filter groups"), groups[0], (None, "+ 2 more groups"), (-1, "no group")]


def test_the_key_says_when_there_are_more_groups_than_colours() -> None:
    labels = [g for g in range(10) for _ in range(2)]
    lines = key_lines(labels)
    assert lines[1] == (None, "10 groups, 8 colours: colours repeat")
    assert [slot for slot, _ in lines[2:]] == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]


def test_the_indices_along_the_matrix_are_written_as_often_as_they_fit() -> None:
    # two digits (0.93 of the letters' height each) and a space between: 2.46 letters apart
    assert tick_step(16, 0.4) == 1
    assert tick_step(16, 0.5) == 2
    assert tick_step(32, 1.6) == 5
    assert tick_step(512, 2.9) == 10 and tick_step(512, 3.0) == 20  # (three digits: 3.39 letters apart)
    assert tick_step(1, 0.1) == 1
