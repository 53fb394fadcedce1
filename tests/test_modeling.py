"""HybridBERT models on tiny configs: padding invariance, SDPA vs eager, gradients, losses, bad input, outputs,
gradient checkpointing, tied weights and position embeddings. Real forward/backward passes on CPU."""

import pytest
import torch
import torch.nn.functional as F
from helpers import MASK_ID, TINY_VOCAB, architecture_config, padded_batch, tiny_config

from modeling import HybridBertForMaskedLM, HybridBertForSequenceClassification, HybridBertModel

ATOL = 1e-5
INIT_RANGE = 0.1
HBERT_VARIANTS = ("hbert-v1", "hbert-v2")


def seeded(cls, config, **kwargs):
    """A model built under a fixed seed, in eval mode, with weights large enough that every mixer matters.

    At the default initializer_range (0.02) a tiny model's mixers are nearly uniform averages and a wrong mask changes
    outputs by less than the tolerance; initialising at a larger scale makes the tests sensitive to it.
    """
    config.initializer_range = INIT_RANGE
    torch.manual_seed(0)
    return cls(config, **kwargs).eval()


def mlm_labels(input_ids, attention_mask, every: int = 3):
    """Labels at every `every`-th real token (the original id), -100 elsewhere."""
    labels = torch.full_like(input_ids, -100)
    positions = torch.arange(input_ids.shape[1])[None].expand_as(input_ids)
    chosen = (positions % every == 1) & attention_mask.bool()
    labels[chosen] = input_ids[chosen]
    return labels


# --- padding ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [HybridBertModel, HybridBertForMaskedLM])
def test_padded_row_matches_the_same_sequence_alone(architecture, cls):
    """Each right-padded row of a batch gives, at its real tokens, the same output as the sequence run alone."""
    model = seeded(cls, architecture_config(architecture))
    input_ids, attention_mask = padded_batch(boundaries=True)
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask)
        for row in range(input_ids.shape[0]):
            length = int(attention_mask[row].sum())
            alone = model(input_ids=input_ids[row : row + 1, :length])
            key = "last_hidden_state" if cls is HybridBertModel else "logits"
            torch.testing.assert_close(batched[key][row, :length], alone[key][0], atol=ATOL, rtol=0)


def test_ids_at_padded_positions_do_not_change_real_outputs(architecture):
    """Replacing the ids at padded positions by random ids (even [MASK]) leaves real-token outputs unchanged."""
    model = seeded(HybridBertModel, architecture_config(architecture))
    input_ids, attention_mask = padded_batch(boundaries=True)
    noisy = input_ids.clone()
    pad = attention_mask == 0
    noisy[pad] = torch.randint(1, TINY_VOCAB, (int(pad.sum()),), generator=torch.Generator().manual_seed(1))
    noisy[1, -1] = MASK_ID
    assert not torch.equal(noisy, input_ids)
    with torch.no_grad():
        clean = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        dirty = model(input_ids=noisy, attention_mask=attention_mask).last_hidden_state
    real = attention_mask.bool()
    torch.testing.assert_close(dirty[real], clean[real], atol=ATOL, rtol=0)


def test_all_padding_row_is_finite_and_does_not_change_other_rows(architecture):
    """A row with an all-zero attention mask gives finite outputs and leaves the other rows as they are alone."""
    model = seeded(HybridBertModel, architecture_config(architecture))
    input_ids, attention_mask = padded_batch(batch=3, boundaries=True)
    # row 0: full length, row 1: all padding, row 2: partially padded
    input_ids[1] = 0
    attention_mask[1] = 0
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        assert torch.isfinite(out).all()
        for row in (0, 2):
            length = int(attention_mask[row].sum())
            alone = model(input_ids=input_ids[row : row + 1, :length]).last_hidden_state
            torch.testing.assert_close(out[row, :length], alone[0], atol=ATOL, rtol=0)


# --- SDPA vs eager -----------------------------------------------------------------------------------------------


