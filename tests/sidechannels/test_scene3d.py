import math

import numpy as np
import torch

from pave.sidechannels import get_encoder
from pave.sidechannels.scene3d import backproject, fourier_embedding, patch_points
from scan_files import write_scan


def rotation(axis: int, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    i, j = [a for a in range(3) if a != axis]
    r = torch.eye(3, dtype=torch.float64)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def camera(angle=0.3, position=(1.0, -2.0, 0.5)):
    """A pinhole camera (non-square pixels, off-centre principal point), tilted and turned."""
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = rotation(2, angle) @ rotation(0, -1.2)
    pose[:3, 3] = torch.tensor(position, dtype=torch.float64)
    K = torch.tensor([[50.0, 0, 31.5], [0, 40.0, 23.5], [0, 0, 1]], dtype=torch.float64)
    return K, pose


def test_backprojection_recovers_known_world_points():
    K, pose = camera()
    h, w = 48, 64
    rng = np.random.default_rng(0)
    pixels = [(int(rng.integers(h)), int(rng.integers(w))) for _ in range(20)]
    depths = rng.uniform(0.5, 6.0, len(pixels))
    # World points seen at those pixels and depths, computed by projecting forward.
    depth = torch.zeros(h, w, dtype=torch.float64)
    expected = []
    for (v, u), z in zip(pixels, depths, strict=True):
        cam = torch.tensor([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], dtype=torch.float64)
        world = pose[:3, :3] @ cam + pose[:3, 3]
        # Check by projecting the world point back into the camera: it lands on (u, v) at depth z.
        back = pose[:3, :3].T @ (world - pose[:3, 3])
        assert torch.allclose(K @ back / back[2], torch.tensor([u, v, 1.0], dtype=torch.float64))
        depth[v, u] = z
        expected.append(world)
    points = backproject(depth, K, pose)
    got = torch.stack([points[v, u] for v, u in pixels])
    torch.testing.assert_close(got, torch.stack(expected))
    assert torch.isnan(points[depth == 0]).all()


def test_backprojection_batched_matches_single():
    K, pose_a = camera(0.1, (0, 0, 0))
    _, pose_b = camera(-1.0, (3, 1, 2))
    depth = torch.rand(2, 6, 8, dtype=torch.float64) + 0.5
    batched = backproject(depth, K, torch.stack([pose_a, pose_b]))
    torch.testing.assert_close(batched[1], backproject(depth[1], K, pose_b))


def test_patch_points_average_valid_pixels():
    points = torch.arange(4 * 4 * 3, dtype=torch.float64).view(1, 4, 4, 3)
    points[0, :2, :2] = float("nan")  # top-left cell: no depth at all
    points[0, 2, 2] = float("nan")  # bottom-right cell: one hole
    cells = patch_points(points, (2, 2))
    assert cells.shape == (1, 2, 2, 3)
    assert torch.isnan(cells[0, 0, 0]).all()
    valid = points[0, 2:, 2:].reshape(-1, 3)
    torch.testing.assert_close(cells[0, 1, 1], valid[torch.isfinite(valid).all(1)].mean(0))


def test_fourier_embedding():
    emb = fourier_embedding(torch.tensor([[0.0, 0.0, 0.0], [float("nan")] * 3]), num_freqs=4)
    assert emb.shape == (2, 24)
    assert emb[0].abs().sum() == 12  # sin 0 = 0, cos 0 = 1
    assert torch.equal(emb[1], torch.zeros(24))


def test_scene3d_encoder_on_tiny_model(tiny_model_dir, tmp_path):
    t, size = 5, (24, 32)
    poses = np.tile(np.eye(4), (t, 1, 1))
    poses[:, 0, 3] = np.arange(t)
    colors = np.random.default_rng(0).integers(0, 256, (t, *size, 3), dtype=np.uint8)
    depths = np.full((t, *size), 2.0)
    depths[:, :6, :8] = 0  # a hole covering whole patches
    scan = write_scan(tmp_path / "scene0000_00", colors, depths, poses, np.diag([20.0, 20.0, 1.0]))
    encoder = get_encoder("3d", model=str(tiny_model_dir), num_frames=4)
    channel = encoder.encode(scan)
    # The tiny tower sees 32 px as an 8x8 grid of 4-px patches; 32 features + 96 position dims.
    assert channel.tokens.shape == (4, 8, 8, encoder.dim) and encoder.dim == 32 + 96
    assert channel.kind == "3d" and torch.isfinite(channel.tokens).all()
    torch.testing.assert_close(channel.timestamps, torch.tensor([0, 1, 2, 4]) / 30.0)
    position = channel.tokens[..., 32:]
    assert torch.equal(position[:, 0, 0], torch.zeros(4, 96))  # no depth under the top-left patches
    assert not torch.equal(position[0, -1, -1], position[1, -1, -1])  # the camera moved
