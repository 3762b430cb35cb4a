"""kwlesson.data: the reference split, labels and quotas, and the tf.data pipeline.

Small corpora are written to tmp_path with numpy + soundfile; the real dev set is used when the
shared datasets folder is present (those tests skip, saying why, when it is not).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwlesson import data as D
from kwlesson import pipeline
from kwlesson.config import shared_datasets_dir

S = 16000


@pytest.fixture(autouse=True)
def _home(tmp_path_factory, monkeypatch):
    # Disk caches of these tests go to a throw-away folder, never ~/.cache/kwlesson.
    monkeypatch.setenv("KWLESSON_HOME", str(tmp_path_factory.mktemp("home")))


def _write(path: Path, x: np.ndarray, rate: int = S, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, rate, subtype=subtype)


def make_corpus(root: Path, words=("yes", "no", "up"), unknown=("bed", "cat"), speakers=40,
                per_speaker=2, background=True, seed=0) -> Path:
    """Word folders of random clips (amplitude 0.1) by `speakers` speakers, and a ramp noise."""
    rng = np.random.default_rng(seed)
    for w in (*words, *unknown):
        for k in range(speakers):
            spk = hashlib.sha1(f"spk{k}".encode()).hexdigest()[:8]
            for j in range(per_speaker):
                _write(root / w / f"{spk}_nohash_{j}.wav",
                       (rng.uniform(-0.1, 0.1, S)).astype(np.float32))
    if background:
        # A ramp makes the excerpt's position readable from the mixed clip.
        _write(root / "_background_noise_" / "ramp.wav",
               (np.arange(3 * S) / (3 * S)).astype(np.float32))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def sc(corpus, tmp_path_factory) -> D.SpeechCommands:
    return D.SpeechCommands(corpus, wanted_words=["yes", "no", "up"], cache=False)


@pytest.fixture(scope="module")
def settings():
    from kwlesson.features import FeatureSettings

    return FeatureSettings()


# ------------------------------------------------------------------------------ which_set


def test_which_set_reference_vectors():
    assert round(D.hash_percentage("a5d485dc_nohash_0.wav"), 4) == 23.0808
    assert D.which_set("a5d485dc_nohash_0.wav", 10, 10) == "training"
    assert round(D.hash_percentage("ab00c4b2_nohash_3.wav"), 4) == 3.4085
    assert D.which_set("some/dir/ab00c4b2_nohash_3.wav", 10, 10) == "validation"
    assert D.which_set("bobby_nohash_0.wav", 10, 10) == D.which_set("bobby_nohash_1.wav", 10, 10)
    assert D.hash_percentage("x/bobby_nohash_0.wav") == D.hash_percentage("bobby")
    assert D.MAX_NUM_WAVS_PER_CLASS == 2**27 - 1


def test_which_set_matches_the_reference_formula_and_thresholds():
    def reference(filename, validation, testing):
        base = os.path.basename(filename)
        name = re.sub(r"_nohash_.*$", "", base)
        h = hashlib.sha1(name.encode("utf-8")).hexdigest()
        pct = (int(h, 16) % (2**27 - 1 + 1)) * (100.0 / (2**27 - 1))
        if pct < validation:
            return "validation"
        if pct < testing + validation:
            return "testing"
        return "training"

    rng = random.Random(1)
    names = [f"{rng.getrandbits(32):08x}_nohash_{rng.randrange(5)}.wav" for _ in range(2000)]
    names += ["my clip ü.wav", "no_hash_here.wav", "a_nohash_b_nohash_c.wav"]
    for v, t in [(10, 10), (11, 1), (0, 0), (50, 50), (5, 30)]:
        assert [D.which_set(n, v, t) for n in names] == [reference(n, v, t) for n in names]
    got = {D.which_set(n, 10, 10) for n in names}
    assert got == {"training", "validation", "testing"}


def test_speaker_and_split_of_unknown_folder_files():
    assert D.speaker_of("t/_unknown_/backward_0c540988_nohash_0.wav") == "0c540988"
    assert D.speaker_of("t/yes/0c540988_nohash_1.wav") == "0c540988"
    # Outside _unknown_ nothing is stripped: which_set stays the reference's.
    assert D.speaker_of("t/boo/cat_0c540988_nohash_1.wav") == "cat_0c540988"
    assert D.split_of("t/_unknown_/backward_ab00c4b2_nohash_0.wav", 10, 10) == "validation"
    assert D.which_set("backward_ab00c4b2_nohash_0.wav", 10, 10) != "validation"
    assert D.prepare_words_list(["yes"]) == ["_silence_", "_unknown_", "yes"]


# ------------------------------------------------------------------------------ the index


def reference_index(data_dir, wanted, silence_pct, unknown_pct, val, test, seed=59185):
    """The seed's prepare_data_index, transcribed (sorted glob, its own Random instead of the
    global one): the oracle our index must equal."""
    rnd = random.Random(seed)
    wanted_index = {w: i + 2 for i, w in enumerate(wanted)}
    data_index = {"validation": [], "testing": [], "training": []}
    unknown_index = {"validation": [], "testing": [], "training": []}
    for wav_path in sorted(str(p) for p in Path(data_dir).glob("*/*.wav")):
        word = os.path.basename(os.path.dirname(wav_path)).lower()
        if word == "_background_noise_":
            continue
        set_index = D.which_set(wav_path, val, test)
        if word in wanted_index:
            data_index[set_index].append((wav_path, word))
        else:
            unknown_index[set_index].append((wav_path, "_unknown_"))
    for s in ["validation", "testing", "training"]:
        data_index[s].sort()
        unknown_index[s].sort()
    for s in ["validation", "testing", "training"]:
        set_size = len(data_index[s])
        silence_size = int(math.ceil(set_size * silence_pct / 100))
        data_index[s] += [(None, "_silence_")] * silence_size
        rnd.shuffle(unknown_index[s])
        unknown_size = int(math.ceil(set_size * unknown_pct / 100))
        data_index[s].extend(unknown_index[s][:unknown_size])
    for s in ["validation", "testing", "training"]:
        rnd.shuffle(data_index[s])
    return data_index


def test_index_equals_the_reference(sc, corpus):
    ref = reference_index(corpus, ["yes", "no", "up"], 10, 10, 10, 10)
    for split in D.SPLITS:
        assert [tuple(c) for c in sc.index[split]] == ref[split], split
    assert sc.labels == ["_silence_", "_unknown_", "yes", "no", "up"]
    train = sc.counts("training")
    n_wanted = train["yes"] + train["no"] + train["up"]
    assert train["_silence_"] == math.ceil(n_wanted * 0.1)
    assert train["_unknown_"] == math.ceil(n_wanted * 0.1)
    assert not sc.problems, sc.problems


def test_other_percentages_and_seed_follow_the_reference(corpus):
    sc2 = D.SpeechCommands(corpus, ["no"], silence_percentage=25, unknown_percentage=40,
                           validation_percentage=20, testing_percentage=5, seed=7, cache=False)
    ref = reference_index(corpus, ["no"], 25, 40, 20, 5, seed=7)
    for split in D.SPLITS:
        assert [tuple(c) for c in sc2.index[split]] == ref[split]


def test_splits_are_speaker_disjoint(sc):
    speakers = {s: {D.speaker_of(c.path) for c in sc.index[s] if c.path} for s in D.SPLITS}
    assert all(speakers.values())
    assert not speakers["training"] & speakers["validation"]
    assert not speakers["training"] & speakers["testing"]
    assert not speakers["validation"] & speakers["testing"]


def test_silence_and_unknown_folders_and_unknown_dirs(tmp_path):
    root = make_corpus(tmp_path / "d", words=("yes",), unknown=(), speakers=30, per_speaker=1)
    # The canonical test-set layout: _unknown_/<word>_<speaker>_nohash_<n>.wav, _silence_/<n>.wav
    spk = [p.name.split("_nohash_")[0] for p in sorted((root / "yes").iterdir())]
    rng = np.random.default_rng(1)
    for k, s in enumerate(spk):
        _write(root / "_unknown_" / f"backward_{s}_nohash_5.wav", rng.uniform(-.1, .1, S))
        _write(root / "_silence_" / f"{k}.wav", rng.uniform(-.01, .01, S))
    boo = tmp_path / "animals" / "boo"
    for k in range(5):
        _write(boo / f"boo{k}.wav", rng.uniform(-.1, .1, S))
    sc = D.SpeechCommands(root, ["yes"], silence_percentage=None, unknown_percentage=None,
                          unknown_dirs=[boo], cache=False)
    every = [c for s in D.SPLITS for c in sc.index[s]]
    assert len(every) == 30 + 30 + 30 + 5  # every real clip, nothing synthetic
    labels = {Path(c.path).parent.name: set() for c in every}
    for c in every:
        labels[Path(c.path).parent.name].add(c.label)
    assert labels == {"yes": {"yes"}, "_unknown_": {"_unknown_"}, "_silence_": {"_silence_"},
                      "boo": {"_unknown_"}}
    # A speaker's unknown clip sits in the split of their keyword clip.
    split_of = {c.path: s for s in D.SPLITS for c in sc.index[s]}
    for s in spk:
        assert split_of[str(root / "_unknown_" / f"backward_{s}_nohash_5.wav")] == \
            split_of[str(root / "yes" / f"{s}_nohash_0.wav")]
    # Real silence keeps its audio.
    rows, labels_i, synth = sc.split_arrays("training")
    x, y = sc.arrays("training")
    k = list(y).index(D.SILENCE_INDEX)
    assert not synth.any() and np.abs(x[k]).max() > 0
    # With quotas, real silence fills the silence quota first.
    sq = D.SpeechCommands(root, ["yes"], cache=False)
    for s in D.SPLITS:
        c = sq.counts(s)
        assert c["_silence_"] == math.ceil(c["yes"] / 10)
        real = sum(1 for e in sq.index[s] if e.label == "_silence_" and e.path)
        assert real == min(c["_silence_"], sum(1 for e in every if e.label == "_silence_"
                                               and split_of[e.path] == s))


# ------------------------------------------------------------------------------ decoding + cache


def test_disk_cache_is_used_and_invalidated(corpus, monkeypatch):
    calls = []
    # reaches in: counts calls to the per-file decoder, to see the cache skip it
    real = pipeline._decode_one
    monkeypatch.setattr(pipeline, "_decode_one", lambda *a: calls.append(a[0]) or real(*a))
    first = D.SpeechCommands(corpus, ["yes"])
    assert calls
    calls.clear()
    second = D.SpeechCommands(corpus, ["yes"])
    assert calls == []
    np.testing.assert_array_equal(first._audio, second._audio)
    # A changed file changes the key: decoded again.
    victim = Path(first.index["training"][0].path or first.index["training"][1].path)
    st = victim.stat()
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    D.SpeechCommands(corpus, ["yes"])
    assert len(calls) > 0


# ------------------------------------------------------------------------------ tf.data


def test_dataset_shapes_and_determinism(sc, settings):
    ds = sc.dataset("training", settings, batch_size=32, seed=3)
    a = [b for _, b in zip(range(3), ds)]
    b = [b for _, b in zip(range(3), sc.dataset("training", settings, batch_size=32, seed=3))]
    c = [b for _, b in zip(range(3), sc.dataset("training", settings, batch_size=32, seed=4))]
    x, y = a[0]
    assert x.shape == (32, 98, 40) and x.dtype.name == "float32"
    assert y.shape == (32,) and y.dtype.name == "int32"
    for (x1, y1), (x2, y2) in zip(a, b):
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    assert not np.array_equal(a[0][1].numpy(), c[0][1].numpy())


def test_training_repeats_and_reshuffles_each_epoch(sc):
    n = len(sc.index["training"])
    ds = sc.dataset("training", batch_size=n, seed=0, features=False, augment=False)
    it = iter(ds)
    _, y1 = next(it)
    _, y2 = next(it)
    assert sorted(y1.numpy()) == sorted(y2.numpy())
    assert not np.array_equal(y1.numpy(), y2.numpy())


def test_evaluation_split_is_ordered_complete_and_matches_arrays(sc, settings):
    from kwlesson.features import compute_features

    batches = list(sc.dataset("validation", settings, batch_size=50))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    audio, labels = sc.arrays("validation")
    np.testing.assert_array_equal(y, labels)
    assert len(y) == len(sc.index["validation"])
    np.testing.assert_allclose(x, compute_features(audio, settings).numpy(), rtol=1e-4, atol=1e-3)
    feats, labels2 = sc.arrays("validation", settings)
    assert feats.shape == (len(y), 98, 40)
    np.testing.assert_array_equal(labels, labels2)
    # Synthetic silence is background noise, the same on every call; words are untouched.
    silent = labels == D.SILENCE_INDEX
    assert silent.any() and np.abs(audio[silent]).max() > 0
    np.testing.assert_array_equal(audio, sc.arrays("validation")[0])
    rows, _, _ = sc.split_arrays("validation")
    np.testing.assert_array_equal(audio[~silent], sc._audio[rows[~silent]] / 32768.0)


def test_time_shift_is_a_zero_padded_shift_within_range(sc):
    clean, _ = sc.arrays("training")
    rows, _, synth = sc.split_arrays("training")
    ds = sc.dataset("training", batch_size=len(rows), shuffle=False, features=False,
                    time_shift_ms=100, background_frequency=0.0, seed=1)
    out = next(iter(ds))[0].numpy()
    shifts = []
    for k in np.nonzero(~synth)[0]:
        src = clean[k]
        # Zeros pad the side the clip moved away from; its own samples are random, so the
        # number of leading (or trailing) zeros gives the shift, up to a rare zero sample.
        lead = int(np.argmax(out[k] != 0))
        trail = int(np.argmax(out[k][::-1] != 0))
        candidates = {lead - d for d in range(4)} | {d - trail for d in range(4)}
        found = [s for s in sorted(candidates)
                 if abs(s) <= 1600 and np.array_equal(out[k], np.roll(src, s) * _mask(s))]
        assert found, k
        shifts.append(found[0])
    shifts = np.array(shifts)
    assert shifts.min() < -800 and shifts.max() > 800  # spread over [-1600, 1600]


def _mask(s):
    m = np.ones(S, np.float32)
    if s > 0:
        m[:s] = 0
    elif s < 0:
        m[s:] = 0
    return m


def test_background_mix_excerpts_volumes_and_frequency(sc):
    clean, labels = sc.arrays("training")
    rows, _, synth = sc.split_arrays("training")
    ds = sc.dataset("training", batch_size=len(rows), shuffle=False, features=False,
                    time_shift_ms=0, background_frequency=0.8, background_volume=0.5, seed=2)
    out = next(iter(ds))[0].numpy()
    # Synthetic silence has no foreground: the output is the noise excerpt alone.
    resid = out - np.where(synth[:, None], 0.0, clean)
    t = np.arange(S)
    starts, vols = [], []
    for k in range(len(rows)):
        slope, icpt = np.polyfit(t, resid[k], 1)  # ramp noise: vol * (start + t) / (3 S)
        vol = slope * 3 * S
        if abs(vol) < 1e-3:
            vols.append(0.0)
            continue
        start = icpt * 3 * S / vol
        assert -2 <= start <= 2 * S + 2, (k, start)
        starts.append(start)
        vols.append(vol)
    vols = np.array(vols)
    assert (vols[~synth] <= 0.5 + 1e-3).all()
    assert (vols[synth] > 0).all() and vols[synth].max() > 0.5  # silence: uniform(0, 1)
    mixed = (vols[~synth] > 0).mean()
    assert 0.65 < mixed < 0.95  # ~80% of word clips get noise
    assert np.std(starts) > 1000  # random offsets into the noise clip


def test_augment_off_for_other_splits_by_default(sc):
    audio, _ = sc.arrays("testing")
    x = np.concatenate([b[0].numpy() for b in sc.dataset("testing", features=False)])
    np.testing.assert_array_equal(x, audio)
    with pytest.raises(ValueError, match="split must be one of"):
        sc.dataset("train")


def test_feature_settings_must_match_the_loaded_clip_length(sc):
    from kwlesson.features import FeatureSettings

    with pytest.raises(ValueError, match="samples"):
        sc.dataset("training", FeatureSettings(clip_duration_ms=500))


def test_info_and_format_info(corpus):
    report = D.info(corpus)
    assert report["clips"] == 5 * 40 * 2
    assert report["words"]["yes"]["clips"] == 80
    assert report["words"]["yes"]["speakers"] == 40
    assert sum(report["splits"].values()) == 400
    assert report["speakers"] == 40
    assert report["problems"] == []
    assert report["background"][0]["duration_s"] == pytest.approx(3.0)
    text = D.format_info(report)
    assert "yes" in text and "80" in text and "problems: none" in text


def test_format_info_gives_words_with_the_same_numbers_one_row():
    def word(clips, train):
        return {"clips": clips, "speakers": 5, "duration_s": {"min": 1.0, "max": 1.0},
                "splits": {"training": train, "validation": 1, "testing": 1}}

    words = {"a": word(10, 8), "b": word(10, 8), "c": word(10, 8), "d": word(9, 7),
             "e": word(6, 4), "f": word(6, 4)}
    report = {"data_dir": "x", "clips": 51, "words": words, "speakers": 5,
              "duration_s": {"total": 51.0}, "validation_percentage": 10,
              "testing_percentage": 10, "splits": {"training": 39, "validation": 6,
                                                   "testing": 6},
              "sample_rates": {}, "background": [], "problems": []}
    rows = D.format_info(report).splitlines()
    assert any(r.startswith("  each of 3 ") and r.split()[3:5] == ["10", "8"] for r in rows)
    assert "    (a, b, c)" in rows
    # two alike stay two rows; a word of its own keeps its row
    assert sum(r.split()[:1] in (["e"], ["f"]) for r in rows) == 2
    assert any(r.split()[:3] == ["d", "9", "7"] for r in rows)


# ------------------------------------------------------------------------------ the real dev set

def _dev_set() -> Path:
    shared = shared_datasets_dir()
    path = shared / "speech_commands_test_set_v0.02_dev" if shared else None
    if path is None or not path.is_dir():
        pytest.skip("real clips absent: set KWLESSON_SHARED_DATASETS to the folder holding "
                    "speech_commands_test_set_v0.02_dev")
    return path


@pytest.fixture(scope="module")
def dev():
    path = _dev_set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", D.DataWarning)  # no _background_noise_ inside: expected
        return D.SpeechCommands(path, validation_percentage=11, testing_percentage=1,
                                silence_percentage=None, unknown_percentage=None, cache=False,
                                progress=False)


@pytest.mark.real_data
def test_dev_set_loads_every_clip_with_its_label(dev):
    every = [c for s in D.SPLITS for c in dev.index[s]]
    assert len(every) == 3441
    assert len(dev.labels) == 12
    for c in every:
        folder = Path(c.path).parent.name
        assert c.label == (folder if folder in dev.labels else D.UNKNOWN_LABEL)
    assert {c.label for c in every} == set(dev.labels)
    assert all(len(dev.index[s]) > 0 for s in D.SPLITS)
    assert [p for p in dev.problems if "_background_noise_" not in p] == []


@pytest.mark.real_data
def test_dev_set_splits_are_speaker_disjoint(dev):
    speakers = {s: {D.speaker_of(c.path) for c in dev.index[s]
                    if Path(c.path).parent.name != D.SILENCE_LABEL} for s in D.SPLITS}
    assert not speakers["training"] & speakers["validation"]
    assert not speakers["training"] & speakers["testing"]
    assert not speakers["validation"] & speakers["testing"]


@pytest.mark.real_data
def test_dev_set_info():
    report = D.info(_dev_set(), validation_percentage=11, testing_percentage=1, progress=False)
    assert report["clips"] == 3441
    assert report["words"]["_silence_"]["clips"] == 277
    assert report["words"]["_unknown_"]["clips"] == 275
    # It is the canonical *test* set: at 10/10 every word clip hashes into testing, the
    # _unknown_ ones too once their word prefix is stripped (which shows the stripping recovers
    # the original name). Only the generated _silence_ clips (named 0.wav...) spread out.
    at_ten = D.info(_dev_set(), progress=False)
    for word, w in at_ten["words"].items():
        if word != D.SILENCE_LABEL:
            assert w["splits"]["testing"] == w["clips"], word


def test_start_batch_resumes_the_same_stream(sc):
    n = len(sc.index["training"])
    b = 7 if n % 7 else 9  # batches that straddle epoch boundaries
    full = [x for _, x in zip(range(2 * n // b + 4), sc.dataset(
        "training", batch_size=b, seed=5, features=False, drop_remainder=True))]
    k = n // b + 1  # a batch in the second epoch
    resumed = [x for _, x in zip(range(3), sc.dataset(
        "training", batch_size=b, seed=5, features=False, drop_remainder=True, start_batch=k))]
    for (x1, y1), (x2, y2) in zip(full[k:k + 3], resumed):
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())


def test_decoded_cache_keeps_to_its_limit(tmp_path):
    """Old decoded-audio caches are pruned (least recently used first), the newest is kept."""
    import os

    from kwlesson.pipeline import prune_decoded_cache

    files = []
    for i in range(5):
        f = tmp_path / f"clips-{i:020d}.npz"
        f.write_bytes(b"x" * 400_000)
        os.utime(f, (1_000_000 + i, 1_000_000 + i))
        files.append(f)
    removed = prune_decoded_cache(tmp_path, keep=files[0], limit_mb=1.0)
    # 2.0 MB down to <= 1.0 MB: the oldest files go first, but never the one in use.
    assert files[0].exists()
    assert removed == files[1:4]
    assert sorted(p.name for p in tmp_path.iterdir()) == [files[0].name, files[4].name]


def test_spec_augment_masks_bands_and_stretches_repeatably(sc, settings):
    """SpecAugment is off by default; on, each clip gets bands and stretches set to its mean."""
    plain = sc.dataset("training", settings, batch_size=16, seed=5)
    masked = sc.dataset("training", settings, batch_size=16, seed=5, freq_mask_bins=6,
                        time_mask_frames=15)
    (x0, y0), (x1, y1) = next(iter(plain)), next(iter(masked))
    x0, x1 = x0.numpy(), x1.numpy()
    np.testing.assert_array_equal(y0.numpy(), y1.numpy())  # same clips, same order
    changed = x0 != x1
    assert changed.any()
    for clip, orig, diff in zip(x1, x0, changed):
        if not diff.any():
            continue  # all four widths drawn as 0 for this clip
        # Changed values all equal the clip's mean; whole columns (bins) or rows (frames).
        np.testing.assert_allclose(clip[diff], orig.mean(), rtol=1e-4, atol=1e-4)
        bins = np.flatnonzero(diff.all(axis=0))
        frames = np.flatnonzero(diff.all(axis=1))
        assert np.all(diff == (np.isin(np.arange(diff.shape[1]), bins)[None, :]
                               | np.isin(np.arange(diff.shape[0]), frames)[:, None]))
        assert len(bins) <= 2 * 6 and len(frames) <= 2 * 15
    again = next(iter(sc.dataset("training", settings, batch_size=16, seed=5,
                                 freq_mask_bins=6, time_mask_frames=15)))[0].numpy()
    np.testing.assert_array_equal(x1, again)
    # Evaluation splits are never masked.
    v0 = next(iter(sc.dataset("validation", settings, batch_size=16)))[0].numpy()
    v1 = next(iter(sc.dataset("validation", settings, batch_size=16, freq_mask_bins=6,
                              time_mask_frames=15)))[0].numpy()
    np.testing.assert_array_equal(v0, v1)
    with pytest.raises(ValueError, match="freq_mask_bins must be a whole number >= 0"):
        sc.dataset("training", settings, freq_mask_bins=-1)
