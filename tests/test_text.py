"""The prompt normaliser, step by step, with expected strings worked out by hand from section 5.1
of shared/reference/dalle-mini-architecture.md.

Each case is chosen so that it fails if its step is missing or misplaced. The hashtag tests write a
tiny word-frequency file in tmp_path: a word's cost grows with its line number, as in the real file.
"""

from pathlib import Path

import pytest

# The normaliser's libraries come with the `model` extra, which a server-only install leaves out.
pytest.importorskip("ftfy")
pytest.importorskip("emoji")
pytest.importorskip("unidecode")

from minidalle.text import (
    WORD_FREQUENCY_FILE,
    TextNormalizer,
    load_word_costs,
    segment_hashtag,
)

WORDS = ["the", "thing", "big", "cat", "'s"]


@pytest.fixture
def normalize():
    """A normaliser without a word-frequency file, as on a checkpoint that lacks one."""
    return TextNormalizer()


@pytest.fixture
def word_file(tmp_path) -> Path:
    """A five-word frequency file: one word per line, most frequent first, counts ignored."""
    path = tmp_path / WORD_FREQUENCY_FILE
    path.write_text("".join(f"{word} {1000 - rank}\n" for rank, word in enumerate(WORDS)))
    return path


def test_result_starts_with_exactly_one_space(normalize):
    assert normalize("A cat") == " a cat"
    assert normalize("   a \t cat \n\n on a mat  ") == " a cat on a mat"
    assert normalize("") == " "


def test_mojibake_is_repaired_before_transliteration(normalize):
    # Without ftfy, unidecode would spell the broken "Ã©" as "A(c)".
    assert normalize("cafÃ©") == " cafe"


def test_html_entities_are_unescaped_twice(normalize):
    # ftfy leaves entities alone when the text holds a "<"; only step 2 turns "&amp;amp;" into "&".
    assert normalize("x < y &amp;amp; z") == " x < y & z"


def test_emoji_become_words(normalize):
    # ":red_heart:" -> underscores to spaces, colons to commas.
    assert normalize("I ❤️ you") == " i, red heart, you"


def test_accents_are_transliterated(normalize):
    assert normalize("Crème brûlée à Paris") == " creme brulee a paris"


@pytest.mark.parametrize(
    "prompt",
    ["<person> and <person> at the beach", "<PERSON>, <PERSON> and <PERSON> at the beach"],
)
def test_person_runs_become_people(normalize, prompt):
    assert normalize(prompt) == " people at the beach"


def test_lone_person_becomes_a_person_every_time(normalize):
    prompt = "a photo of <person> with <person>"
    expected = " a photo of a person with a person"
    assert normalize(prompt) == expected
    assert normalize(prompt) == expected
    assert TextNormalizer()(prompt) == expected


def test_wiki_refs_are_removed_only_at_the_ends(normalize):
    assert normalize("[12] The Eiffel Tower [3]") == " the eiffel tower"
    assert normalize("a [1] b") == " a, 1, b"


def test_html_tags_become_spaces(normalize):
    assert normalize("<b>bold</b> text") == " bold text"
    assert normalize("a<br>b") == " a b"


def test_urls_are_removed(normalize):
    assert normalize("a cat https://example.com/cat.png on a mat") == " a cat on a mat"


def test_thousands_separators_are_removed(normalize):
    # One pass would leave "1000,000", which step 18 would split.
    assert normalize("1,000,000 stars") == " 1000000 stars"


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("e.g. a cat", " e.g, a cat"),
        ("a 3.5 inch floppy", " a 3.5 inch floppy"),
        ("index.html", " index.html"),
        # Matches cannot overlap, so only the first dot of "1.2.3" is protected (as in the reference).
        ("version 1.2.3", " version 1.2, 3"),
    ],
)
def test_dots_inside_words_are_kept(normalize, prompt, expected):
    assert normalize(prompt) == expected


def test_contraction_apostrophes_are_kept(normalize):
    assert normalize("It's the cat's toy") == " it's the cat's toy"
    assert normalize("don't, we'll, they're, I've, I'm, he'd") == (
        " don't, we'll, they're, i've, i'm, he'd"
    )


def test_other_apostrophes_become_double_quotes(normalize):
    assert normalize("a 'text' label") == ' a " text " label'
    assert normalize("'text'") == ' " text "'
    # Runs of quotes merge into one; backticks count as quotes.
    assert normalize("''hi''") == ' " hi "'
    assert normalize("`a` b") == ' " a " b'


def test_slash_between_digits_is_kept(normalize):
    assert normalize("1/2 cup") == " 1/2 cup"
    assert normalize("12/25/2022") == " 12/25/2022"
    assert normalize("and/or") == " and, or"


def test_hyphen_between_words_becomes_a_space(normalize):
    assert normalize("a-b") == " a b"
    assert normalize("T-shirt") == " t shirt"


def test_special_chars_stand_apart(normalize):
    assert normalize("50%off&$5*2") == " 50 % off & $ 5 * 2"


def test_punctuation_becomes_merged_commas(normalize):
    assert normalize("cat; dog! (bird)") == " cat, dog, bird"
    assert normalize("Hello!!! World") == " hello, world"
    assert normalize("a | b = c + d ~ e {f}") == " a, b, c, d, e, f"


def test_characters_repeated_four_times_collapse(normalize):
    assert normalize("soooooo cute!!!!") == " so cute"
    assert normalize("Louis VIII") == " louis viii"
    assert normalize("10000 BC") == " 10000 bc"


def test_leading_and_trailing_commas_are_dropped(normalize):
    assert normalize(", a cat,") == " a cat"
    assert normalize("A cat.") == " a cat"
    assert normalize("...") == " "


def test_hashtags_are_kept_whole_without_a_word_file(normalize):
    assert normalize("#BigCat") == " bigcat"
    assert normalize("a #big_cat photo") == " a big cat photo"


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("#BigCat", " big cat"),
        ("a #thething photo", " a the thing photo"),
        ("#big_cat", " big cat"),
        # Digits are unknown words, split one by one, then glued back into one number.
        ("#cat2022", " cat 2022"),
        # Unknown letters are split one by one, as in the reference.
        ("#catxy", " cat x y"),
    ],
)
def test_hashtags_are_segmented_with_a_word_file(word_file, prompt, expected):
    assert TextNormalizer(word_file)(prompt) == expected


def test_split_possessive_is_reattached(word_file):
    assert segment_hashtag("bigcat's", load_word_costs(word_file)) == "big cat's"


def test_segmentation_looks_words_up_in_lowercase(word_file):
    assert segment_hashtag("BigCat", load_word_costs(word_file)) == "Big Cat"


def test_word_file_is_read_at_the_first_hashtag_and_only_once(word_file):
    normalize = TextNormalizer(word_file)
    # Not read at construction: the first hashtag sees what the file holds by then.
    word_file.write_text("dog\nhouse\n")
    assert normalize("#doghouse") == " dog house"
    # Read once: with the file gone, hashtags still split.
    word_file.unlink()
    assert normalize("#housedog") == " house dog"


def test_missing_word_file_fails_at_construction(tmp_path):
    with pytest.raises(FileNotFoundError):
        TextNormalizer(tmp_path / WORD_FREQUENCY_FILE)
