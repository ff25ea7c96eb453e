"""The input cap: a source longer than decoding.max_input_pieces is cut to it, and the cut is reported."""

import math
import time

import pytest

from workbench.engine.recipe import RecipeError, load_recipe
from workbench.engine.run_folder import RunFolder
from workbench.engine.session import TrainingSession
from workbench.engine.special_tokens import EOS
from workbench.engine.translator import Translator

LONG_LINE = ("Saturday, November 21, 2026 " * 4000)[:100_000]
TINY = [
    "data.train_size=300",
    "data.valid_size=30",
    "model.hidden_size=32",
    "model.embedding_size=16",
    "tokenizer.vocab_size=60",
    "training.threads=1",
]


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    run = RunFolder.create(tmp_path_factory.mktemp("runs"), load_recipe("dates-en-fr", TINY), "tiny")
    TrainingSession(run, "cpu").train(max_steps=1)
    return Translator.from_run(run, "last")


def never_ending(translator: Translator, monkeypatch) -> None:
    """Forbid EOS, so that every search runs to its length bound (the worst a model can do)."""
    decoder = translator.model.decoder
    logits = decoder.logits

    def without_eos(outputs):
        scores = logits(outputs).clone()
        scores[..., EOS] = -1e4
        return scores

    monkeypatch.setattr(decoder, "logits", without_eos)


def test_a_100000_character_source_is_cut_to_the_cap_and_its_output_stays_bounded(
    translator, one_thread, monkeypatch
):
    never_ending(translator, monkeypatch)
    cap, decoding = translator.decoding.max_input_pieces, translator.decoding
    pieces = len(translator.tokenizers.src.encode(LONG_LINE))
    start = time.perf_counter()
    (best,) = translator.translate([LONG_LINE], beam_size=5, attention=True)[0]
    seconds = time.perf_counter() - start
    assert cap == 256 and len(best.src_pieces) == cap and best.dropped_pieces == pieces - cap > 20_000
    assert len(best.tgt_pieces) == math.ceil(cap * decoding.max_length_ratio) + decoding.max_length_offset
    assert len(best.attention) == len(best.tgt_pieces) + 1 and {len(row) for row in best.attention} == {cap}
    assert seconds < 20, f"{seconds:.1f} s"


def test_sources_within_the_cap_are_translated_whole(translator):
    short, long = translator.translate(["Jan 3, 1999", LONG_LINE], beam_size=2)
    assert short[0].dropped_pieces == 0
    src = translator.tokenizers.src
    assert short[0].src_pieces == src.pieces(src.encode("Jan 3, 1999"))
    assert long[0].dropped_pieces > 0


def test_the_cap_is_a_recipe_key():
    assert load_recipe("dates-en-fr", ["decoding.max_input_pieces=40"]).decoding.max_input_pieces == 40
    with pytest.raises(RecipeError, match="decoding.max_input_pieces"):
        load_recipe("dates-en-fr", ["decoding.max_input_pieces=0"])
