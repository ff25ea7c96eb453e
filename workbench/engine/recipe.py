"""Recipes: one TOML file describing data, tokenizer, model, training and decoding.

`load_recipe` is the one loader. Every key can be overridden with `--set section.key=value`.
Errors name the file and the key and are raised as `RecipeError` (the CLI exits with code 2).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from workbench.engine.data import DATA_SOURCES, FILE_KINDS
from workbench.engine.errors import UserError
from workbench.engine.optimizers import OPTIMIZERS as OPTIMIZER_BUILDERS
from workbench.engine.schedules import LR_SCHEDULES, SCHEDULED_SAMPLING
from workbench.engine.tokenizers import TOKENIZERS


class RecipeError(UserError):
    """A recipe that cannot be used; the message names the file and the key."""


# The names of each choice a recipe offers, for the checks below: a registry's (name -> builder) where it
# imports without torch (data.DATA_SOURCES, tokenizers.TOKENIZERS, the schedules'); where the choice is
# built in torch code, its registry there holds the same names (tests/test_options.py): a recipe loads
# without importing torch.
CELLS = ("gru", "lstm", "rnn")  # encoders.RNN_CLASSES, decoders.CELL_CLASSES
ATTENTIONS = ("none", "bahdanau", "dot", "general", "concat", "cosine")  # "none", attention.SCORES
DECODER_INITS = ("bridge", "final", "zeros")
ATTENTION_COMBINES = ("concat", "add")
DECODER_ORDERS = ("luong", "bahdanau")
DEEP_OUTPUTS = ("tanh", "maxout")
OPTIMIZERS = tuple(OPTIMIZER_BUILDERS)  # optimizers.OPTIMIZERS


@dataclass
class DataConfig:
    kind: str = "folder"
    src: str = "en"
    tgt: str = "fr"
    # Generated corpora (dates, numbers, reverse, copy, sort): sizes of disjoint splits.
    train_size: int = 20000
    valid_size: int = 500
    test_size: int = 500
    # kind = "folder": dir/train.SRC, dir/train.TGT, dir/valid.SRC, dir/valid.TGT
    dir: str = ""
    # kind = "files": explicit paths
    train_src: str = ""
    train_tgt: str = ""
    valid_src: str = ""
    valid_tgt: str = ""
    # kind = "tsv": tab-separated pairs (source, target, extra columns ignored)
    train_tsv: str = ""
    valid_tsv: str = ""
    # kind = "hf": a Hugging Face dataset: a folder written by `save_to_disk`, a folder of parquet files
    # named by split (train-00000-of-00002.parquet, validation.parquet...), or a hub name (with
    # dataset_config, e.g. "wmt14" and "de-en") where the hub can be reached. Pairs come from a
    # `translation` column ({SRC: ..., TGT: ...}), or from the text columns src_column and tgt_column.
    dataset: str = ""
    dataset_config: str = ""
    train_split: str = "train"
    valid_split: str = "validation"
    src_column: str = ""
    tgt_column: str = ""
    # Pairs longer than this many characters on either side are filtered (and reported).
    max_chars: int = 400
    # Corpora read from files (folder, files, tsv, hf) only; both are seeded with the recipe's seed, so every
    # run and resume of a recipe gets the same pairs. max_pairs: train on a random sample of this many of
    # the training file's kept pairs (0: all), taken first. valid_fraction: validate on this random share
    # of those pairs, removed from training (Keras's validation_split), instead of reading valid files.
    max_pairs: int = 0
    valid_fraction: float = 0.0


@dataclass
class TokenizerConfig:
    kind: str = "sentencepiece"  # sentencepiece | char | word
    model_type: str = "unigram"  # unigram | bpe (sentencepiece)
    vocab_size: int = 8000
    joint: bool = True
    character_coverage: float = 1.0
    min_freq: int = 1  # char and word vocabularies
    # Each tokenizer is trained on at most this many sentences: a seeded sample of the training pairs when
    # there are more (a joint tokenizer takes both sides of half as many pairs); 0: every sentence. A
    # million is ample for a vocabulary (sentencepiece's authors say 1-10M); sentencepiece needs about
    # 1.5 kB of memory a sentence while it trains.
    sample_sentences: int = 1_000_000


@dataclass
class ModelConfig:
    cell: str = "gru"
    embedding_size: int = 256
    hidden_size: int = 512
    encoder_layers: int = 1
    bidirectional: bool = True
    decoder_layers: int = 1
    # none | bahdanau | dot | general | concat | cosine (cos(h, W s_j), the context sums the W s_j): the
    # score. "bahdanau" is the additive score in Luong's order (as Joey NMT does) unless
    # decoder_order = "bahdanau".
    attention: str = "bahdanau"
    input_feeding: bool = True
    decoder_init: str = "bridge"  # bridge | final | zeros
    dropout: float = 0.3
    embedding_dropout: float = 0.0
    tie_embeddings: bool = False
    src_vectors: str = ""  # word2vec/GloVe text file for source embeddings
    tgt_vectors: str = ""
    freeze_vectors: bool = False
    # One-hot token vectors as the RNN inputs on both sides, no embedding layer (Keras's character
    # model); embedding_size is then ignored: each side's input size is its vocabulary size. A batch's
    # inputs are then B x S x vocab floats: meant for character vocabularies.
    one_hot: bool = False
    # How the attentional vector a_t joins the decoder state h_t and the context c_t (attention only):
    # concat: a_t = tanh(W [h_t; c_t]) | add: a_t = h_t + c_t (c_t first projected to the hidden size
    # by a linear layer when the sizes differ).
    attention_combine: str = "concat"
    # attention = "none": the encoder's summary c (top layer's final state, both directions) joins
    # every decoder input and the output layer, tanh(W [h_t; c; E y_{t-1}]) (Cho et al. 2014).
    context_every_step: bool = False
    # luong: the new state h_t queries the attention (Luong et al. 2015, Joey NMT; so attention =
    # "bahdanau" alone is the additive score in this order) | bahdanau: the previous state s_{i-1}
    # queries it, the context c_i joins the cell's input with E y_{i-1}, and the output is
    # tanh(W [s_i; c_i; E y_{i-1}]) (Bahdanau et al. 2015); needs input_feeding = false.
    decoder_order: str = "luong"
    # The deep-output layer of decoder_order = "bahdanau" and of context_every_step: tanh | maxout
    # (Goodfellow et al. 2013, as Bahdanau et al. 2015 and Cho et al. 2014 wrote it: W [s; c; E y] of twice
    # the hidden size, the larger of each pair of adjacent units).
    deep_output: str = "tanh"
    # Each source sentence is read backwards by the encoder (Sutskever et al. 2014); attention
    # positions still index the source as written.
    reverse_source: bool = False


@dataclass
class TrainingConfig:
    optimizer: str = "adam"  # optimizers.OPTIMIZERS
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 64  # per process; the global batch is batch_size x processes x accumulate
    batch_unit: str = "sentences"  # sentences | tokens (target tokens)
    accumulate: int = 1  # gradient accumulation: batches summed into each optimizer step
    clip_grad: float = 1.0  # 0 disables clipping
    # A step whose gradient is not finite (NaN, inf) is never applied; the run stops there, or skips up to
    # this many such batches in a row first.
    skip_nonfinite: int = 0
    label_smoothing: float = 0.0
    teacher_forcing: float = 1.0
    scheduled_sampling: str = "none"  # none | linear | exponential | inverse_sigmoid
    scheduled_sampling_k: float = 1000.0
    lr_schedule: str = "constant"  # constant | plateau | warmup_decay
    warmup_steps: int = 0
    lr_decay: float = 0.5
    lr_patience: int = 2
    min_lr: float = 1e-6
    max_steps: int = 0  # 0: no limit
    max_epochs: int = 0  # stop (finished) after this many full passes over the training pairs; 0: no limit
    max_minutes: float = 0.0
    valid_every: int = 500  # steps between validations; 0: at the end of every epoch
    log_every: int = 20
    early_stopping: int = 0  # validations without improvement; 0 disables
    # loss | bleu | chrf | exact | accuracy (token accuracy, teacher-forced: Keras's metrics=['accuracy'])
    early_stopping_metric: str = "bleu"
    average_checkpoints: int = 0  # N >= 2: the `averaged` checkpoint is the mean of the last N validations'
    threads: int = 0  # CPU threads; 0: one per idle core when training starts
    precision: str = "auto"  # auto (= fp32) | fp32 | bf16 (CUDA, AMX CPUs) | fp16 (CUDA); devices.py
    # Several processes (torchrun): seconds a process waits in a collective operation (on another
    # process's step, or rank 0's validation) before it gives up and says which one stalled.
    collective_timeout: float = 1800.0


@dataclass
class DecodingConfig:
    beam_size: int = 5
    n_best: int = 1
    length_penalty: float = 1.0  # GNMT alpha; 0 disables
    max_length_ratio: float = 2.0
    max_length_offset: int = 10
    # Sources longer than this many pieces are cut to it before decoding (and the cut is reported):
    # one pasted 100,000-character line must not hold a CPU for minutes and gigabytes. With the bound
    # above, a source of N pieces decodes at most ceil(N * max_length_ratio) + max_length_offset steps:
    # at 256, a bi-GRU 512 that never emits EOS took 3.7 s and 470 MB with beam 5 on one thread.
    max_input_pieces: int = 256
    valid_beam_size: int = 1
    valid_sentences: int = 0  # decode this many valid sentences for BLEU; 0: all
    probes: list[str] = field(default_factory=list)
    # fp32, bf16 or int8 for decode, eval and the workbench's decode panel (training and its validation
    # stay as they are). bf16: bfloat16 weights and activations, log-probs in fp32; ~1.5x faster batch
    # translation on CPUs with bf16 instructions. int8 (CPU only): int8 weights in the linear and
    # recurrent layers, quantized inputs per product (quantization.py); single sentences ~1.5-1.9x faster.
    # Scores differ slightly from fp32 in both.
    precision: str = "fp32"


@dataclass
class Recipe:
    name: str = "run"
    description: str = ""
    seed: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def dotted(self) -> dict[str, Any]:
        """Every key as `--set`, sweeps and the compare table name it, in recipe order:
        `{"name": ..., "model.cell": "gru", ...}`."""
        return dotted_keys(self.to_dict())

    def with_absolute_paths(self) -> Recipe:
        """The same recipe with its data paths absolute (`~` expanded, relative ones taken from the current
        folder), as a run folder keeps it: `resume` and the workbench then find the corpus from any folder."""
        data = self.data
        paths = {
            name: os.path.abspath(os.path.expanduser(value))
            for name in DATA_PATHS
            if (value := getattr(data, name))
        }
        if data.dataset and os.path.exists(os.path.expanduser(data.dataset)):  # else a hub name
            paths["dataset"] = os.path.abspath(os.path.expanduser(data.dataset))
        return dataclasses.replace(self, data=dataclasses.replace(data, **paths))


MAX_RECIPE_BYTES = 2**20  # a recipe is a few kilobytes; a run folder from elsewhere may hold anything
DATA_PATHS = ("dir", "train_src", "train_tgt", "valid_src", "valid_tgt", "train_tsv", "valid_tsv")


PRECISIONS = ("fp32", "bf16", "int8")
DEFAULT_RECIPE = "dates-en-fr"  # what `s2s-bench train` and the workbench's new-run form start from

_CHOICES: dict[str, tuple[str, ...]] = {
    "data.kind": tuple(DATA_SOURCES),
    "tokenizer.kind": tuple(TOKENIZERS),
    "tokenizer.model_type": ("unigram", "bpe"),
    "model.cell": CELLS,
    "model.attention": ATTENTIONS,
    "model.decoder_init": DECODER_INITS,
    "model.attention_combine": ATTENTION_COMBINES,
    "model.decoder_order": DECODER_ORDERS,
    "model.deep_output": DEEP_OUTPUTS,
    "training.optimizer": OPTIMIZERS,
    "training.batch_unit": ("sentences", "tokens"),
    "training.scheduled_sampling": tuple(SCHEDULED_SAMPLING),
    "training.lr_schedule": tuple(LR_SCHEDULES),
    "training.early_stopping_metric": ("loss", "bleu", "chrf", "exact", "accuracy"),
    "decoding.precision": PRECISIONS,
    "training.precision": ("auto", "fp32", "bf16", "fp16"),
}

# (key, predicate, what it must be)
_RANGES: list[tuple[str, Any, str]] = [
    ("seed", lambda v: v >= 0, ">= 0"),
    ("data.train_size", lambda v: v > 0, "> 0"),
    ("data.valid_size", lambda v: v > 0, "> 0"),
    ("data.test_size", lambda v: v >= 0, ">= 0"),
    ("data.max_chars", lambda v: v > 0, "> 0"),
    ("data.max_pairs", lambda v: v >= 0, ">= 0"),
    ("tokenizer.sample_sentences", lambda v: v >= 0, ">= 0 (0: every sentence)"),
    ("data.valid_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("tokenizer.vocab_size", lambda v: v >= 8, ">= 8"),
    ("tokenizer.character_coverage", lambda v: 0.9 <= v <= 1.0, "between 0.9 and 1.0"),
    ("tokenizer.min_freq", lambda v: v >= 1, ">= 1"),
    ("model.embedding_size", lambda v: v > 0, "> 0"),
    ("model.hidden_size", lambda v: v > 0, "> 0"),
    ("model.encoder_layers", lambda v: v >= 1, ">= 1"),
    ("model.decoder_layers", lambda v: v >= 1, ">= 1"),
    ("model.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("model.embedding_dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("training.lr", lambda v: v > 0, "> 0"),
    ("training.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("training.weight_decay", lambda v: v >= 0, ">= 0"),
    ("training.batch_size", lambda v: v > 0, "> 0"),
    ("training.accumulate", lambda v: v >= 1, ">= 1"),
    ("training.collective_timeout", lambda v: v > 0, "> 0"),
    ("training.clip_grad", lambda v: v >= 0, ">= 0"),
    ("training.skip_nonfinite", lambda v: v >= 0, ">= 0"),
    ("training.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("training.teacher_forcing", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("training.scheduled_sampling_k", lambda v: v > 0, "> 0"),
    ("training.warmup_steps", lambda v: v >= 0, ">= 0"),
    ("training.lr_decay", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("training.lr_patience", lambda v: v >= 0, ">= 0"),
    ("training.min_lr", lambda v: v >= 0, ">= 0"),
    ("training.max_steps", lambda v: v >= 0, ">= 0"),
    ("training.max_epochs", lambda v: v >= 0, ">= 0"),
    ("training.max_minutes", lambda v: v >= 0, ">= 0"),
    ("training.valid_every", lambda v: v >= 0, ">= 0"),
    ("training.log_every", lambda v: v > 0, "> 0"),
    ("training.early_stopping", lambda v: v >= 0, ">= 0"),
    ("training.average_checkpoints", lambda v: v >= 0, ">= 0"),
    ("training.threads", lambda v: v >= 0, ">= 0"),
    ("decoding.beam_size", lambda v: v >= 1, ">= 1"),
    ("decoding.n_best", lambda v: v >= 1, ">= 1"),
    ("decoding.length_penalty", lambda v: v >= 0, ">= 0"),
    ("decoding.max_length_ratio", lambda v: v > 0, "> 0"),
    ("decoding.max_length_offset", lambda v: v >= 0, ">= 0"),
    ("decoding.max_input_pieces", lambda v: v >= 1, ">= 1"),
    ("decoding.valid_beam_size", lambda v: v >= 1, ">= 1"),
    ("decoding.valid_sentences", lambda v: v >= 0, ">= 0"),
]

_ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")

BUILTIN_DIR_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "recipes",  # source checkout
    Path(__file__).resolve().parents[1] / "recipes",  # installed wheel (force-included)
)


def builtin_recipes_dir() -> Path:
    """The folder that holds the built-in recipes."""
    for candidate in BUILTIN_DIR_CANDIDATES:
        if candidate.is_dir():
            return candidate
    raise RecipeError("the built-in recipes folder is missing from this installation")


def builtin_recipes() -> dict[str, Path]:
    """Built-in recipe names and their files."""
    return {p.stem: p for p in sorted(builtin_recipes_dir().glob("*.toml"))}


SEED_PREFIX = "seed-"  # recipes of the seed systems: listed together, first
SEED_GROUP = "seed systems"


def recipe_groups(recipes: dict[str, Path]) -> list[tuple[str, dict[str, Path]]]:
    """Recipes in titled groups, each by name, the empty ones left out: the seed systems (names starting
    with `seed-`) first, then every other recipe under the title "" (as `s2s-bench recipes` and the
    workbench list them)."""
    ordered = sorted(recipes.items())
    seed = {name: path for name, path in ordered if name.startswith(SEED_PREFIX)}
    other = {name: path for name, path in ordered if name not in seed}
    return [(title, group) for title, group in ((SEED_GROUP, seed), ("", other)) if group]


def find_recipe(name_or_path: str) -> Path:
    """A recipe file from a path or a built-in name."""
    return find_file(name_or_path, builtin_recipes(), "recipe", RecipeError)


def find_file(name_or_path: str, builtins: dict[str, Path], what: str, error: type[UserError]) -> Path:
    """A recipe or sweep file from a path or a built-in name; an `error` that suggests the closest name."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or os.sep in name_or_path:
        if not path.is_file():
            raise error(f"{name_or_path}: no such {what} file")
        return path
    if name_or_path in builtins:
        return builtins[name_or_path]
    if path.is_file():
        return path
    hint = difflib.get_close_matches(name_or_path, list(builtins), n=1)
    extra = f" (did you mean '{hint[0]}'?)" if hint else f"; built-in {what}s: {', '.join(builtins)}"
    raise error(f"{name_or_path}: no such {what}{extra}")