def test_sdpa_and_eager_give_the_same_outputs(variant, tmp_path):
    """The default (SDPA) model and the same weights loaded with attn_implementation='eager' agree, with padding."""
    sdpa = seeded(HybridBertForMaskedLM, tiny_config(variant))
    assert sdpa.config._attn_implementation == "sdpa"
    sdpa.save_pretrained(tmp_path)
    eager = HybridBertForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert eager.config._attn_implementation == "eager"
    # the config-level public switch works too
    assert HybridBertForMaskedLM(tiny_config(variant, attn_implementation="eager")).config._attn_implementation == (
        "eager"
    )
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        a = sdpa(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        b = eager(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    real = attention_mask.bool()
    for hidden_a, hidden_b in zip(a.hidden_states, b.hidden_states, strict=True):
        torch.testing.assert_close(hidden_a[real], hidden_b[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(a.logits[real], b.logits[real], atol=ATOL, rtol=0)


def test_set_attn_implementation_switches_at_run_time():
    """model.set_attn_implementation switches SDPA <-> eager on a live model, with the same outputs."""
    model = seeded(HybridBertModel, tiny_config("hbert-v1"))
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        sdpa = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        eager = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    real = attention_mask.bool()
    torch.testing.assert_close(eager[real], sdpa[real], atol=ATOL, rtol=0)


def test_requesting_attentions_does_not_change_outputs(architecture):
    """output_attentions=True (which takes the explicit-softmax path) gives the same hidden states as without."""
    model = seeded(HybridBertModel, architecture_config(architecture))
    input_ids, attention_mask = padded_batch(boundaries=True)
    with torch.no_grad():
        plain = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        with_weights = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
    real = attention_mask.bool()
    torch.testing.assert_close(with_weights.last_hidden_state[real], plain[real], atol=ATOL, rtol=0)


# --- gradients ---------------------------------------------------------------------------------------------------


def test_gradients_reach_every_parameter(architecture):
    """An MLM loss backward gives every trainable parameter a finite, not-all-zero gradient."""
    model = seeded(HybridBertForMaskedLM, architecture_config(architecture)).train()
    input_ids, attention_mask = padded_batch(boundaries=True)
    labels = mlm_labels(input_ids, attention_mask)
    model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
    params = dict(model.named_parameters())
    assert params, "model has no parameters"
    for name, param in params.items():
        if not param.requires_grad:
            continue
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"
    # the tied decoder weight is the embedding: it is listed (and updated) once
    assert "lm_head.decoder.weight" not in params
    assert "hybrid_bert.embeddings.word_embeddings.weight" in params


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(architecture):
    """With dropout 0, activation checkpointing in train mode leaves the loss and every gradient unchanged."""
    input_ids, attention_mask = padded_batch(boundaries=True)
    labels = mlm_labels(input_ids, attention_mask)

    def loss_and_grads(checkpointing: bool):
        model = seeded(HybridBertForMaskedLM, architecture_config(architecture)).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.is_activation_checkpointing
            assert all(layer.gradient_checkpointing for layer in model.hybrid_bert.layers)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}

    loss, grads = loss_and_grads(False)
    loss_ckpt, grads_ckpt = loss_and_grads(True)
    torch.testing.assert_close(loss_ckpt, loss, atol=1e-6, rtol=0)
    assert grads.keys() == grads_ckpt.keys()
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], atol=1e-6, rtol=1e-5, msg=name)


# --- MLM loss ----------------------------------------------------------------------------------------------------


def test_sparse_prediction_matches_dense(variant):
    """Sparse prediction gives the dense loss, and logits equal to the dense logits at labelled positions in order."""
    sparse = seeded(HybridBertForMaskedLM, tiny_config(variant, sparse_prediction=True))
    dense = HybridBertForMaskedLM(tiny_config(variant, sparse_prediction=False)).eval()
    dense.load_state_dict(sparse.state_dict())
    input_ids, attention_mask = padded_batch()
    labels = mlm_labels(input_ids, attention_mask)
    labelled = labels != -100
    with torch.no_grad():
        s = sparse(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        d = dense(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        unlabelled = sparse(input_ids=input_ids, attention_mask=attention_mask)
    assert d.logits.shape == (*input_ids.shape, TINY_VOCAB)
    assert s.logits.shape == (int(labelled.sum()), TINY_VOCAB)
    torch.testing.assert_close(s.logits, d.logits[labelled], atol=ATOL, rtol=0)
    torch.testing.assert_close(s.loss, d.loss, atol=ATOL, rtol=0)
    # without labels the sparse model runs the head everywhere
    assert unlabelled.loss is None
    assert unlabelled.logits.shape == (*input_ids.shape, TINY_VOCAB)
    torch.testing.assert_close(unlabelled.logits, d.logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("sparse_prediction", [True, False])
def test_mlm_loss_is_mean_over_labelled_tokens(sparse_prediction):
    """Without num_items_in_batch the MLM loss is the mean token cross entropy over labelled tokens."""
    model = seeded(HybridBertForMaskedLM, tiny_config("hbert-v2", sparse_prediction=False))
    model.config.sparse_prediction = sparse_prediction
    input_ids, attention_mask = padded_batch()
    labels = mlm_labels(input_ids, attention_mask)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    labelled = labels != -100
    expected = F.cross_entropy(logits[labelled], labels[labelled], reduction="mean")
    torch.testing.assert_close(out.loss, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("sparse_prediction", [True, False])
@pytest.mark.parametrize("as_tensor", [True, False])
def test_num_items_in_batch_divides_the_summed_loss(sparse_prediction, as_tensor):
    """With num_items_in_batch=N the MLM loss is the sum of token cross entropies divided by N."""
    assert HybridBertForMaskedLM.accepts_loss_kwargs is True
    model = seeded(HybridBertForMaskedLM, tiny_config("pool-hybrid", sparse_prediction=sparse_prediction))
    input_ids, attention_mask = padded_batch()
    labels = mlm_labels(input_ids, attention_mask)
    labelled = labels != -100
    n_items = int(labelled.sum()) * 3 + 1  # e.g. the token count over several accumulated batches
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=labels,
            num_items_in_batch=torch.tensor(n_items) if as_tensor else n_items,
        )
    expected = F.cross_entropy(logits[labelled], labels[labelled], reduction="sum") / n_items
    torch.testing.assert_close(out.loss, expected, atol=ATOL, rtol=0)


def test_mlm_loss_without_labelled_tokens_is_finite():
    """A batch whose labels are all -100 gives a finite loss (no division by zero), sparse and dense."""
    input_ids, attention_mask = padded_batch()
    labels = torch.full_like(input_ids, -100)
    for sparse_prediction in (True, False):
        model = seeded(HybridBertForMaskedLM, tiny_config("bert", sparse_prediction=sparse_prediction))
        with torch.no_grad():
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        assert torch.isfinite(loss)


# --- sequence classification -------------------------------------------------------------------------------------


def test_classification_single_label_loss_is_cross_entropy():
    """Integer labels with several classes give F.cross_entropy of the returned logits."""
    model = seeded(HybridBertForSequenceClassification, tiny_config("hbert-v1", num_labels=3))
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (3, 3)
    assert model.config.problem_type == "single_label_classification"
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels), atol=ATOL, rtol=0)


@pytest.mark.parametrize("explicit_problem_type", [True, False])
def test_classification_multi_label_loss_is_bce_with_logits(explicit_problem_type):
    """Float multi-hot labels (problem_type multi_label_classification, set or inferred) give BCE-with-logits."""
    overrides = dict(num_labels=4)
    if explicit_problem_type:
        overrides["problem_type"] = "multi_label_classification"
    model = seeded(HybridBertForSequenceClassification, tiny_config("pool-hybrid", **overrides))
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (3, 4)
    assert model.config.problem_type == "multi_label_classification"
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, labels), atol=ATOL, rtol=0)


