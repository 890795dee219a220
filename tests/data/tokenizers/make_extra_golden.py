#!/usr/bin/env python3
"""Extra golden ids for hostile text, from Hugging Face `tokenizers` itself (run on the device machine).

  make_extra_golden.py TOKENIZER_JSON OUT_JSON
Writes [{"text", "ids", "ids_no_special"}] for strings that exercise the pre-tokenizer (whitespace,
punctuation, underscores, digits), added tokens inside the text, and non-ASCII characters.
"""
import json, random, sys, tokenizers
from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
tok.no_padding(); tok.no_truncation()
random.seed(7)
texts = ["ACGT ACGT", " \tACGTAGCA\r\n ACGTAGCA\n", "ACGTAGCA-ACGTAGCA", "--", "ACGT_ACGT", "ACGT123ACGT",
         "A[SEP]A", "[MASK]", "[X]", "[CLS", "[cls]ACGT", "[UNK][UNK]A", "ACGT[PAD]", "[[SEP]]",
         "A\u00e9", "A\u00a0A", "A\u20acA", "A\u3000C", "\u00c5CGT", "ACG\U0001F600T", "ACGT.,;:!?ACGT",
         "N" * 50, "acgtn" * 10, "ACGT\x00ACGT", "\u0661\u0662ACGT", "A\u0301CGT", "AC\u200bGT"]
alphabet = "ACGTN -._[]aé"
for _ in range(40):
    texts.append("".join(random.choice(alphabet) for _ in range(random.randint(0, 120))))
out = [{"text": t, "ids": tok.encode(t).ids, "ids_no_special": tok.encode(t, add_special_tokens=False).ids}
       for t in texts]
json.dump({"tokenizers_version": tokenizers.__version__, "cases": out}, open(sys.argv[2], "w"), ensure_ascii=True,
          indent=0)
print("wrote", len(out), "cases with tokenizers", tokenizers.__version__)
