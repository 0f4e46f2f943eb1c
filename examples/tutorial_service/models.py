"""The two models of the tutorial, built offline when the real ones cannot be downloaded.

The tutorial loads spaCy's ``en_core_web_sm`` and transformers' default sentiment model
(``distilbert-base-uncased-finetuned-sst-2-english``). Both are downloads. This module builds
stand-ins with the same libraries and the same output shapes, from nothing but the
installed packages:

- spaCy: a blank English pipeline with an ``entity_ruler`` of place, person, organisation
  and date patterns;
- transformers: a two-layer DistilBERT with a WordPiece vocabulary trained here, fine-tuned
  for a few seconds on a handful of labelled sentences, saved as a normal model directory.

Set SPACY_MODEL or TRANSFORMERS_MODEL to a package or hub name to use real models instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MODELS_DIR = Path(os.environ.get("TUTORIAL_MODELS_DIR", Path(__file__).parent / "models"))

PLACES = ["Paris", "Berlin", "Madrid", "Zürich", "Barcelona", "New York", "London", "Tokyo", "São Paulo"]
PEOPLE = ["Ada Lovelace", "Ana García", "John Smith", "Marie Curie", "David", "Daniel", "Amélie"]
ORGS = ["Rubrix", "Recognai", "Argilla", "Hugging Face", "the United Nations", "Acme Corp"]
DATES = ["Monday", "Tuesday", "Friday", "yesterday", "tomorrow", "next week", "May", "June"]

POSITIVE = [
    "I really like rubrix!", "This is great", "What a wonderful day", "I love this product",
    "The service was excellent", "Amazing work, thank you", "Such a happy result", "Fantastic support",
    "I enjoyed every minute", "Best purchase ever", "Very good and fast", "Brilliant idea",
]  # fmt: skip
NEGATIVE = [
    "I hate waiting", "This is terrible", "What an awful day", "I dislike this product",
    "The service was bad", "Horrible work, no thanks", "Such a sad result", "Useless support",
    "I regretted every minute", "Worst purchase ever", "Very slow and broken", "Stupid idea",
]  # fmt: skip


def say(message: str) -> None:
    """A line on stderr, where uvicorn prints its own start-up lines, tagged with our pid."""
    print(f"tutorial service [{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def load_spacy() -> Any:
    import spacy

    name = os.environ.get("SPACY_MODEL")
    if name:
        say(f"loading spaCy model {name}")
        return spacy.load(name)
    say("spaCy: blank English pipeline + entity_ruler (stand-in for en_core_web_sm; SPACY_MODEL to change)")
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    patterns = []
    for label, names in (("GPE", PLACES), ("PERSON", PEOPLE), ("ORG", ORGS), ("DATE", DATES)):
        patterns += [{"label": label, "pattern": [{"TEXT": part} for part in n.split()]} for n in names]
    ruler.add_patterns(patterns)
    return nlp


def load_transformers() -> Any:
    from transformers import pipeline

    name = os.environ.get("TRANSFORMERS_MODEL")
    model_dir = MODELS_DIR / "tiny-sentiment"
    if name:
        say(f"loading transformers model {name}")
    elif not (model_dir / "config.json").exists():
        # `uvicorn --workers N` imports the app in N processes at once: one trains, the
        # others wait for it on the lock and then load what it saved.
        with _build_lock(model_dir):
            if (model_dir / "config.json").exists():
                say(f"another worker built {model_dir}: loading it")
            else:
                say(
                    "first start: training the stand-in sentiment model (a two-layer DistilBERT on "
                    "24 sentences, about 10 s; TRANSFORMERS_MODEL to use a real one) ..."
                )
                started = time.monotonic()
                build_sentiment_model(model_dir)
                took = time.monotonic() - started
                say(f"stand-in sentiment model built in {took:.1f}s, saved to {model_dir}")
    else:
        say(f"transformers: stand-in sentiment model from {model_dir}")
    return pipeline("text-classification", model=name or str(model_dir), top_k=None, device="cpu")


@contextlib.contextmanager
def _build_lock(model_dir: Path) -> Iterator[None]:
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(model_dir.with_name(f".{model_dir.name}.lock"), "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another worker that is building {model_dir} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_sentiment_model(out: Path, steps: int = 60, seed: int = 0) -> None:
    """Train a tiny DistilBERT sentiment classifier; a few seconds on a CPU."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    corpus = POSITIVE + NEGATIVE + PLACES + PEOPLE + ORGS + DATES
    wordpiece.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=400, special_tokens=special))
    wordpiece.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", wordpiece.token_to_id("[CLS]")), ("[SEP]", wordpiece.token_to_id("[SEP]"))],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
    )  # fmt: skip
    config = DistilBertConfig(
        vocab_size=wordpiece.get_vocab_size(), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
        max_position_embeddings=128, id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )  # fmt: skip
    model = DistilBertForSequenceClassification(config)
    texts = NEGATIVE + POSITIVE
    labels = torch.tensor([0] * len(NEGATIVE) + [1] * len(POSITIVE))
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    # Saved aside and renamed, so a process killed mid-save leaves no half model behind.
    building = out.with_name(f"{out.name}.building-{os.getpid()}")
    model.save_pretrained(building)
    tokenizer.save_pretrained(building)
    try:
        building.rename(out)
    except OSError:
        shutil.rmtree(building)


if __name__ == "__main__":
    build_sentiment_model(MODELS_DIR / "tiny-sentiment")
    print(f"built {MODELS_DIR / 'tiny-sentiment'}")
