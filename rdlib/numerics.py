"""Numerical constants shared by the PyTorch code and the Triton kernels (imported by both, depends on nothing)."""

EPS = 1e-8          # cosine denominator clamp: cos = ⟨t, s⟩ / max(‖t‖·‖s‖, EPS); a zero vector gives cos 0, distance 1
