"""Modal simulation of pokes (addon/core/modal.py): exact stepping, projection, superposition, units, errors."""
import math

import numpy as np
import pytest

from addon.core import modal, spectral

K, H, W = 16, 20, 32
FPS = 24.0


@pytest.fixture(scope="module")
def volume():
    """A smooth random spectral volume, amplitude falling with frequency, defaults f_k = k * 0.2 Hz."""
    rng = np.random.default_rng(7)
    low = rng.normal(size=(K, 4, 5, 8))
    coeffs = spectral.resize_bilinear(low, H, W) * (3.0 / (1.0 + np.arange(K)))[:, None, None, None]
    return coeffs.astype(np.float32), spectral.frequencies(K, 30.0, 150).astype(np.float64)


def pokes_example():
    return [modal.Poke(4, 10.3, 7.7, 6.0, -2.0), modal.Poke(9.25, 20.0, 12.5, -1.5, 3.0, "impulse"),
            modal.Poke(15, 5.0, 16.0, 0.0, 4.0)]


def expm(a):
    """Matrix exponential by scaling and squaring of a Taylor series (test reference, independent of modal.py)."""
    s = max(0, int(math.ceil(math.log2(max(np.abs(a).sum(axis=-1).max(), 1e-300)))) + 1)
    b = a / 2.0 ** s
    out = np.eye(2) + 0 * b
    term = np.eye(2) + 0 * b
    for n in range(1, 25):
        term = term @ b / n
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


def rk4_state(omega, gamma, state, seconds, substeps):
    """Integrate q'' + gamma q' + omega^2 q = 0 for ``seconds`` with classic RK4, state (K, 2) complex."""
    h = seconds / substeps
    q, v = state[:, 0].copy(), state[:, 1].copy()

    def f(q, v):
        return v, -gamma * v - omega ** 2 * q

    for _ in range(substeps):
        k1 = f(q, v)
        k2 = f(q + 0.5 * h * k1[0], v + 0.5 * h * k1[1])
        k3 = f(q + 0.5 * h * k2[0], v + 0.5 * h * k2[1])
        k4 = f(q + h * k3[0], v + h * k3[1])
        q = q + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        v = v + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return np.stack([q, v], axis=1)


# ---------------------------------------------------------------------------------------------------------------
# The exact transition matrix
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("omega,gamma", [(18.85, 28.83), (5.0, 10.0), (2.0, 40.0), (3.0, 0.0), (0.0, 0.4),
                                         (0.0, 0.0), (1e3, 1e5)])
@pytest.mark.parametrize("t", [0.0, 1 / 120, 1 / 24, 1 / 12, 0.7])
def test_transition_is_matrix_exponential(omega, gamma, t):
    """Under- (18.85, 28.83), critically (5, 10) and over-damped (2, 40), undamped, free and very stiff bands."""
    m = np.array([[0.0, 1.0], [-omega ** 2, -gamma]])
    expected = expm(m * t)
    got = modal.transition(omega, gamma, t)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(expected).max()))


def test_transition_is_continuous_across_critical_damping():
    omega = 5.0
    t = 1 / 24
    crit = modal.transition(omega, 2 * omega, t)
    for eps in (1e-9, 1e-6):
        np.testing.assert_allclose(modal.transition(omega, 2 * omega * (1 + eps), t), crit, atol=1e-6)
        np.testing.assert_allclose(modal.transition(omega, 2 * omega * (1 - eps), t), crit, atol=1e-6)


