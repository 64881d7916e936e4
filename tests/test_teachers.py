import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rdlib.models import TeacherWeightsError, create_classifier, create_teacher

SHAPES = {  # channels at strides 4, 8, 16 for a 64×64 input
    "efficientnet_lite0": [24, 40, 112],
    "resnet18": [64, 128, 256],
    "resnet50": [256, 512, 1024],
    "wide_resnet50_2": [256, 512, 1024],
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_feature_shapes(name):
    t = create_teacher(name, weights="random")
    feats = t(torch.rand(2, 3, 64, 64))
    assert [f.shape[1] for f in feats] == SHAPES[name] == t.channels
    assert [tuple(f.shape[2:]) for f in feats] == [(16, 16), (8, 8), (4, 4)]
    assert t.reductions == [4, 8, 16]


def test_frozen_teacher_stays_in_eval_without_grad():
    t = create_teacher("efficientnet_lite0")
    t.train()
    assert not t.training and not any(p.requires_grad for p in t.parameters())


def test_lite0_imagenet_weights_classify_bundled_photos():
    import skimage.data

    model = create_classifier("efficientnet_lite0")
    for name, classes in (("chelsea", range(281, 286)), ("coffee", (967, 968))):   # cats; espresso / cup
        x = torch.tensor(getattr(skimage.data, name)() / 255.0, dtype=torch.float32).permute(2, 0, 1)[None]
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        with torch.no_grad():
            top = model((x - 0.5) / 0.5).argmax(1).item()
        assert top in classes, (name, top)


def test_lite0_features_match_the_classifier_trunk():
    """The features_only teacher carries the same weights as the classifier (not a random init)."""
    t = create_teacher("efficientnet_lite0")
    clf = create_classifier("efficientnet_lite0")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = clf.bn1(clf.conv_stem((x - 0.5) / 0.5))
        ref = clf.blocks[1](clf.blocks[0](ref))
        assert torch.allclose(t(x)[0], ref, atol=1e-5)


def test_missing_resnet_weights_give_actionable_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RDLIB_OFFLINE", "1")
    monkeypatch.setenv("RDLIB_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(TeacherWeightsError) as e:
        create_teacher("resnet18")
    msg = str(e.value)
    assert "resnet18-f37072fd.pth" in msg and "RDLIB_WEIGHTS_DIR" in msg and "weights='random'" in msg


def test_local_weights_file_is_loaded(tmp_path):
    src = create_teacher("resnet18", weights="random")
    path = tmp_path / "r18.pth"
    torch.save(src.body.state_dict(), path)
    loaded = create_teacher("resnet18", weights=path)
    x = torch.rand(1, 3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(src(x), loaded(x)))
    with pytest.raises(TeacherWeightsError, match="not found"):
        create_teacher("resnet18", weights=tmp_path / "missing.pth")


def test_unknown_teacher():
    with pytest.raises(ValueError, match="unknown teacher"):
        create_teacher("vgg16")