def load_recipe(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load a recipe by built-in name or path and apply `section.key=value` overrides."""
    path = find_recipe(str(name_or_path))
    raw = read_toml(path, RecipeError)
    raw.setdefault("name", path.stem)
    for override in overrides:
        key, value = parse_override(override)
        set_key(raw, key, value, f"--set {override}")
    return recipe_from_dict(raw, source=str(path))


def read_toml(path: Path, error: type[UserError]) -> dict[str, Any]:
    """A TOML file as plain values; an `error` naming the file when it is not UTF-8 TOML, or too large or
    nested too deeply to be a recipe (a run folder from elsewhere may hold anything)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RECIPE_BYTES + 1)
        if len(data) > MAX_RECIPE_BYTES:
            raise error(f"{path}: larger than {MAX_RECIPE_BYTES:,} bytes: not a recipe")
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply: not a recipe") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from None


def recipe_from_dict(raw: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Build and validate a Recipe from plain values (a parsed TOML file)."""
    recipe = _build(Recipe, raw, source, prefix="")
    _validate(recipe, source)
    return recipe


def parse_override(override: str) -> tuple[str, Any]:
    """`section.key=value` as the key and its value (TOML, else the text as a bare string)."""
    if "=" not in override:
        raise RecipeError(f"--set {override}: expected section.key=value")
    key, text = override.split("=", 1)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare string such as a path
    return key.strip(), value


def dotted_keys(table: dict[str, Any], is_value: Any = None) -> dict[str, Any]:
    """Nested tables as dotted keys, `{"model": {"cell": "gru"}}` -> `{"model.cell": "gru"}`; dotted keys
    given as such stay as they are. A table for which `is_value(table)` is true is a value, not a section."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and not (is_value and is_value(value)):
            flat.update({f"{key}.{inner}": v for inner, v in dotted_keys(value, is_value).items()})
        else:
            flat[key] = value
    return flat


def set_key(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set dotted `key` in a recipe's plain values; `where` names the setting in an error."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"{where}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def _build(cls: type, raw: Any, source: str, prefix: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: '{where}' must be a table")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        full = prefix + key
        if key not in names:
            hint = difflib.get_close_matches(key, names, n=1)
            extra = f" (did you mean '{prefix}{hint[0]}'?)" if hint else ""
            raise RecipeError(f"{source}: unknown key '{full}'{extra}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            values[key] = _build(hint, value, source, prefix=f"{full}.")
        else:
            values[key] = _coerce(value, hint, source, full)
    return cls(**values)


def _coerce(value: Any, hint: Any, source: str, key: str) -> Any:
    if get_origin(hint) is list:
        (item,) = get_args(hint)
        if not isinstance(value, list):
            raise RecipeError(f"{source}: '{key}' must be a list, got {value!r}")
        return [_coerce(v, item, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return _expand_env(value, source, key)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        raise RecipeError(f"{source}: '{key}' must be a string, got {value!r}")
    if isinstance(value, bool) and hint is not bool:
        raise RecipeError(f"{source}: '{key}' must be {hint.__name__}, got {value!r}")
    if not isinstance(value, hint):
        raise RecipeError(f"{source}: '{key}' must be {hint.__name__}, got {value!r}")
    return value


def _expand_env(text: str, source: str, key: str) -> str:
    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise RecipeError(f"{source}: '{key}' needs the environment variable {name} (or --set {key}=...)")

    return _ENV.sub(replace, text)


def _get(recipe: Recipe, key: str) -> Any:
    node: Any = recipe
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _validate(recipe: Recipe, source: str) -> None:
    for key, choices in _CHOICES.items():
        value = _get(recipe, key)
        if value not in choices:
            raise RecipeError(f"{source}: '{key}' must be one of {', '.join(choices)}; got {value!r}")
    for key, ok, what in _RANGES:
        value = _get(recipe, key)
        if not ok(value):
            raise RecipeError(f"{source}: '{key}' must be {what}; got {value!r}")
    if not re.fullmatch(r"[\w.-]+", recipe.name):
        raise RecipeError(
            f"{source}: 'name' may hold only letters, digits, '.', '_' and '-'; got {recipe.name!r}"
        )
    data, model = recipe.data, recipe.model
    needed = {
        "folder": ("dir",),
        "files": ("train_src", "train_tgt") + (() if data.valid_fraction else ("valid_src", "valid_tgt")),
        "tsv": ("train_tsv",),
        "hf": ("dataset",),
    }.get(data.kind, ())
    if data.kind not in FILE_KINDS:
        for name in ("max_pairs", "valid_fraction"):
            if getattr(data, name):
                raise RecipeError(
                    f"{source}: 'data.{name}' applies to corpora read from files (data.kind "
                    f"{', '.join(FILE_KINDS)}); a generated corpus ('{data.kind}') sets its sizes with "
                    "data.train_size and data.valid_size"
                )
    for name in needed:
        if not getattr(data, name):
            raise RecipeError(f"{source}: 'data.{name}' is required when data.kind = '{data.kind}'")
    if problem := model_problem(model):
        raise RecipeError(f"{source}: {problem}")
    if recipe.decoding.n_best > recipe.decoding.beam_size:
        raise RecipeError(f"{source}: 'decoding.n_best' must be <= decoding.beam_size")


def model_problem(model: ModelConfig) -> str | None:
    """Why a model section cannot work (naming the key), or None: the one place these rules live, read
    by recipe validation and by `build_model`."""
    if model.input_feeding and model.attention == "none":
        return "'model.input_feeding' needs attention; set model.attention or turn it off"
    if model.attention == "dot" and model.bidirectional:
        return (
            "'model.attention' = 'dot' needs keys and queries of one size, but a bidirectional encoder "
            "doubles them: use attention 'general' or set model.bidirectional = false"
        )
    if model.attention == "none" and model.decoder_init == "zeros":
        return (
            "'model.decoder_init' = 'zeros' without attention leaves the decoder blind to the source: use "
            "'bridge' or 'final'"
        )
    if model.decoder_init == "final" and model.encoder_layers != model.decoder_layers:
        return (
            "'model.decoder_init' = 'final' passes each encoder layer's state to the same decoder layer, so "
            "model.encoder_layers must equal model.decoder_layers (or use 'bridge')"
        )
    return _classic_problem(model)


def _classic_problem(model: ModelConfig) -> str | None:
    """model_problem's rules for one_hot, attention_combine, context_every_step, decoder_order and
    deep_output."""
    if model.one_hot and model.tie_embeddings:
        return "'model.one_hot' has no embedding to tie to the output layer: set model.tie_embeddings = false"
    if model.one_hot and (model.src_vectors or model.tgt_vectors):
        return "'model.one_hot' has no embedding to load vectors into: unset model.src_vectors/tgt_vectors"
    if model.attention == "none" and model.attention_combine != "concat":
        return "'model.attention_combine' combines the attention's context: it needs model.attention"
    if model.context_every_step and model.attention != "none":
        return (
            "'model.context_every_step' gives the decoder the encoder's one summary; with attention the "
            "context is computed at every step: set model.attention = 'none' or turn it off"
        )
    if model.deep_output != "tanh" and not (model.decoder_order == "bahdanau" or model.context_every_step):
        return (
            "'model.deep_output' shapes the deep-output layer, which only model.decoder_order = 'bahdanau' "
            "and model.context_every_step have"
        )
    if model.decoder_order == "bahdanau":
        if model.attention == "none":
            return (
                "'model.decoder_order' = 'bahdanau' orders the attention's steps: it needs model.attention "
                "(without attention, model.context_every_step gives Cho et al.'s decoder)"
            )
        if model.input_feeding:
            return (
                "'model.decoder_order' = 'bahdanau' feeds the context c_i, not the attentional vector, into "
                "the cell: set model.input_feeding = false"
            )
        if model.attention_combine != "concat":
            return (
                "'model.decoder_order' = 'bahdanau' computes its output from [s_i; c_i; E y_{i-1}]: "
                "model.attention_combine = 'add' applies to the 'luong' order only"
            )
    return None


def check_precision(precision: str) -> str:
    """A decoding precision given outside a recipe (--precision), refused unless one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise RecipeError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    return precision
