"""The pilot's b16 lr 2e-3 run with the MLM decoder bias initialised to the log unigram frequencies of the training
blocks (a callback on train begin; the recipe itself is unchanged)."""

import sys

import numpy as np
import torch
from transformers import TrainerCallback

from recipes.data import assets
from recipes.data.corpus import prepare
from recipes.data.text_sources import CorpusSpec
from recipes.pretrain import main


class UnigramDecoderBias(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step:
            return
        tokenizer = assets.default_tokenizer()
        train = np.asarray(prepare(CorpusSpec(), tokenizer, 128, 0.15).train["input_ids"])
        counts = np.bincount(train.ravel(), minlength=model.config.vocab_size).astype(np.float64)
        counts[tokenizer.all_special_ids] = 0
        log_p = np.log((counts + 0.1) / (counts + 0.1).sum())
        with torch.no_grad():
            model.lm_head.decoder.bias.copy_(torch.from_numpy(log_p - log_p.mean()))
        print(f"decoder bias := log unigram (max {log_p.max():.2f}, min {log_p.min():.2f})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:], callbacks=[UnigramDecoderBias()])
