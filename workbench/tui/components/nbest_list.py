"""The n best translations of the decode input with their scores; the highlighted one is drawn below."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ..display_format import printable
from ..live_translator import TranslationLike


class NBestList(OptionList):
    def show(self, translations: list[TranslationLike]) -> None:
        highlighted = self.highlighted or 0
        self.clear_options()
        for rank, translation in enumerate(translations, 1):
            label = Text.assemble(
                (f"{rank}. ", "dim"),
                (f"{translation.score:7.3f}  ", "dim"),
                (printable(translation.text) or "∅", "bold" if rank == 1 else ""),
            )
            self.add_option(Option(label, id=str(rank - 1)))
        if translations:
            self.highlighted = min(highlighted, len(translations) - 1)