def test_classification_regression_loss_is_mse():
    """num_labels=1 with float targets gives the MSE between the single logit and the target."""
    model = seeded(HybridBertForSequenceClassification, tiny_config("addbert", num_labels=1))
    input_ids, attention_mask = padded_batch()
    labels = torch.tensor([0.5, -1.25, 2.0])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (3, 1)
    assert model.config.problem_type == "regression"
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(-1), labels), atol=ATOL, rtol=0)


def test_classification_does_not_accept_loss_kwargs():
    """The classifier's loss is a per-batch mean, so it tells Trainer not to pass num_items_in_batch."""
    assert HybridBertForSequenceClassification.accepts_loss_kwargs is False


def test_classification_padded_row_matches_alone(architecture):
    """A classifier's logits for a padded row equal those for the sequence alone."""
    model = seeded(HybridBertForSequenceClassification, architecture_config(architecture, num_labels=3))
    input_ids, attention_mask = padded_batch(boundaries=True)
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask).logits
        length = int(attention_mask[2].sum())
        alone = model(input_ids=input_ids[2:3, :length]).logits
    torch.testing.assert_close(batched[2], alone[0], atol=ATOL, rtol=0)


def test_mean_pooled_classifier_reads_the_mean_of_attended_tokens(architecture):
    """With classifier_pooling="mean" the logits are the classifier applied to the mean of the last hidden states
    over each row's attended tokens (computed here by a loop over rows), the model has no [CLS] pooler, and a padded
    row scores as the sequence alone."""
    model = seeded(HybridBertForSequenceClassification, architecture_config(architecture, num_labels=3))
    mean_model = seeded(
        HybridBertForSequenceClassification, architecture_config(architecture, num_labels=3, classifier_pooling="mean")
    )
    assert model.hybrid_bert.pooler is not None and mean_model.hybrid_bert.pooler is None
    input_ids, attention_mask = padded_batch(boundaries=True)
    with torch.no_grad():
        logits = mean_model(input_ids=input_ids, attention_mask=attention_mask).logits
        hidden = mean_model.hybrid_bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        expected = torch.stack([
            mean_model.classifier(hidden[row, : int(attention_mask[row].sum())].mean(dim=0))
            for row in range(len(input_ids))
        ])  # fmt: skip
        length = int(attention_mask[2].sum())
        alone = mean_model(input_ids=input_ids[2:3, :length]).logits
    assert attention_mask.sum(dim=1).unique().numel() > 1  # rows of different lengths: the mask matters
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[2], alone[0], atol=ATOL, rtol=0)


