"""The nearest-neighbour reference: distances against a brute-force computation, the memory bank through a run."""
import torch

from rdlib.data import load_split
from rdlib.methods import create_method
from rdlib.runs import RunSpec, get_or_train, load_run


def test_nearest_distance_equals_brute_force():
    m = create_method("patch_knn", image_size=32, weights="random").model
    m.memory = torch.randn(50, m.memory.shape[1])
    m.chunk = 7                                                     # several blocks
    p = torch.randn(2, m.memory.shape[1], 3, 4)
    ours = m.nearest_distance(p)
    q = p.permute(0, 2, 3, 1).reshape(-1, p.shape[1])
    brute = torch.stack([min(torch.linalg.vector_norm(v - mem) for mem in m.memory) for v in q]).view(2, 1, 3, 4)
    assert torch.allclose(ours, brute, atol=1e-4)


def test_memorised_images_score_zero_and_the_bank_survives_a_reload(tiny_benchmark, tmp_path):
    run = get_or_train(RunSpec.from_profile("patch_knn", "ci", str(tiny_benchmark), "brick", {"coreset": 1.0}), tmp_path,
                       progress=False)
    method = run.load_method()
    train = load_split(tiny_benchmark, "brick", "train", 64)
    n_patches = len(train) * method.model.patches(train[0]["image"][None]).shape[-1] ** 2
    assert method.model.memory.shape[0] == n_patches
    _, score = method.predict(torch.stack([train[i]["image"] for i in range(2)]))
    assert torch.allclose(score, torch.zeros(2), atol=1e-3)         # a training image is its own nearest neighbour
    test = load_split(tiny_benchmark, "brick", "test", 64)
    _, s_test = method.predict(torch.stack([test[i]["image"] for i in range(len(test))]))
    assert (s_test > 1e-2).all()
    again = load_run(run.dir).load_method()
    thin = get_or_train(RunSpec.from_profile("patch_knn", "ci", str(tiny_benchmark), "brick"), tmp_path, progress=False)
    assert thin.load_method().model.memory.shape[0] == round(0.5 * n_patches)
    assert torch.equal(again.predict(test[0]["image"][None])[1], method.predict(test[0]["image"][None])[1])


def test_greedy_coreset_against_a_plain_loop_and_its_covering_radius():
    from rdlib.methods.patchknn.model import greedy_coreset

    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(1))
    idx = greedy_coreset(x, 10, projection_dim=128, seed=3)          # 5 dims: no projection
    start = int(torch.randint(60, (1,), generator=torch.Generator().manual_seed(3)))
    ref = [start]
    while len(ref) < 10:                                              # the definition, written out
        far = max(range(60), key=lambda i: min(float(torch.linalg.vector_norm(x[i] - x[j])) for j in ref))
        ref.append(far)
    assert idx.tolist() == ref
    radius = lambda sel: torch.cdist(x, x[sel]).amin(1).max()         # noqa: E731
    assert radius(greedy_coreset(x, 20, seed=3)) <= radius(idx) and len(set(idx.tolist())) == 10
    assert greedy_coreset(x, 100).tolist() == list(range(60))
