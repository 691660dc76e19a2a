"""Prompt normalisation, so our prompts reach the tokenizer in the shape mini and mega were trained on.

Both published checkpoints set `normalize_text`, so every caption they saw went through dalle-mini's
TextNormalizer (src/dalle_mini/model/text.py). This module redoes its 25 steps in the same order, as
described in section 5.1 of shared/reference/dalle-mini-architecture.md, with two product changes:

- Deterministic: the reference swaps each lone `<person>` for a random weighted pick. We always use
  "a person", its most frequent pick (282265 of 415678 captions), so one prompt always gives the same
  tokens, and so the same image for a seed. A pick seeded from a hash of the prompt would also be
  repeatable, but editing an unrelated word would then flip "a person" to "someone".
- Offline: the reference downloads `enwiki-words-frequency.txt` (33.8 MB) whenever it is built. We
  read it only from a path we are given, only when the first hashtag needs it, once per process;
  without a path, hashtags are kept whole (step 16 turns the `#` into a space).

The reference's quirks are kept on purpose (e.g. "a.b.c" keeps only its first dot, "a-b-c" becomes
"a b, c", "'text'" becomes ' " text "'), because the model learnt from text shaped by them.
"""

import functools
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

import emoji
import ftfy
from unidecode import unidecode

WORD_FREQUENCY_FILE = "enwiki-words-frequency.txt"

# Step 6: CC12M captions hide names as <person>; a lone one always becomes the commonest wording.
PERSON_REPLACEMENT = "a person"

# Steps 11-13 hide characters that must survive step 18 behind lowercase word characters (so they
# also survive the \w-based steps in between), and step 19 brings them back.
DOT_PLACEHOLDER = "xtokxdotxtokx"
APOSTROPHE_PLACEHOLDER = "xtokxquotextokx"
SLASH_PLACEHOLDER = "xtokxslashxtokx"

# A substring missing from the frequency file; the reference's 9e999 overflows to this too.
UNKNOWN_WORD_COST = math.inf

# 6. Two or more <person> joined by commas, spaces or "and" stand for a group.
_PERSON_RUN = re.compile(r"<person>(?:[,\s]*(?:and)*[,\s]*<person>)+")
# 7. WIT captions carry footnote marks such as "[12]" at either end.
_LEADING_WIKI_REF = re.compile(r"\A\s*\[\d+\]")
_TRAILING_WIKI_REF = re.compile(r"\[\d+\]\s*\Z")
# 8. An HTML tag, shortest match, replaced by a space so "a<br>b" stays two words.
_HTML_TAG = re.compile(r"<[^<]+?>")
# 9. A URL runs from "http" to the next whitespace.
_URL = re.compile(r"http\S+")
# 10. A thousands separator. Matches cannot overlap, so "1,000,000" needs two passes.
_THOUSANDS_SEPARATOR = re.compile(r"(\d),(\d{3})")
# 11. A dot between word characters: "e.g", "3.5", "file.txt".
_DOT_IN_WORD = re.compile(r"(\w)\.(\w)")
# 12. An apostrophe of a contraction or possessive ('s 't 'd 'm 'll 're 've) ending at a word break.
_CONTRACTION_APOSTROPHE = re.compile(r"'(?=(?:[stdm]|ll|re|ve)\b)")
# 13. A slash between digits: dates and fractions.
_DIGIT_SLASH = re.compile(r"(\d)/(\d)")
# 14. A hyphen joining two words, and the symbols that always stand apart.
_HYPHEN_IN_WORD = re.compile(r"(\w)-(\w)")
_SPACED_SYMBOL = re.compile(r"([%&/$*])")
# 15. A hashtag and its body.
_HASHTAG = re.compile(r"#(\w+)")
# 15. Inside a hashtag body, what separates runs that are segmented one by one.
_HASHTAG_RUN_SEPARATOR = re.compile(r"[^a-zA-Z0-9']+")
# 16. Characters that carry no meaning for the model.
_IGNORED_CHAR = re.compile(r"[_#\\]")
# 17. Every kind of quote becomes a spaced double quote.
_QUOTE = re.compile(r"['\"`]")
# 18. Punctuation that becomes a comma.
_PUNCTUATION = re.compile(r"[()\[\].,|:;?!=+~\-/{}]")
# 20. A non-digit repeated 4+ times; 3 stay, for Roman numerals such as "viii".
_REPEATED_CHAR = re.compile(r"(\D)\1{3,}")
# 21. A run of double quotes, with the whitespace around it.
_QUOTE_RUN = re.compile(r'(?:\s*"+\s*)+')
# 22. A run of commas, with the whitespace around it.
_COMMA_RUN = re.compile(r"(?:\s*,+\s*)+")
# 23. Any whitespace, newlines and tabs included.
_WHITESPACE = re.compile(r"\s+")