# --- bad input ---------------------------------------------------------------------------------------------------


def test_input_longer_than_max_positions_raises(variant):
    """A sequence longer than max_position_embeddings raises ValueError naming the limit."""
    model = seeded(HybridBertModel, tiny_config(variant, max_position_embeddings=16))
    with pytest.raises(ValueError, match=r"Sequence length 17 exceeds max_position_embeddings=16"):
        model(input_ids=torch.full((1, 17), 7))
    model(input_ids=torch.full((1, 16), 7))  # exactly the limit is fine


def test_both_or_neither_input_ids_and_inputs_embeds_raise():
    """Passing both input_ids and inputs_embeds, or neither, raises ValueError."""
    model = seeded(HybridBertModel, tiny_config("bert"))
    input_ids, _ = padded_batch()
    embeds = model.get_input_embeddings()(input_ids)
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model(input_ids=input_ids, inputs_embeds=embeds)
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model()


@pytest.mark.parametrize("bad_shape", [(3, 11), (3, 13), (2, 12), (3, 12, 1)])
def test_attention_mask_of_wrong_shape_raises(bad_shape):
    """An attention_mask whose shape is not (batch, seq) raises ValueError naming the expected shape."""
    model = seeded(HybridBertModel, tiny_config("hbert-v1"))
    input_ids, _ = padded_batch()
    with pytest.raises(ValueError, match=r"attention_mask has shape .*expected \(batch, sequence\) = \(3, 12\)"):
        model(input_ids=input_ids, attention_mask=torch.ones(bad_shape, dtype=torch.long))


