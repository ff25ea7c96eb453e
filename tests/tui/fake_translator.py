"""A translator for dates that needs no model: word for word, with one-hot attention."""

from __future__ import annotations

from dataclasses import dataclass

WORDS = {
    "monday": "lundi",
    "tuesday": "mardi",
    "wednesday": "mercredi",
    "thursday": "jeudi",
    "friday": "vendredi",
    "saturday": "samedi",
    "sunday": "dimanche",
    "january": "janvier",
    "february": "février",
    "march": "mars",
    "april": "avril",
    "may": "mai",
    "june": "juin",
    "july": "juillet",
    "august": "août",
    "september": "septembre",
    "october": "octobre",
    "november": "novembre",
    "december": "décembre",
}


@dataclass
class FakeTranslation:
    text: str
    score: float
    src_pieces: list[str]
    tgt_pieces: list[str]
    attention: list[list[float]] | None
    dropped_pieces: int = 0


class FakeTranslator:
    """Translates 'Saturday, November 21, 2026' to 'samedi 21 novembre 2026'; records what it was asked."""

    def __init__(self, checkpoint: str = "best"):
        self.checkpoint = checkpoint
        self.checkpoint_stamp = None
        self.calls: list[tuple[str, int, int]] = []

    def translate(self, sentences, beam_size=1, n_best=1, attention=False):
        results = []
        for sentence in sentences:
            self.calls.append((sentence, beam_size, n_best))
            src = ["▁" + w.strip(",") for w in sentence.split()]
            words = [w.strip(",").lower() for w in sentence.split()]
            # French order: day, number, month, year
            order = [0, 2, 1, 3] if len(words) == 4 else list(range(len(words)))
            tgt = ["▁" + WORDS.get(words[i], words[i]) for i in order]
            rows = [[1.0 if j == i else 0.0 for j in range(len(src))] for i in order]
            rows.append([1.0 if j == len(src) - 1 else 0.0 for j in range(len(src))])
            best = FakeTranslation(" ".join(t[1:] for t in tgt), -0.25, src, tgt, rows if attention else None)
            others = [
                FakeTranslation(
                    best.text + " !" * k,
                    -0.25 - k,
                    src,
                    tgt + ["▁!"] * k,
                    (rows + [rows[-1]] * k) if attention else None,
                )
                for k in range(1, n_best)
            ]
            results.append([best, *others])
        return results


def fake_factory(run, checkpoint: str, device: str) -> FakeTranslator:
    return FakeTranslator(checkpoint)