def test_transition_composes_and_starts_at_identity():
    omega, gamma = modal.band_constants(np.arange(K) * 0.2, modal.ModalParams(speed=2.0))
    np.testing.assert_array_equal(modal.transition(omega, gamma, 0.0), np.broadcast_to(np.eye(2), (K, 2, 2)))
    a, b = 0.013, 0.071
    np.testing.assert_allclose(modal.transition(omega, gamma, a) @ modal.transition(omega, gamma, b),
                               modal.transition(omega, gamma, a + b), atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Acceptance tests of the issue
# ---------------------------------------------------------------------------------------------------------------

def test_response_is_linear_in_force_and_pokes_superpose(volume):
    coeffs, freqs = volume
    pokes = pokes_example()
    both = modal.simulate(coeffs, freqs, pokes, 120, FPS)
    parts = sum(modal.simulate(coeffs, freqs, [p], 120, FPS) for p in pokes)
    np.testing.assert_allclose(both, parts, rtol=0, atol=1e-10)
    assert np.abs(both).max() > 0.1
    for scale in (2.5, -1.0, 0.1):
        scaled = [modal.Poke(p.frame, p.x, p.y, scale * p.force_x, scale * p.force_y, p.kind) for p in pokes]
        np.testing.assert_allclose(modal.simulate(coeffs, freqs, scaled, 120, FPS), scale * both, rtol=0,
                                   atol=1e-10)
    twice = modal.simulate(coeffs, freqs, pokes, 120, FPS, modal.ModalParams(strength=2.0))
    np.testing.assert_allclose(twice, 2.0 * both, rtol=0, atol=1e-10)
    assert not modal.simulate(coeffs, freqs, [modal.Poke(3, 10, 10, 0, 0)], 20, FPS).any()


@pytest.mark.parametrize("kind", modal.KINDS)
@pytest.mark.parametrize("speed", [1.0, 3.0])
def test_energy_of_free_response_decays_monotonically(volume, kind, speed):
    coeffs, freqs = volume
    params = modal.ModalParams(speed=speed)
    q, qdot = modal.simulate_state(coeffs, freqs, [modal.Poke(0, 12, 9, 4.0, 3.0, kind)], 240, FPS, params)
    omega, _ = modal.band_constants(freqs, params)
    energy = modal.modal_energy(q, qdot, omega)  # (N, K)
    assert energy[0, 1:].min() > 0
    assert np.all(np.diff(energy, axis=0) <= 1e-12 * energy[0]), "a band gained energy"
    total = energy.sum(axis=1)
    assert np.all(np.diff(total) < 0)
    assert total[-1] < 1e-3 * total[0]  # the default damping brings the scene to rest within 10 s


@pytest.mark.parametrize("fps", [12.0, 24.0, 60.0, 120.0])
@pytest.mark.parametrize("params", [modal.ModalParams(), modal.ModalParams(speed=4.0),
                                    modal.ModalParams(alpha=0.0, beta=0.0), modal.ModalParams(speed=0.25)],
                         ids=["default", "stiff", "undamped", "slow"])
def test_no_band_diverges_over_a_minute(volume, fps, params):
    coeffs, freqs = volume
    frames = int(60 * fps)
    pokes = [modal.Poke(0, 12, 9, 4.0, 3.0), modal.Poke(0, 25, 4, -2.0, 1.0, "impulse")]
    q, qdot = modal.simulate_state(coeffs, freqs, pokes, frames, fps, params)
    omega, _ = modal.band_constants(freqs, params)
    energy = modal.modal_energy(q, qdot, omega)
    assert np.all(np.isfinite(energy))
    assert np.all(energy <= energy[0] * (1 + 1e-9) + 1e-300)
    if params.alpha == 0 and params.beta == 0:  # exact stepping conserves energy without damping
        np.testing.assert_allclose(energy[-1], energy[0], rtol=1e-9)


def test_poke_changes_nothing_before_its_frame(volume):
    coeffs, freqs = volume
    base = [modal.Poke(4, 10.3, 7.7, 6.0, -2.0)]
    q0 = modal.simulate(coeffs, freqs, base, 60, FPS)
    assert not q0[:4].any() and q0[4].any()
    for frame, first in ((30, 30), (30.4, 31), (29.99, 30)):
        late = modal.Poke(frame, 20, 12, 3.0, 1.0, "impulse")
        q1 = modal.simulate(coeffs, freqs, base + [late], 60, FPS)
        np.testing.assert_array_equal(q1[:first], q0[:first])
        assert np.abs(q1[first + 1] - q0[first + 1]).max() > 1e-3  # an impulse moves q from the next frame on
    assert not modal.simulate(coeffs, freqs, [modal.Poke(60, 10, 10, 5, 0)], 60, FPS).any()  # after the range


def test_fractional_poke_is_propagated_exactly_to_the_next_frame(volume):
    coeffs, freqs = volume
    fine = modal.simulate(coeffs, freqs, [modal.Poke(10, 14, 6, 3.0, 2.0)], 2 * 40, 2 * FPS)  # frame 5 @ 24 fps
    coarse = modal.simulate(coeffs, freqs, [modal.Poke(4.5, 14, 6, 3.0, 2.0)], 40, FPS)
    np.testing.assert_allclose(coarse, fine[1::2], atol=1e-12)


def test_frame_start_shifts_the_window_and_keeps_earlier_pokes(volume):
    coeffs, freqs = volume
    pokes = pokes_example()
    full = modal.simulate(coeffs, freqs, pokes, 100, FPS)
    tail = modal.simulate(coeffs, freqs, pokes, 90, FPS, frame_start=10)
    np.testing.assert_allclose(tail, full[10:], atol=1e-12)
    shifted = [modal.Poke(p.frame + 1000, p.x, p.y, p.force_x, p.force_y, p.kind) for p in pokes]
    np.testing.assert_allclose(modal.simulate(coeffs, freqs, shifted, 100, FPS, frame_start=1000), full,
                               atol=1e-12)


@pytest.mark.parametrize("kind", modal.KINDS)
def test_dominant_frequency_is_the_strongest_band(kind):
    """A pixel whose motion is mostly band 3 (0.6 Hz) rings at 0.6 Hz after a poke (light damping, 40 s)."""
    amps = np.full(K, 0.3)
    amps[0] = 0.0
    amps[3] = 2.0
    coeffs = np.zeros((K, 4, 4, 4), dtype=np.float32)
    coeffs[:, 0] = amps[:, None, None] * 0.8
    coeffs[:, 1] = amps[:, None, None] * 0.6  # a phase per band must not matter
    coeffs[:, 2] = amps[:, None, None] * 0.3
    freqs = np.arange(K) * 0.2
    fps, seconds = 30.0, 40
    params = modal.ModalParams(alpha=0.02, beta=0.0005)
    q = modal.simulate(coeffs, freqs, [modal.Poke(0, 2, 2, 5.0, 1.0, kind)], fps * seconds, fps, params)
    x = modal.response_at(coeffs, q, 2, 2)[:, 0]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    peak = np.fft.rfftfreq(8 * len(x), 1 / fps)[spectrum.argmax()]
    assert abs(peak - 0.6) < 0.5 / seconds


def test_drag_and_release_starts_every_band_at_its_extreme(volume):
    coeffs, freqs = volume
    x, y, d = 12.0, 9.0, np.array([4.0, 3.0])
    f0 = 6
    q, qdot = modal.simulate_state(coeffs, freqs, [modal.Poke(f0, x, y, *d)], 200, FPS)
    assert not qdot[f0].any()  # released at rest
    assert np.abs(q[f0, 1:]).min() > 0
    mag = np.abs(q)
    assert np.all(mag[f0:] <= mag[f0] * (1 + 1e-12))  # |q_k| is largest at the poke frame
    # Band k's displacement of the poked pixel along d is at its peak at the poke frame: the projection has phase 0.
    basis = modal.modal_basis_at(coeffs, x, y)
    d_hat = d / np.linalg.norm(d)
    along = np.real((basis @ d_hat)[None, :] * q)  # (N, K)
    np.testing.assert_allclose(along[f0, 1:], np.abs(basis[1:] @ d_hat) * mag[f0, 1:], rtol=1e-12)
    assert np.all(np.abs(along[f0:]) <= along[f0] * (1 + 1e-12) + 1e-15)
    # Units: the poked pixel is displaced by exactly d along d at the release (a normal pixel, above the floor).
    disp = modal.response_at(coeffs, q, x, y)
    np.testing.assert_allclose(disp[f0] @ d_hat, np.linalg.norm(d), rtol=1e-12)
    # The paper's phase: q_k = |d_hat . A_k| |d| exp(-i arg(d_hat . A_k)) / N for one positive N.
    paper = np.abs(basis[1:] @ d_hat) * np.linalg.norm(d) * np.exp(-1j * np.angle(basis[1:] @ d_hat))
    ratio = q[f0, 1:] / paper
    np.testing.assert_allclose(ratio.imag, 0, atol=1e-12)
    np.testing.assert_allclose(ratio.real, ratio.real[0], rtol=1e-12)


def test_impulse_starts_at_rest_position_and_moves_along_the_force(volume):
    coeffs, freqs = volume
    x, y, d = 12.0, 9.0, np.array([4.0, 3.0])
    q, qdot = modal.simulate_state(coeffs, freqs, [modal.Poke(0, x, y, *d, kind="impulse")], 48, FPS)
    omega, _ = modal.band_constants(freqs, modal.ModalParams())
    assert not q[0].any()
    drag = modal.simulate(coeffs, freqs, [modal.Poke(0, x, y, *d)], 1, FPS)
    np.testing.assert_allclose(qdot[0], omega * drag[0], rtol=1e-12)
    along = modal.response_at(coeffs, q, x, y) @ (d / np.linalg.norm(d))
    assert along[1] > 0 and 0.3 * np.linalg.norm(d) < along.max() < 1.5 * np.linalg.norm(d)


def test_weak_pixels_are_limited_by_the_floor(volume):
    coeffs, freqs = volume
    coeffs = coeffs.copy()
    coeffs[:, :, 10:, 16:] *= 1e-4  # an almost static corner
    params = modal.ModalParams(floor=0.5)
    q = modal.simulate(coeffs, freqs, [modal.Poke(0, 25, 15, 5.0, 0.0)], 1, FPS, params)
    ref = modal.reference_amplitude(coeffs)
    assert np.linalg.norm(q[0]) <= 5.0 / (params.floor * ref) * (1 + 1e-9)
    disp = np.real(np.einsum("k,kchw->chw", q[0], spectral.to_complex(coeffs).astype(np.complex128)))
    assert np.abs(modal.response_at(coeffs, q, 25, 15)).max() < 1e-3  # the static pixel itself hardly moves
    amp = np.sqrt((np.abs(spectral.to_complex(coeffs[1:])) ** 2).sum(axis=(0, 1)))
    assert np.all(np.linalg.norm(disp, axis=0)[amp <= ref] <= 5.0 / params.floor * (1 + 1e-6))


def test_exact_stepper_agrees_with_fine_rk4(volume):
    coeffs, freqs = volume
    pokes = [modal.Poke(0, 12, 9, 4.0, 3.0), modal.Poke(5.3, 25, 4, -2.0, 1.0, "impulse")]
    frames, sub = 48, 64
    q, qdot = modal.simulate_state(coeffs, freqs, pokes, frames, FPS)
    params = modal.ModalParams()
    omega, gamma = modal.band_constants(freqs, params)
    ref = modal.reference_amplitude(coeffs)
    expected = np.zeros((frames, K), dtype=np.complex128)
    for p in pokes:
        state = modal.poke_state(modal.modal_basis_at(coeffs, p.x, p.y), omega, p, params, ref)
        row = math.ceil(p.frame)
        state = rk4_state(omega, gamma, state, (row - p.frame) / FPS, sub)
        for n in range(row, frames):
            if n > row:
                state = rk4_state(omega, gamma, state, 1 / FPS, sub)
            expected[n] += state[:, 0]
    np.testing.assert_allclose(q, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_undamped_free_band_is_the_loop(volume):
    """Same convention as the loop: starting from q = 1, q' = i omega and no damping gives exp(2 pi i f t)."""
    coeffs, freqs = volume
    omega, gamma = modal.band_constants(freqs, modal.ModalParams(alpha=0.0, beta=0.0))
    kicks = np.zeros((150, K, 2), dtype=np.complex128)
    q, _ = modal.step_frames(omega, gamma, 1 / 30.0, kicks, initial=np.stack([np.ones(K), 1j * omega], axis=1))
    t = np.arange(150) / 30.0
    np.testing.assert_allclose(q[:, 1:], np.exp(2j * np.pi * np.outer(t, freqs[1:])), atol=1e-11)
    loop = spectral.displacement_at(coeffs, freqs, t)[:, :, 9, 12]  # pixel centre (12.5, 9.5), includes A_0
    np.testing.assert_allclose(modal.response_at(coeffs, q, 12.5, 9.5), loop, atol=1e-4)  # q_0 stays 1


def test_key_values_rebuild_the_displacement(volume):
    coeffs, freqs = volume
    q = modal.simulate(coeffs, freqs, pokes_example(), 40, FPS)
    values = modal.key_values(q)
    assert values.shape == (40, 2 * K) and values.dtype == np.float32
    a = spectral.to_complex(coeffs).astype(np.complex128)[:, :, 9, 12]  # (K, 2)
    offsets = np.stack([a.real, a.imag], axis=1).reshape(2 * K, 2)  # key pair k: offsets (Re A_k, Im A_k)
    np.testing.assert_allclose(values @ offsets, modal.response_at(coeffs, q, 12.5, 9.5), atol=1e-5)


def test_key_values_follow_the_addons_sign_convention(volume):
    mesh = pytest.importorskip("addon.core.mesh")
    if not hasattr(mesh, "modal_key_values"):
        pytest.skip("addon.core.mesh.modal_key_values not available")
    coeffs, freqs = volume
    q = modal.simulate(coeffs, freqs, pokes_example(), 40, FPS)
    value_re, value_im = mesh.modal_key_values(q.T)  # (K, F) each
    values = modal.key_values(q)
    np.testing.assert_allclose(values[:, 0::2], value_re.T, atol=1e-6)
    np.testing.assert_allclose(values[:, 1::2], value_im.T, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------

def test_bad_input_raises_clear_value_errors(volume):
    coeffs, freqs = volume
    ok = [modal.Poke(0, 5, 5, 1, 0)]
    with pytest.raises(ValueError, match="unknown poke kind 'shove'.*'drag', 'impulse'"):
        modal.Poke(0, 5, 5, 1, 0, kind="shove")
    with pytest.raises(ValueError, match="poke force_x must be a finite number"):
        modal.Poke(0, 5, 5, float("nan"), 0)
    with pytest.raises(ValueError, match=r"shape \(K, 4, H, W\)"):
        modal.simulate(coeffs[:, :2], freqs, ok, 10, FPS)
    with pytest.raises(ValueError, match=r"shape \(K, 4, H, W\)"):
        modal.simulate(coeffs[0], freqs, ok, 10, FPS)
    with pytest.raises(ValueError, match="floating-point"):
        modal.simulate(coeffs.astype(np.int32), freqs, ok, 10, FPS)
    with pytest.raises(ValueError, match=r"one frequency per band, shape \(16,\)"):
        modal.simulate(coeffs, freqs[:4], ok, 10, FPS)
    for fps in (0, -24, float("inf")):
        with pytest.raises(ValueError, match="fps must be"):
            modal.simulate(coeffs, freqs, ok, 10, fps)
    for n in (0, 2.5, -3):
        with pytest.raises(ValueError, match="num_frames must be a positive whole number"):
            modal.simulate(coeffs, freqs, ok, n, FPS)
    with pytest.raises(ValueError, match="outside the 32x20 motion map"):
        modal.simulate(coeffs, freqs, [modal.Poke(0, 40, 5, 1, 0)], 10, FPS)
    with pytest.raises(ValueError, match="damping must not be negative"):
        modal.ModalParams(alpha=-0.1)
    with pytest.raises(ValueError, match="speed must be positive"):
        modal.ModalParams(speed=0)
    with pytest.raises(ValueError, match="pokes must be Poke objects"):
        modal.simulate(coeffs, freqs, [(0, 5, 5, 1, 0)], 10, FPS)
    with pytest.raises(ValueError, match=r"q must have shape \(num_frames, 16\)"):
        modal.response_at(coeffs, np.zeros((5, 3)), 5, 5)
