import numpy as np
import pytest
import torch

from maa.data.reprogram import SEQUENTIAL, SIMULTANEOUS
from maa.infer.options import split_sequence
from maa.infer.temporal import join, part_span, time_masks

PHRASES = ["a dog barks", "a siren wails", "rain falls"]


@pytest.mark.parametrize("name", sorted(SEQUENTIAL))
def test_split_undoes_every_sequential_template_of_reprogram(name):
    n = 2 if name == "after" else 3
    assert split_sequence(SEQUENTIAL[name](PHRASES[:n])) == PHRASES[:n]


@pytest.mark.parametrize("name", sorted(SIMULTANEOUS))
def test_simultaneous_captions_stay_one_part(name):
    caption = SIMULTANEOUS[name](PHRASES[:2])
    assert split_sequence(caption) == [caption]


@pytest.mark.parametrize("prompt, parts", [
    ("First, a man speaks, then people laugh.", ["a man speaks", "people laugh"]),
    ("Thunder rumbles and then rain falls", ["Thunder rumbles", "rain falls"]),
    ("a bell rings after a door slams", ["a door slams", "a bell rings"]),
    ("a dog barks while rain falls", ["a dog barks while rain falls"]),
    ("then", ["then"]),                          # no empty parts
    ("the calm after", ["the calm after"]),
    ("a then b then c then d then e", ["a then b then c then d then e"]),  # more than 4 parts: left whole
])
def test_split_sequence_phrasings(prompt, parts):
    assert split_sequence(prompt) == parts


@pytest.mark.parametrize("n, width", [(1, 31), (2, 31), (3, 78), (2, 1), (4, 9)])
def test_time_masks_partition_time_in_order(n, width):
    m = time_masks(n, width)
    assert m.shape == (n, width) and (m >= 0).all()
    torch.testing.assert_close(m.sum(0), torch.ones(width))
    if width >= 4 * n:
        owner = m.argmax(0)
        assert (owner[1:] >= owner[:-1]).all() and owner[0] == 0 and owner[-1] == n - 1
        for k in range(n):  # each part owns about its share
            assert abs(int((owner == k).sum()) - width / n) <= 1
    with pytest.raises(ValueError):
        time_masks(0, 5)


@pytest.mark.parametrize("n, length, overlap", [(2, 1000, 100), (3, 1001, 64), (4, 160000, 4000), (2, 50, 1)])
def test_join_places_each_clip_in_its_share_with_crossfades(n, length, overlap):
    spans = [part_span(k, n, length, overlap) for k in range(n)]
    assert spans[0][0] == 0 and spans[-1][1] == length
    need = max(e - s for s, e in spans)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((2, need + 3)).astype(np.float32) for _ in range(n)]
    out = join(clips, length, overlap)
    assert out.shape == (2, length)
    for k, (s, e) in enumerate(spans):  # outside the crossfades, clip k itself, from its own start
        lo = spans[k - 1][1] if k else 0
        hi = spans[k + 1][0] if k < n - 1 else length
        np.testing.assert_allclose(out[:, lo:hi], clips[k][:, lo - s:hi - s], atol=1e-6)
    # linear fades keep a constant constant; equal-power ones keep the power of unrelated parts
    ones = [np.ones(need, np.float32)] * n
    np.testing.assert_allclose(join(ones, length, overlap, equal_power=False), np.ones(length), atol=1e-6)
    power = sum(join([ones[0] if j == k else 0 * ones[0] for j in range(n)], length, overlap) ** 2 for k in range(n))
    np.testing.assert_allclose(power, np.ones(length), atol=1e-5)
    with pytest.raises(ValueError, match="its span needs"):
        join([c[:, :need - 2] for c in clips], length, overlap)