def unescape_html_twice(text: str) -> str:
    """Undo HTML escaping twice, since scraped captions are often escaped twice ("&amp;amp;")."""
    return html.unescape(html.unescape(text))


def replace_person_tokens(text: str) -> str:
    """Turn CC12M's `<person>` placeholders into words: a run into "people", a lone one into "a person"."""
    text = _PERSON_RUN.sub(" people ", text)
    return text.replace("<person>", f" {PERSON_REPLACEMENT} ")


def remove_wiki_refs(text: str) -> str:
    """Drop a footnote mark like "[12]" at the start or the end of a caption."""
    text = _LEADING_WIKI_REF.sub("", text)
    return _TRAILING_WIKI_REF.sub("", text)


def remove_thousands_separators(text: str) -> str:
    """Write "1,000,000" as "1000000" so step 18 cannot turn its commas into list commas."""
    for _ in range(2):
        text = _THOUSANDS_SEPARATOR.sub(r"\1\2", text)
    return text


def protect_inner_punctuation(text: str) -> str:
    """Hide in-word dots, contraction apostrophes and digit slashes from step 18 (steps 11-13)."""
    text = _DOT_IN_WORD.sub(rf"\1{DOT_PLACEHOLDER}\2", text)
    text = _CONTRACTION_APOSTROPHE.sub(APOSTROPHE_PLACEHOLDER, text)
    return _DIGIT_SLASH.sub(rf"\1{SLASH_PLACEHOLDER}\2", text)


def restore_inner_punctuation(text: str) -> str:
    """Put back what protect_inner_punctuation hid (step 19)."""
    text = text.replace(DOT_PLACEHOLDER, ".")
    text = text.replace(APOSTROPHE_PLACEHOLDER, "'")
    return text.replace(SLASH_PLACEHOLDER, "/")


def space_special_chars(text: str) -> str:
    """Split hyphenated words and stand `% & / $ *` apart, so each becomes its own token."""
    text = _HYPHEN_IN_WORD.sub(r"\1 \2", text)
    return _SPACED_SYMBOL.sub(r" \1 ", text)


def strip_edge_commas(text: str) -> str:
    """Strip, then drop one trailing and one leading comma, as the reference does."""
    text = text.strip()
    text = text.removesuffix(",")
    text = text.removeprefix(",")
    return text.strip()


@dataclass(frozen=True)
class WordCosts:
    """Zipf costs read from the frequency file: a frequent word is cheap, an unknown one infinite."""

    cost_from_word: dict[str, float]
    longest_word_length: int

    def cost(self, word: str) -> float:
        return self.cost_from_word.get(word.lower(), UNKNOWN_WORD_COST)


@functools.cache
def load_word_costs(path: Path) -> WordCosts:
    """Read the frequency file once per process: a word on line `rank` costs log(rank + 1)."""
    cost_from_word = {}
    # splitlines, not file iteration, so that line numbers match the reference's exactly.
    for rank, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        fields = line.split()
        if fields:
            # The word is the first column; a repeated word keeps its last rank, like the reference.
            cost_from_word[fields[0]] = math.log(rank + 1)
    return WordCosts(cost_from_word, max(map(len, cost_from_word), default=1))