# --- inputs_embeds -----------------------------------------------------------------------------------------------


def test_inputs_embeds_path_equals_input_ids_path(variant):
    """Passing word_embeddings(input_ids) as inputs_embeds gives the same output as passing input_ids."""
    model = seeded(HybridBertModel, tiny_config(variant))
    assert not model.config.drop_mask
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        from_ids = model(input_ids=input_ids, attention_mask=attention_mask)
        embeds = model.embeddings.word_embeddings(input_ids)
        from_embeds = model(inputs_embeds=embeds, attention_mask=attention_mask)
    torch.testing.assert_close(from_embeds.last_hidden_state, from_ids.last_hidden_state, atol=ATOL, rtol=0)
    torch.testing.assert_close(from_embeds.pooler_output, from_ids.pooler_output, atol=ATOL, rtol=0)


def test_drop_mask_rejects_inputs_embeds_alone():
    """With drop_mask=True, inputs_embeds without input_ids raises ValueError (it cannot find [MASK] tokens)."""
    model = seeded(HybridBertModel, tiny_config("hbert-v2", drop_mask=True))
    input_ids, attention_mask = padded_batch()
    embeds = model.get_input_embeddings()(input_ids)
    with pytest.raises(ValueError, match="drop_mask=True needs input_ids"):
        model(inputs_embeds=embeds, attention_mask=attention_mask)


# --- outputs -----------------------------------------------------------------------------------------------------


def test_hidden_states_and_attention_shapes(variant):
    """output_hidden_states gives layers+1 tensors; output_attentions one entry per layer, shaped by its mixer."""
    config = tiny_config(variant)
    mixers = list(config.mixer_types)
    model = seeded(HybridBertModel, config)
    input_ids, attention_mask = padded_batch()
    batch, seq = input_ids.shape
    heads = config.num_attention_heads
    with torch.no_grad():
        out = model(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, output_attentions=True
        )
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    for hidden in out.hidden_states:
        assert hidden.shape == (batch, seq, config.hidden_size)
    assert len(out.attentions) == len(mixers)
    expected_shape = {
        "self": (batch, heads, seq, seq),
        "additive": (batch, heads, 2, seq),
        "pooling": (batch, heads, seq),
    }
    for mixer, weights in zip(mixers, out.attentions, strict=True):
        assert weights.shape == expected_shape[mixer], mixer


def test_attention_weights_are_distributions_over_real_tokens(variant):
    """Every returned attention weight vector sums to 1 over keys and puts zero weight on padding."""
    config = tiny_config(variant)
    mixers = list(config.mixer_types)
    model = seeded(HybridBertModel, config)
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        weights = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True).attentions
    pad = attention_mask == 0
    for mixer, w in zip(mixers, weights, strict=True):
        # bring the key axis last and broadcast the padding mask to it
        if mixer == "pooling":
            key_pad = pad[:, None, :]
        else:
            key_pad = pad[:, None, None, :]
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)), atol=1e-5, rtol=0, msg=mixer)
        assert (w.masked_select(key_pad.expand_as(w)) == 0).all(), mixer


