"""Offline stand-ins: the repo's own tokenizer, and miniatures of the GPU profiles' models.

Nothing here downloads anything. Two stand-ins are built from a seed:

* the **tiny tokenizer**, a byte-level BPE trained on a procedural corpus (words, numbers, code,
  verdict markup), used by the ``tiny`` model and by every miniature;
* a **miniature** (``<preset>@mini``, see :data:`FAMILIES`): a random-init model of the preset's own
  architecture class, with its rope type and theta, its position limit, its head (causal LM, or
  sequence classification that pools the last non-pad token), its chat-template behaviour and its
  special tokens, only shrunk to 2 layers of width 64. A code path that breaks on the real
  architecture (rope scaling, a 4-bit head, a template switch) breaks on its miniature too.

The config facts are those of the presets' published configs (design notes, ``docs/models.md``).
The chat templates are this repo's own text with the same behaviour as the real ones where the
course depends on it: ChatML roles, Qwen3's empty thinking block when ``enable_thinking`` is False,
Llama 3's header markup and ``<|eot_id|>``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

MINI_SUFFIX = "@mini"
MINI_SIZES = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 2,
              "head_dim": 32}
"""What a miniature shrinks; everything else comes from its family. The real models' grouped-query
ratio (4 query heads per KV head) is kept, and every projection's width is a multiple of 64, which
bitsandbytes' 4-bit CPU kernels need."""

def _chatml(qwen3: bool) -> str:
    """ChatML with ``{% generation %}`` markers (trl's ``assistant_only_loss`` needs them); with
    ``enable_thinking=False`` the generation prompt opens the reply with an empty thinking block.

    ``qwen3``: as Qwen3's own template, the last message, when it is a reply to the last user turn, is
    rendered with its thinking block (empty when the reply has none) whatever ``enable_thinking`` says,
    so the thinking-off prompt is a prefix of the finished conversation (Stage II's shared prefix and
    trl's completion mask rely on that); earlier replies carry none."""
    last_user = ("{%- set ns = namespace(last_user=-1) -%}{%- for message in messages -%}"
                 "{%- if message['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}")
    think = ("{%- if loop.index0 > ns.last_user and loop.last and '</think>' not in message['content'] -%}"
             "{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif -%}")
    return ((last_user if qwen3 else "") +
            "{%- for message in messages -%}"
            "{%- if message['role'] == 'assistant' -%}"
            "{{ '<|im_start|>assistant\\n' }}{% generation %}" + (think if qwen3 else "") +
            "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
            "{%- else -%}"
            "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
            "{%- endif -%}"
            "{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
            "{%- if enable_thinking is defined and enable_thinking is false -%}{{ '<think>\\n\\n</think>\\n\\n' }}"
            "{%- endif -%}{%- endif -%}")


CHATML_TEMPLATE = _chatml(qwen3=False)
QWEN3_TEMPLATE = _chatml(qwen3=True)

QWEN2_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}" + CHATML_TEMPLATE
)
"""Qwen2's behaviour: ChatML, with a default system turn when the chat has none."""

LLAMA3_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% generation %}{{ message['content'] + '<|eot_id|>' }}{% endgeneration %}"
    "{%- else -%}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif -%}"
)
"""Llama 3 header markup, each turn closed by ``<|eot_id|>`` (without the real template's date line)."""


@dataclass(frozen=True)
class Family:
    """The architecture facts a miniature keeps (from the real config), and its token conventions."""

    model_type: str
    intermediate_ratio: float
    """intermediate_size / hidden_size of the real model (kept by the miniature)."""
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    template: str
    specials: tuple[str, ...]
    eos: str
    pad: str
    rope_parameters: dict = field(default_factory=dict)
    """The native rope beyond ``rope_theta`` (Llama 3.1's ``llama3`` scaling); empty for plain rope."""
    real: dict = field(default_factory=dict)
    """The real sizes, for the record."""


FAMILIES: dict[str, Family] = {
    "qwen3": Family("qwen3", 12288 / 4096, 1_000_000.0, 40960, False, QWEN3_TEMPLATE,
                    ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"), "<|im_end|>",
                    "<|endoftext|>", real={"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
                                            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                                            "vocab_size": 151936}),
    "qwen2": Family("qwen2", 18944 / 3584, 1_000_000.0, 32768, False, QWEN2_TEMPLATE,
                    ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), "<|im_end|>", "<|endoftext|>",
                    real={"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                          "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064}),
    "llama3.1": Family("llama", 14336 / 4096, 500_000.0, 131072, False, LLAMA3_TEMPLATE,
                       ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eot_id|>", "<|finetune_right_pad_id|>"), "<|eot_id|>", "<|finetune_right_pad_id|>",
                       rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                       real={"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                             "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                             "vocab_size": 128256}),
}
"""Config facts per architecture family (Qwen3-8B; Qwen2-7B; Llama-3.1-8B and the RMs built on it)."""


