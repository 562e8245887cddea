"""Text for the word-level language models: six Jane Austen novels, split by chapter, and the
word tokenizer both models share.

Offline source: Debian `r-cran-janeaustenr` (MIT package; the novels are public domain), about
717k words stored as an R lazy-load database, read here with PyPI `rdata` (training only; the app
never needs the corpus). Every novel is cut at its chapter headings and the chapters are dealt out
by position, the same way every time:

    chapter index % 10 == 4  ->  validation   (model selection, early stopping)
    chapter index % 10 == 9  ->  test         (scored once, by the benchmark)
    everything else          ->  train

so each split holds whole chapters from all six books, and no paragraph is in two splits.

Other text comes in through `load_corpus(text_file=...)` (a plain text file: paragraphs are
separated by blank lines, lines "CHAPTER ..." split it, or 80/10/10 by position without them) or
`load_corpus(dataset=...)` (a Hub dataset with a `text` column and train/validation/test splits,
e.g. `Salesforce/wikitext` with config `wikitext-103-raw-v1`, written `Salesforce/wikitext:wikitext-103-raw-v1`).

Tokens are words and single punctuation marks ("--" is one token), case kept; words seen fewer
than `min_frequency` times in the training split become `<unk>`; `<eos>` ends every paragraph,
so a model can start writing "from a paragraph boundary" when the prompt is empty.
"""

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

AUSTEN_DIR = Path("/usr/lib/R/site-library/janeaustenr/data")
NOVELS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"]
UNK, EOS = "<unk>", "<eos>"
SPACE = "\u2581"  # "▁", marks a word that follows a space
CHAPTER_HEADING = re.compile(r"^\s*chapter\b", re.IGNORECASE)
VAL_REMAINDER, TEST_REMAINDER = 4, 9  # chapter index % 10


@dataclass
class Corpus:
    """Paragraphs (plain strings) per split, and where they came from."""

    train: list[str]
    val: list[str]
    test: list[str]
    source: str


def read_austen_lines(root: Path = AUSTEN_DIR) -> dict[str, list[str]]:
    """The six novels as lists of lines, read from the R package's lazy-load database.

    The .rdx index (an RDS file) maps each variable to (offset, length) in the .rdb file; each
    blob there is zlib-compressed after a 4-byte length header and holds one R character vector."""
    import warnings

    if not (root / "Rdata.rdx").is_file():
        raise FileNotFoundError(
            f"the Jane Austen novels are not installed ({root} is missing): `apt-get install r-cran-janeaustenr`, "
            "or train on another text with --text-file / --dataset"
        )
    import rdata

    with warnings.catch_warnings():  # rdata warns that an .rdx file is "really" RDS: it is, by design
        warnings.simplefilter("ignore")
        index = rdata.conversion.convert(rdata.parser.parse_file(root / "Rdata.rdx"))["variables"]
        blob = (root / "Rdata.rdb").read_bytes()
        novels = {}
        for name in NOVELS:
            offset, length = (int(v) for v in index[name])
            vector = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(blob[offset : offset + length][4:])))
            novels[name] = [str(line) for line in vector]
    return novels


def chapters(lines: list[str]) -> list[list[str]]:
    """Cut a book's lines at chapter headings; each chapter is a list of paragraphs (blank lines separate them).

    The title page before the first heading is dropped, and so are the headings themselves."""
    found: list[list[str]] = []
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph and found:
            found[-1].append(" ".join(paragraph))
        paragraph.clear()

    for line in lines:
        line = line.strip()
        if CHAPTER_HEADING.match(line):
            end_paragraph()
            found.append([])
        elif not line or line.upper().startswith("VOLUME ") or line.upper() == "THE END":
            end_paragraph()
        else:
            paragraph.append(line)
    end_paragraph()
    return [c for c in found if c]


def split_by_chapter(books: list[list[str]], source: str) -> Corpus:
    """Deal whole chapters into train / val / test by their index within each book."""
    train, val, test = [], [], []
    for lines in books:
        for index, chapter in enumerate(chapters(lines)):
            {VAL_REMAINDER: val, TEST_REMAINDER: test}.get(index % 10, train).extend(chapter)
    return Corpus(train, val, test, source)


def load_corpus(text_file: str = "", dataset: str = "") -> Corpus:
    """The Austen novels by default; a plain text file or a Hub dataset when asked."""
    if dataset:
        from datasets import load_dataset

        name, _, config = dataset.partition(":")
        data = load_dataset(name, config or None)
        texts = {split: [t.strip() for t in data[split]["text"] if t.strip()] for split in data}
        return Corpus(texts["train"], texts.get("validation", []), texts["test"], dataset)
    if text_file:
        lines = Path(text_file).read_text(encoding="utf-8").splitlines()
        if any(CHAPTER_HEADING.match(line) for line in lines):
            return split_by_chapter([lines], text_file)
        paragraphs = chapters(["CHAPTER 1", *lines])[0]
        a, b = int(len(paragraphs) * 0.8), int(len(paragraphs) * 0.9)
        return Corpus(paragraphs[:a], paragraphs[a:b], paragraphs[b:], text_file)
    novels = read_austen_lines()
    return split_by_chapter([novels[name] for name in NOVELS], "Jane Austen's six novels (r-cran-janeaustenr)")


def build_tokenizer(train_paragraphs: list[str], min_frequency: int = 3):
    """A word-level `tokenizers.Tokenizer` whose vocabulary comes from the training split only.

    Words and single punctuation marks are tokens ("--" is one); underscores (Gutenberg's
    italics) are dropped and runs of whitespace become one space."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer

    tokenizer = Tokenizer(WordLevel(unk_token=UNK))
    # Spaces become "▁" and stay glued to the word after them (as in SentencePiece), so decoding
    # is exact: "Darcy, said" is "▁Darcy" "," "▁said", and "don't" is "▁don" "'" "t".
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Replace("_", ""),
            normalizers.Replace(Regex(r"\s+"), " "),
            normalizers.Prepend(" "),
            normalizers.Replace(" ", SPACE),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(rf"{SPACE}?(?:\w+|--|[^\w\s{SPACE}])|{SPACE}+"), behavior="isolated")
    # Decoding keeps every word's leading space, the first one too: generated text is decoded on
    # its own and appended to the prompt (transformers' text-generation pipeline does exactly that),
    # so "▁in ▁the" must come back as " in the", not "in the" glued onto the prompt's last word.
    tokenizer.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="never")
    trainer = WordLevelTrainer(min_frequency=min_frequency, special_tokens=[UNK, EOS])
    tokenizer.train_from_iterator(train_paragraphs, trainer=trainer)
    return tokenizer


def encode(tokenizer, paragraphs: list[str]) -> torch.Tensor:
    """One long (N,) int64 stream of token ids: each paragraph followed by <eos>."""
    eos = tokenizer.token_to_id(EOS)
    ids: list[int] = []
    for encoding in tokenizer.encode_batch(paragraphs):
        ids.extend(encoding.ids)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def save_tokenizer(tokenizer, folder: Path, model_max_length: int) -> None:
    """Write tokenizer.json + tokenizer_config.json, so `AutoTokenizer.from_pretrained(folder)` works."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token=UNK, eos_token=EOS, bos_token=EOS, pad_token=EOS, model_max_length=model_max_length
    )
    fast.save_pretrained(folder)


def load_tokenizer(folder: Path):
    """The shared tokenizer from a checkpoint folder (plain `tokenizers`, no transformers needed)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
