"""Pictures the lessons draw from the library: what they show, read back from the figure."""

from __future__ import annotations

import numpy as np

from kwlesson import plots
from kwlesson.models import create_model


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_text()]  # not arrows


def test_network_figure_draws_every_computing_layer_in_order_then_the_softmax():
    model = create_model("tiny_conv", (49, 40), 4)
    fig = plots.network_figure(model, np.random.default_rng(0).normal(size=(49, 40)))
    texts = _texts(fig)
    assert texts[0] == "input: 49 x 40 features (frames x bins)"
    assert texts[1].startswith("first_conv: convolution 10x8, stride 2x2 -> 25 x 20 x 8")
    assert texts[2] == "logits: fully connected -> 4"
    assert texts[-1] == "softmax -> 4 probabilities, one per label"
    assert len(fig.axes) == 2  # the features beside the boxes
    image = fig.axes[0].images[0]
    assert image.get_array().shape == (40, 49)  # bins upwards, frames to the right


def test_network_figure_leaves_out_what_does_not_compute():
    model = create_model("tc_resnet", (49, 40), 12)
    texts = _texts(plots.network_figure(model))
    assert not any("norm" in t or "relu" in t or "dropout" in t for t in texts)
    assert sum("add the shortcut" in t for t in texts) == 3  # one per residual block
    assert any(t.startswith("avg_pool: average over time -> 72") for t in texts)


def test_speech_systems_figure_names_the_parts_of_both_systems():
    texts = " ".join(_texts(plots.speech_systems_figure()))
    for part in ("acoustic model", "pronunciation lexicon", "language model", "decoder",
                 "RecognizeCommands", "one small network"):
        assert part in texts, part