def test_return_dict_false_returns_tuples():
    """return_dict=False returns plain tuples whose entries equal the ModelOutput's fields."""
    model = seeded(HybridBertModel, tiny_config("hbert-v2"))
    mlm = seeded(HybridBertForMaskedLM, tiny_config("hbert-v2"))
    input_ids, attention_mask = padded_batch()
    labels = mlm_labels(input_ids, attention_mask)
    with torch.no_grad():
        as_tuple = model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)
        as_dict = model(input_ids=input_ids, attention_mask=attention_mask)
        mlm_tuple = mlm(input_ids=input_ids, attention_mask=attention_mask, labels=labels, return_dict=False)
        mlm_dict = mlm(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert type(as_tuple) is tuple and type(mlm_tuple) is tuple
    torch.testing.assert_close(as_tuple[0], as_dict.last_hidden_state)
    torch.testing.assert_close(as_tuple[1], as_dict.pooler_output)
    torch.testing.assert_close(mlm_tuple[0], mlm_dict.loss)
    torch.testing.assert_close(mlm_tuple[1], mlm_dict.logits)


# --- tied weights, saving, positions -----------------------------------------------------------------------------


def assert_tied(model: HybridBertForMaskedLM) -> None:
    decoder = model.lm_head.decoder.weight
    embedding = model.hybrid_bert.embeddings.word_embeddings.weight
    assert decoder is embedding
    assert decoder.data_ptr() == embedding.data_ptr()
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_decoder_is_tied_to_embeddings_and_survives_save_and_load(variant, tmp_path):
    """The MLM decoder weight is the word embedding after construction and after save/from_pretrained."""
    model = seeded(HybridBertForMaskedLM, tiny_config(variant))
    assert_tied(model)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not (tmp_path / "pytorch_model.bin").exists()
    loaded = HybridBertForMaskedLM.from_pretrained(tmp_path).eval()
    assert_tied(loaded)
    assert loaded.config.mixer_types == model.config.mixer_types
    # same weights, same outputs
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, atol=0, rtol=0, msg=name)
    input_ids, attention_mask = padded_batch()
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        got = loaded(input_ids=input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    # training the loaded model's embedding moves its decoder too
    with torch.no_grad():
        loaded.hybrid_bert.embeddings.word_embeddings.weight[7] += 1.0
    torch.testing.assert_close(loaded.lm_head.decoder.weight[7], model.lm_head.decoder.weight[7] + 1.0)


def test_sinusoidal_positions_are_not_parameters_and_learned_ones_are(variant):
    """hbert variants' sinusoidal positions are neither parameters nor state; learned positions are parameters."""
    model = seeded(HybridBertModel, tiny_config(variant))
    key = "embeddings.position_embeddings.weight"
    state = model.state_dict()
    params = dict(model.named_parameters())
    if variant in HBERT_VARIANTS:
        assert model.config.position_embedding_type == "sinusoidal"
        assert not any("position" in name for name in state)
        assert not any("position" in name for name in params)
    else:
        assert model.config.position_embedding_type == "absolute"
        assert key in state and key in params
        assert params[key].shape == (model.config.max_position_embeddings, model.config.hidden_size)


def test_sinusoidal_positions_leave_tokens_distinguishable_at_init():
    """Sinusoids at the token embeddings' initial scale: two tokens at one position start far apart (at unit amplitude
    the positions swamped them and every token embedded alike, so MLM stalled at the unigram distribution)."""
    model = seeded(HybridBertModel, tiny_config("hbert-v1")).eval()
    with torch.no_grad():
        embedded = model.embeddings(torch.tensor([[10] * 8, [20] * 8]), None, None, None)
    similarity = F.cosine_similarity(embedded[0], embedded[1], dim=-1)
    assert similarity.max() < 0.9, similarity


def test_sinusoidal_positions_make_the_model_order_sensitive():
    """With sinusoidal positions (and no learned ones) swapping two tokens changes their outputs beyond a swap."""
    model = seeded(HybridBertModel, tiny_config("hbert-v1"))
    input_ids = torch.tensor([[10, 20, 30, 40, 50]])
    swapped = torch.tensor([[20, 10, 30, 40, 50]])
    with torch.no_grad():
        a = model(input_ids=input_ids).last_hidden_state
        b = model(input_ids=swapped).last_hidden_state
    assert not torch.allclose(a[0, 0], b[0, 1], atol=1e-4)