def split_run(run: str, word_costs: WordCosts) -> list[str]:
    """Cut a run without spaces into its cheapest sequence of words (wordninja's dynamic program)."""
    # cheapest_cost[end], last_word_length[end]: the best split of run[:end] and its last word.
    cheapest_cost = [0.0]
    last_word_length = [0]
    for end in range(1, len(run) + 1):
        longest = min(end, word_costs.longest_word_length)
        # Tuples compare cost first, then length: on a tie (all-unknown: inf) the shorter word wins.
        cost, length = min(
            (cheapest_cost[end - length] + word_costs.cost(run[end - length : end]), length)
            for length in range(1, longest + 1)
        )
        cheapest_cost.append(cost)
        last_word_length.append(length)

    words_backwards: list[str] = []
    end = len(run)
    while end > 0:
        length = last_word_length[end]
        word = run[end - length : end]
        end -= length
        next_word = words_backwards[-1] if words_backwards else None
        # Re-attach a split-off "'s" and glue digit runs back together; a lone "'" stays alone.
        is_glued = (
            word != "'"
            and next_word is not None
            and (next_word == "'s" or (word[-1].isdigit() and next_word[0].isdigit()))
        )
        if is_glued:
            words_backwards[-1] = word + next_word
        else:
            words_backwards.append(word)
    return words_backwards[::-1]


def segment_hashtag(body: str, word_costs: WordCosts) -> str:
    """Spell out a hashtag body as spaced words: "bigcat_2022" becomes "big cat 2022"."""
    runs = _HASHTAG_RUN_SEPARATOR.split(body)
    return " ".join(word for run in runs for word in split_run(run, word_costs))


class TextNormalizer:
    """dalle-mini's caption normaliser, deterministic and offline; call it on each prompt."""

    def __init__(self, word_frequency_path: Path | None = None):
        """Keep the frequency file's path for hashtags; None keeps hashtags whole.

        Raises:
            FileNotFoundError: a path was given but there is no file there.
        """
        if word_frequency_path is not None:
            word_frequency_path = Path(word_frequency_path)
            if not word_frequency_path.is_file():
                raise FileNotFoundError(f"word frequency file not found: {word_frequency_path}")
        self.word_frequency_path = word_frequency_path

    def expand_hashtags(self, text: str) -> str:
        """Replace each `#hashtag` by its words; the file is read only when a hashtag appears."""
        if self.word_frequency_path is None:
            return text
        path = self.word_frequency_path
        return _HASHTAG.sub(lambda match: segment_hashtag(match[1], load_word_costs(path)), text)

    def __call__(self, text: str) -> str:
        """Normalise one prompt; the result always starts with a single space."""
        text = ftfy.fix_text(text)  # 1. mojibake, curly quotes
        text = unescape_html_twice(text)  # 2.
        text = emoji.demojize(text)  # 3. "❤️" -> ":red_heart:", before unidecode drops it
        text = unidecode(text)  # 4. "é" -> "e"
        text = text.lower()  # 5.
        text = replace_person_tokens(text)  # 6.
        text = remove_wiki_refs(text)  # 7.
        text = _HTML_TAG.sub(" ", text)  # 8.
        text = _URL.sub("", text)  # 9.
        text = remove_thousands_separators(text)  # 10.
        text = protect_inner_punctuation(text)  # 11-13.
        text = space_special_chars(text)  # 14.
        text = self.expand_hashtags(text)  # 15.
        text = _IGNORED_CHAR.sub(" ", text)  # 16.
        text = _QUOTE.sub(' " ', text)  # 17.
        text = _PUNCTUATION.sub(",", text)  # 18.
        text = restore_inner_punctuation(text)  # 19.
        text = _REPEATED_CHAR.sub(r"\1", text)  # 20.
        text = _QUOTE_RUN.sub(' " ', text)  # 21.
        text = _COMMA_RUN.sub(", ", text)  # 22.
        text = _WHITESPACE.sub(" ", text)  # 23.
        text = strip_edge_commas(text)  # 24.
        return f" {text}"  # 25. the tokenizer expects a leading space, as in training
