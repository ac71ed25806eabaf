import pytest

from avspot.datasets.errors import DataError
from avspot.datasets.labels import (
    CLASSES,
    NUM_OUTPUTS,
    RAW_LABELS,
    class_of_label,
    format_game_time,
    label_to_class,
    parse_game_time,
)


def test_vocabulary():
    assert CLASSES == ("card", "subs", "soccer")
    assert NUM_OUTPUTS == 4
    assert [class_of_label(c) for c in CLASSES] == [0, 1, 2]
    assert [class_of_label(r) for r in RAW_LABELS] == [2, 2, 0, 0, 0, 1]
    assert class_of_label("goal") is None


@pytest.mark.parametrize(
    "raw,cls",
    [
        ("soccer-ball", "soccer"),
        ("soccer-ball-own", "soccer"),
        ("y-card", "card"),
        ("r-card", "card"),
        ("yr-card", "card"),
        ("substitution-in", "subs"),
    ],
)
def test_label_to_class(raw, cls):
    assert raw in RAW_LABELS
    assert label_to_class(raw) == cls


@pytest.mark.parametrize("raw", ["Goal", "Yellow card", "substitution-out", "", "card"])
def test_unknown_label(raw):
    with pytest.raises(DataError, match="unknown label"):
        label_to_class(raw)


def test_parse_game_time():
    assert parse_game_time("2 - 35:21") == (2, 2121)
    assert parse_game_time("1 - 00:00") == (1, 0)
    assert parse_game_time("1 - 47:05") == (1, 47 * 60 + 5)  # stoppage time
    assert format_game_time(2, 2121) == "2 - 35:21"


@pytest.mark.parametrize("bad", ["3 - 10:00", "2 - 35:61", "35:21", "2 35:21", None, 5])
def test_parse_game_time_bad(bad):
    with pytest.raises(DataError, match="gameTime"):
        parse_game_time(bad)


def test_label_sets_match_the_official_dictionaries() -> None:
    from SoccerNet.Evaluation.utils import EVENT_DICTIONARY_V1, EVENT_DICTIONARY_V2

    from avspot.datasets.labels import V1, V2, get_label_set

    for ls, official in ((V1, EVENT_DICTIONARY_V1), (V2, EVENT_DICTIONARY_V2)):
        assert list(ls.classes) == sorted(official, key=official.get)
        assert ls.outputs[-1] == "background" and ls.num_outputs == len(official) + 1
        assert get_label_set(ls.name) is ls
    assert V2.num_classes == 17 and V2.class_of("Yellow->red card") == "Yellow->red card"
    assert V1.class_of("yr-card") == "card" and V1.labels_file == "Labels.json"
    assert V2.labels_file == "Labels-v2.json"


def test_unknown_label_set_and_v2_label() -> None:
    from avspot.datasets.labels import V2, get_label_set

    with pytest.raises(DataError, match="expected one of v1, v2"):
        get_label_set("v3")
    with pytest.raises(DataError, match="unknown label 'soccer-ball'"):
        V2.class_of("soccer-ball")