# --- the tiny tokenizer -----------------------------------------------------------------------------

TINY_SPECIALS = ["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_WORDS = (
    "the a an of to in on for with by from at as is was are were be been has have had do does did not no yes "
    "and or but if then else when while because so that this these those it its they them their we our you your "
    "he she his her which who whom what where why how all any each every some many more most few less least "
    "answer question context document response assistant user system judge better worse best worst score rank "
    "correct wrong incorrect grounded faithful helpful complete evidence claim citation cites source summary "
    "report key point points fact facts number value total sum result code function return variable call output "
    "safe unsafe refuse request policy example label rule input pair pairs candidate candidates verdict because "
    "city river company year month day report project team manager engineer village museum station market "
    "north south east west red blue green small large first second third last final step steps problem "
    "according passage mentions states shows contains missing extra unsupported supported explanation analysis"
).split()


def _corpus(seed: int, n_lines: int = 6000) -> list[str]:
    """A procedural training corpus for the tiny tokenizer: words, numbers, code and chat markup."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        k = rng.randint(6, 24)
        words = [rng.choice(_WORDS) for _ in range(k)]
        if i % 5 == 0:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        if i % 7 == 0:
            lines.append(f"def f_{rng.randint(0, 99)}(x):\n    return x * {rng.randint(1, 9)} + {rng.randint(0, 50)}")
        if i % 11 == 0:
            lines.append(f"[[{rng.choice('AB')}]] [[A>B>C]] [[B>A]] [Score: {rng.randint(0, 10)}] [{rng.randint(1, 20)}]")
        sent = " ".join(words)
        lines.append(sent[0].upper() + sent[1:] + rng.choice([".", "?", "!", ":", ";", ","]))
    return lines


def build_tokenizer(seed: int, *, specials: tuple[str, ...] | list[str] = tuple(TINY_SPECIALS), pad: str = "<|pad|>",
                    eos: str = "<|im_end|>", template: str = CHATML_TEMPLATE, vocab_size: int = 4096):
    """The tiny byte-level BPE tokenizer (deterministic for a seed) with the given special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(_corpus(seed), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token=pad, eos_token=eos, bos_token=None, unk_token=None)
    tok.chat_template = template
    tok.padding_side = "left"
    return tok


# --- miniatures ---------------------------------------------------------------------------------------

def mini_tokenizer(family: str, seed: int = 0):
    f = FAMILIES[family]
    return build_tokenizer(seed, specials=f.specials, pad=f.pad, eos=f.eos, template=f.template)


def arch_config(family: str, *, vocab_size: int, pad_token_id: int | None = None, eos_token_id: int | None = None,
                scalar: bool = False, full_size: bool = False) -> Any:
    """The family's config: real rope type and theta, position limit and tying, at miniature sizes
    (:data:`MINI_SIZES`), or at the real sizes with ``full_size`` (a random-init 8B for memory and
    speed checks, ``benchmarks/gpu_check.py``). ``scalar``: one label, pooled at the last non-pad token."""
    from transformers import AutoConfig

    f = FAMILIES[family]
    rope = {"rope_theta": f.rope_theta, "rope_type": "default", **f.rope_parameters}
    if full_size:
        sizes = {k: v for k, v in f.real.items() if k != "vocab_size"}
    else:
        inter = max(1, round(MINI_SIZES["hidden_size"] * f.intermediate_ratio / 64)) * 64
        sizes = dict(MINI_SIZES, intermediate_size=inter)
    cfg = AutoConfig.for_model(f.model_type, vocab_size=vocab_size, rope_parameters=rope,
                               max_position_embeddings=f.max_position_embeddings,
                               tie_word_embeddings=f.tie_word_embeddings, pad_token_id=pad_token_id,
                               eos_token_id=eos_token_id, bos_token_id=None, **sizes)
    if scalar:
        cfg.num_labels = 1
    return cfg


def mini_config(family: str, tokenizer, *, scalar: bool = False) -> Any:
    """:func:`arch_config` at miniature size for the miniature's own tokenizer."""
    return arch_config(family, vocab_size=-(-len(tokenizer) // 64) * 64, pad_token_id=tokenizer.pad_token_id,
                       eos_token_id=tokenizer.eos_token_id, scalar=scalar)


def mini_model(family: str, tokenizer, *, scalar: bool = False, seed: int = 0):
    """A random-init miniature of ``family`` (causal LM, or sequence classification with ``scalar``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cfg = mini_config(family, tokenizer, scalar=scalar)
    torch.manual_seed(seed)
    cls = AutoModelForSequenceClassification if scalar else AutoModelForCausalLM
    model = cls.from_config(cfg)
    if not scalar:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
