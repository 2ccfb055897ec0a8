"""Population environments: both backends give the same layout and next-step autoreset semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collab.config import ENV_PPO, ConfigError, ppo_config_for
from collab.envpool_backend import ENVPOOL_IDS, ENVPOOL_TESTED, envpool_ids, resolve_backend
from collab.envs import EpisodeLimitError, PopulationEnv, derive_seed
from collab.paper import ENVS as PAPER_ENVS
from collab.spaces import check_env_id, time_limit

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _zeros(env: PopulationEnv) -> torch.Tensor:
    s = env.spec
    return (
        torch.zeros(env.n, env.m, dtype=torch.long) if s.discrete else torch.zeros(env.n, env.m, s.action_dim)
    )


@pytest.mark.parametrize("env_id", sorted(ENVPOOL_TESTED))
def test_backends_same_layout_and_autoreset(env_id):
    """What lets ``backend="auto"`` run an id on envpool: the same spaces, the same default time limit,
    ``max_episode_steps`` honoured at the same step, the same step layout."""
    if resolve_backend(env_id) != "envpool":
        pytest.skip("envpool not installed")
    import envpool
    import gymnasium as gym

    ep_id = ENVPOOL_IDS.get(env_id, env_id)
    ep_spec = envpool.make_spec(ep_id)
    assert ep_spec.config.max_episode_steps == gym.spec(env_id).max_episode_steps == time_limit(env_id)
    ep_env = envpool.make(ep_id, env_type="gymnasium", num_envs=1)
    gym_env = gym.make(env_id)
    assert ep_env.action_space == gym_env.action_space
    g_obs, e_obs = gym_env.observation_space, ep_env.observation_space
    assert (type(g_obs), g_obs.shape, g_obs.dtype) == (type(e_obs), e_obs.shape, e_obs.dtype)
    ep_env.close(), gym_env.close()
    ppo = ppo_config_for(env_id)
    kw = {
        "frame_skip": ppo.frame_skip,
        "frame_stack": ppo.frame_stack,
        "max_episode_steps": 4 * ppo.frame_skip,
    }
    layouts = []
    for backend in ("envpool", "gymnasium"):
        env = PopulationEnv(env_id, 2, 3, seed=1, backend=backend, **kw)
        obs0 = env.reset()
        ends, rows = [], []
        for _ in range(6):
            obs, r, te, tr, ep = env.step(_zeros(env))
            ends.append(bool((te | tr).all()))
            rows.append((tuple(obs.shape), obs.dtype, r.shape, r.dtype, te.dtype, ep.shape))
        env.close()
        layouts.append((tuple(obs0.shape), obs0.dtype, rows, ends))
        # truncated after 4 decisions everywhere (no env of these terminates that fast with zero
        # actions); the 5th step is the reset step
        assert ends == [False, False, False, True, False, False], (backend, ends)
    assert layouts[0] == layouts[1]


@pytest.mark.parametrize("backend", ["envpool", "gymnasium"])
def test_episode_return_counts_every_frame_and_resets(backend):
    if resolve_backend("Acrobot-v1", "auto" if backend == "envpool" else backend) != backend:
        pytest.skip("envpool not installed")
    env = PopulationEnv("Acrobot-v1", 1, 2, seed=0, max_episode_steps=5, backend=backend)
    env.reset()
    got, ended = [], []
    for _ in range(12):
        _, r, te, tr, ep = env.step(_zeros(env))
        got.append(ep[0, 0])
        ended.append(bool(te[0, 0] | tr[0, 0]))
    env.close()
    # -1 per step for 5 steps; step 6 is the reset; the next episode ends at step 11. The ends are
    # the explicit terminated | truncated flags; the return is 0 wherever no episode ended
    assert [i for i, e in enumerate(ended) if e] == [4, 10]
    assert got[4] == -5.0 and got[10] == -5.0
    assert [g for i, g in enumerate(got) if i not in (4, 10)] == [0.0] * 10


def test_frame_skip_sums_rewards_and_keeps_final_obs():
    a = PopulationEnv("Pendulum-v1", 1, 1, seed=3, backend="gymnasium")
    b = PopulationEnv("Pendulum-v1", 1, 1, seed=3, backend="gymnasium", frame_skip=2)
    a.reset(), b.reset()
    act = torch.full((1, 1, 1), 0.5)
    _, r1, *_ = a.step(act)
    oa, r2, *_ = a.step(act)
    ob, rb, *_ = b.step(act)
    assert rb[0, 0] == pytest.approx(r1[0, 0] + r2[0, 0], rel=1e-5)
    assert torch.allclose(oa, ob)


def test_taxi_is_one_hot_and_carracing_is_stacked_gray():
    t = PopulationEnv("Taxi-v4", 1, 2, seed=0)
    obs = t.reset()
    assert obs.shape == (1, 2, 500) and (obs.sum(-1) == 1).all()
    t.close()
    c = PopulationEnv("CarRacing-v3", 1, 1, seed=0, frame_skip=2, frame_stack=2, image_size=64)
    o0 = c.reset()
    assert o0.shape == (1, 1, 2, 64, 64) and o0.dtype == torch.uint8
    assert torch.equal(o0[0, 0, 0], o0[0, 0, 1])  # a fresh episode repeats its first frame
    o1, *_ = c.step(torch.zeros(1, 1, 3))
    assert torch.equal(o1[0, 0, 0], o0[0, 0, 1])  # the stack shifts by one frame
    c.close()


def test_seeds_depend_on_seed_purpose_and_indices_only():
    assert derive_seed(1, "train", 0, 0) == derive_seed(1, "train", 0, 0)
    assert len({derive_seed(1, "train", a, j) for a in range(4) for j in range(4)}) == 16
    assert derive_seed(1, "train", 0, 0) != derive_seed(1, "val", 0, 0) != derive_seed(2, "train", 0, 0)
    v = PopulationEnv("Acrobot-v1", 3, 2, seed=0, purpose="val", shared_seeds=True)
    obs = v.reset()
    assert torch.equal(obs[0], obs[1]) and torch.equal(obs[0], obs[2])  # every agent meets the same episodes
    v.close()


def test_unknown_env_id_and_unsupported_spaces():
    with pytest.raises(ConfigError, match="env_id='Nope-v0' is not allowed"):
        check_env_id("Nope-v0")
    with pytest.raises(ConfigError, match="not Box or Discrete"):
        check_env_id("Blackjack-v1")  # Tuple observation space


def test_importing_envpool_leaves_the_plotting_backend_alone():
    """envpool sets MPLBACKEND=Agg on import; collab restores it (a fresh process: imports are cached)."""
    import os
    import subprocess
    import sys

    code = (
        "import os; from collab import envpool_backend; envpool_backend.envpool_ids(); import matplotlib; "
        "print(os.environ.get('MPLBACKEND'), matplotlib.get_backend())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "MPLCONFIGDIR")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "None"  # a Jupyter kernel started after this keeps its inline backend


def test_without_envpool_falls_back_to_gymnasium_and_says_so_once(monkeypatch):
    import sys

    from collab import envpool_backend as backend

    monkeypatch.setitem(sys.modules, "envpool", None)  # makes `import envpool` raise ImportError
    backend.envpool_ids.cache_clear()
    try:
        with pytest.warns(UserWarning, match="envpool is not installed") as record:
            assert backend.resolve_backend("Acrobot-v1") == "gymnasium"
            assert backend.resolve_backend("LunarLander-v3") == "gymnasium"
        assert len([w for w in record if "envpool" in str(w.message)]) == 1
        with pytest.raises(ConfigError, match="backend='envpool'"):
            backend.resolve_backend("Acrobot-v1", "envpool")
    finally:
        backend.envpool_ids.cache_clear()


def test_envpool_worker_threads_do_not_change_results():
    if envpool_ids() is None:
        pytest.skip("envpool is not installed")
    rng = np.random.default_rng(0)
    actions = [torch.from_numpy(rng.uniform(-1, 1, size=(2, 3, 4)).astype(np.float32)) for _ in range(60)]
    runs = []
    for threads in (1, 2):
        env = PopulationEnv("BipedalWalker-v3", 2, 3, seed=4, backend="envpool", num_threads=threads)
        out = [env.reset()]
        for a in actions:
            obs, r, term, trunc, _ = env.step(a)
            out += [obs, torch.from_numpy(r), torch.from_numpy(term | trunc)]
        env.close()
        runs.append(out)
    assert all(torch.equal(x, y) for x, y in zip(*runs, strict=True))


@pytest.mark.parametrize("env_id", PAPER_ENVS)
def test_envpool_direct_calls_equal_envpool_reset_and_step(env_id):
    """The reset and step that bypass envpool's Python layer return exactly what ``envpool.reset`` and
    ``envpool.step`` return, for a first reset, every step and a reset in the middle of episodes."""
    if resolve_backend(env_id) != "envpool":
        pytest.skip("envpool not installed")
    ppo = ENV_PPO[env_id]
    kw = {
        "frame_skip": ppo.frame_skip,
        "frame_stack": ppo.frame_stack,
        "max_episode_steps": 12 * ppo.frame_skip,
    }
    gen = torch.Generator().manual_seed(3)
    probe = PopulationEnv(env_id, 2, 2, seed=5, backend="envpool", **kw)
    spec = probe.spec
    probe.close()
    if spec.discrete:
        actions = [torch.randint(0, spec.action_dim, (2, 2), generator=gen) for _ in range(30)]
    else:
        actions = [torch.rand(2, 2, spec.action_dim, generator=gen) * 2 - 1 for _ in range(30)]
    runs, ended = [], 0
    for direct in (True, False):
        env = PopulationEnv(env_id, 2, 2, seed=5, backend="envpool", **kw)
        assert env._direct is not None  # every environment of the paper takes the direct path
        if not direct:
            env._direct = None  # envpool's own reset and step
        out = [env.reset()]
        for i, a in enumerate(actions):
            obs, r, te, tr, ep = env.step(a)
            out += [obs, *(torch.from_numpy(x) for x in (r, te, tr, ep))]
            ended += int((te | tr).sum())
            if i == 20:
                out.append(env.reset())  # mid-episode
        env.close()
        runs.append(out)
    assert ended > 0  # the 12-step limit ends episodes: autoresets go through the same path
    for x, y in zip(*runs, strict=True):  # bit for bit
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_envpool_pool_resets_and_steps_without_warnings():
    """A fresh pool's reset and step do not build envpool's Gymnasium spaces, whose float64 Box
    bounds made Gymnasium warn on every new pool (every validation)."""
    if resolve_backend("Pendulum-v1") != "envpool":
        pytest.skip("envpool not installed")
    import warnings

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        env = PopulationEnv("Pendulum-v1", 1, 2, seed=0, backend="envpool")
        env.reset()
        env.step(torch.zeros(1, 2, 1))
        env.close()
    assert [str(w.message) for w in record] == []
    import envpool  # the control: envpool's own reset warns

    pool = envpool.make("Pendulum-v1", env_type="gymnasium", num_envs=1)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        pool.reset()
    pool.close()
    assert any("precision lowered" in str(w.message) for w in record)


def test_envpool_direct_calls_decline_unknown_layouts():
    from collab.envpool_backend import EnvpoolDirect

    assert EnvpoolDirect.of(object()) is None  # not an envpool pool: envpool's own calls are used


def test_for_ppo_builds_the_pool_the_agents_expect():
    taxi = ENV_PPO["Taxi-v4"]
    env = PopulationEnv.for_ppo("Taxi-v4", 2, taxi, seed=1)
    assert (env.n, env.m) == (2, taxi.num_envs) and taxi.mask_actions
    env.reset()
    assert env.action_mask().shape == (2, taxi.num_envs, 6)  # masks on, as mask_actions asks
    env.close()
    car = ENV_PPO["CarRacing-v3"]
    env = PopulationEnv.for_ppo("CarRacing-v3", 1, car, envs_per_agent=3, backend="gymnasium")
    assert env.m == 3 and env.frame_skip == car.frame_skip == 2
    assert env.spec.obs_shape == (car.frame_stack, car.image_size, car.image_size)
    env.close()


def test_auto_backend_runs_envpool_only_for_tested_ids():
    assert "CliffWalking-v1" not in ENVPOOL_TESTED and "MountainCar-v0" not in ENVPOOL_TESTED
    assert resolve_backend("CliffWalking-v1") == "gymnasium"
    assert resolve_backend("MountainCar-v0") == "gymnasium"
    if envpool_ids() is None:
        pytest.skip("envpool is not installed")
    assert resolve_backend("Acrobot-v1") == "envpool"
    assert resolve_backend("MountainCar-v0", "envpool") == "envpool"  # asked for: allowed


def test_time_limit_is_required_and_covers_a_frame_skip():
    assert time_limit("Acrobot-v1") == 500 and time_limit("Acrobot-v1", 20) == 20
    assert time_limit("CliffWalking-v1", 50) == 50
    with pytest.raises(
        ConfigError, match="max_episode_steps=None is not allowed for env_id='CliffWalking-v1'"
    ):
        time_limit("CliffWalking-v1")
    with pytest.raises(ConfigError, match="max_episode_steps=None"):
        PopulationEnv("CliffWalking-v1", 1, 1, seed=0)
    # an episode shorter than a decision would end inside the reset step and never count
    with pytest.raises(ConfigError, match="max_episode_steps=1 is not allowed with frame_skip=2"):
        time_limit("CarRacing-v3", 1, frame_skip=2)


def test_max_episode_steps_holds_on_an_environment_without_time_limit():
    """CliffWalking under random actions: every episode ends by the 50-step limit, cut exactly there."""
    env = PopulationEnv("CliffWalking-v1", 2, 3, seed=0, max_episode_steps=50)
    assert env.backend == "gymnasium" and env.max_decisions == 50
    env.reset()
    gen = torch.Generator().manual_seed(0)
    length = np.zeros(6, dtype=int)
    lengths = []
    was_done = np.zeros(6, dtype=bool)
    for _ in range(400):
        _, _, te, tr, _ = env.step(torch.randint(0, 4, (2, 3), generator=gen))
        te, tr = te.ravel(), tr.ravel()
        length = np.where(was_done, 0, length + 1)  # the step after an end is the reset step
        lengths += [(int(n), bool(t)) for n, t, e in zip(length, tr, te | tr, strict=True) if e]
        was_done = te | tr
    env.close()
    assert len(lengths) >= 6 * (400 // 51)  # an episode plus its reset step: at most 51 steps
    assert all(n <= 50 for n, _ in lengths) and all(n == 50 for n, trunc in lengths if trunc)


def test_backend_ignoring_max_episode_steps_is_stopped_at_the_limit():
    if envpool_ids() is None:
        pytest.skip("envpool is not installed")
    env = PopulationEnv("CliffWalking-v1", 1, 2, seed=0, max_episode_steps=20, backend="envpool")
    env.reset()
    steps = 0
    with pytest.raises(EpisodeLimitError, match=r"envpool backend ran an episode past its time limit of 20"):
        for _ in range(1000):
            steps += 1
            env.step(torch.zeros(1, 2, dtype=torch.long))  # up, at the start: never ends on its own
    env.close()
    assert steps == 21  # stopped at the first step past the limit


def test_nan_actions_reach_the_simulator_as_a_valid_action():
    """A diverged policy's NaN actions must not crash the simulator before the trainer reports them
    (Gymnasium's Box2D asserts on NaN); they are sent as the action space's lower bound."""
    env = PopulationEnv("BipedalWalker-v3", 1, 2, seed=0, backend="gymnasium")
    env.reset()
    nan = torch.full((1, 2, 4), float("nan"))
    assert (env._to_env_actions(nan) == np.float32(-1.0)).all()
    for _ in range(3):
        obs, r, *_ = env.step(nan)
    assert torch.isfinite(obs).all() and np.isfinite(r).all()
    env.close()
