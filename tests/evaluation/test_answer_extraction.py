"""Letter and label extraction on realistic free-form answers, quirks of the reference rules included."""

import pytest

from pave.evaluation import extract_letter, extract_letter_mlvu, extract_letter_mvbench, match_label


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("  C\n", "C"),
        ("B. Three.", "B"),
        ("(D) Five.", "D"),
        ("The answer is C.", "C"),
        ("The best answer is (D)", "D"),
        ("The correct answer is: A", "A"),
        ("The best option is B", "B"),
        # The first capital A-D anywhere wins, even inside a word.
        ("Answer: C", "A"),
        ("Based on the video, the answer is D.", "B"),
        ("I think it is c", None),
        ("the man in the video is probably counting three planets on the screen here", None),
        ("", None),
    ],
)
def test_extract_letter_lmms_eval_rule(text, letter):
    assert extract_letter(text) == letter


def test_extract_letter_respects_the_letter_set():
    assert extract_letter("E", letters="ABCD") is None
    assert extract_letter("E", letters="ABCDE") == "E"


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B. Opened the door.", "B"),
        ("b. opened the door", "B"),
        ("(B) Opened the door.", "B"),
        ("The answer is (C).", "C"),
        ("Option D", "D"),
        ("E", "E"),
        ("Opened the door.", None),
        # Case-insensitive search for a stand-alone letter: the article "a" reads as A.
        ("a person opens the door", "A"),
        ("The person put down the cup, then opened the door (B).", "B"),
        ("", None),
    ],
)
def test_extract_letter_mvbench_rule(text, letter):
    assert extract_letter_mvbench(text) == letter


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B) Blue", "B"),
        ("(B) Blue", "B"),
        ("The answer is (C)", "C"),
        ("  A ", "A"),
        ("Blue", None),
        (") Blue", None),
        ("A.", None),
    ],
)
def test_extract_letter_official_mlvu_rule(text, letter):
    assert extract_letter_mlvu(text) == letter


LEVELS = ("Novice", "Early Expert", "Intermediate Expert", "Late Expert")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Late Expert", "Late Expert"),
        ("late expert.", "Late Expert"),
        ("I would say the person is a Novice.", "Novice"),
        ("Intermediate  Expert", "Intermediate Expert"),
        ("Novice or Early Expert", None),
        ("expert", None),
        ("", None),
    ],
)
def test_match_label(text, label):
    assert match_label(text, LEVELS) == label
