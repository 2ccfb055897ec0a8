"""Population PPO: n agents' learning state as tensors with a leading agent axis, one update for all.

An agent is everything indexed by ``a`` along the first axis of :meth:`PopulationPPO.state_tensors`:
network parameters, Adam moments and step counts, observation and return normalisation statistics.
Copying ``t[j] <- t[i]`` for all of them is a complete share (paper eq. 2, :mod:`collab.sharing`).
Environments, random generators and episode counters are not agent state and are never copied.

PPO follows CleanRL (``ppo.py``, ``ppo_continuous_action.py``): GAE, clipped surrogate, value loss
``0.5 * (V - R)^2``, entropy bonus, per-minibatch advantage normalisation, Adam (eps 1e-5) and
gradient-norm clipping, all *per agent*: each agent normalises its own advantages and clips its own
gradient norm, so agents never influence each other without sharing.

Non-finite values stop training with a :class:`NonFiniteError` instead of spreading: after every
rollout a few whole-tensor checks cover the observations, rewards and the policy's outputs, and
after every update one ``torch.isfinite(flat).all()`` covers every agent's parameters; only when a
check fails are the agents and the first non-finite quantity looked up (the costs:
``benchmarks/README.md``).
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from collab.config import PPOConfig
from collab.envs import EnvSpec, EpisodeLimitError, PopulationEnv
from collab.networks import PopulationActorCritic, log_prob_entropy, sample_action

#: Logit given to illegal actions with ``mask_actions`` (as sb3-contrib's MaskablePPO): their
#: probability underflows to exactly 0, and 0 * log p stays finite in the entropy.
MASKED_LOGIT = -1e8

# Gradients are views into one flat [n, P] buffer (see flatten_parameters): strided, not dense, so
# autograd warns that they do not obey its layout contract. It still accumulates into them in place
# (tested in tests/test_ppo.py); the warning is about a possible slowdown only.
warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")


class NonFiniteError(RuntimeError):
    """Training or an environment produced NaN or infinity: the run stops here (and writes nothing).

    ``source``: ``"training"`` (the agents diverged: their loss, gradient norm, parameters or
    policy outputs became non-finite) or ``"environment"`` (the environment returned non-finite
    observations or rewards while the agents' parameters and actions were finite). ``agents``: the
    agents concerned; ``what``: the quantities that went non-finite, first in time first.
    :func:`collab.run_experiment` adds where it happened (:attr:`context`: environment, phase,
    round, training episodes per agent, out_dir) before the error leaves it.
    """

    def __init__(self, source: str, agents: Sequence[int], what: Sequence[str], settings: str = "") -> None:
        super().__init__(source, list(agents), list(what))
        self.source = source
        self.agents = [int(a) for a in agents]
        self.what = list(what)
        self.settings = settings
        self.context: dict[str, Any] = {}

    def add_context(self, **context: Any) -> NonFiniteError:
        """Record where the error happened (keys already set are kept); returns self."""
        for key, value in context.items():
            self.context.setdefault(key, value)
        return self

    def _where(self) -> str:
        c = self.context
        out = f" on {c['env_id']}" if "env_id" in c else ""
        phase = c.get("phase", "training")
        if phase == "final evaluation":
            out += " in the final evaluation of the selected policy"
        elif phase in ("training", "validation") and "round" in c:
            out += f" in {'the validation of ' if phase == 'validation' else ''}round {c['round']}"
        elif phase not in ("training", "validation"):
            out += f" in the {phase}"
        if "episodes" in c:
            eps = [int(e) for e in c["episodes"]]
            out += f" after {sum(eps)} training episodes"
            out += f" ({', '.join(map(str, eps))} per agent)" if len(eps) > 1 else ""
        return out

    def __str__(self) -> str:
        who = ("agent " if len(self.agents) == 1 else "agents ") + ", ".join(map(str, self.agents))
        what = ", ".join(self.what)
        if self.source == "environment":
            msg = (
                f"the environment returned non-finite (NaN or inf) {what} to {who}{self._where()}, while "
                "the agents' parameters and actions were finite: the environment (or a wrapper around it) "
                "is at fault, not training; check what its reset() and step() return"
            )
        else:
            settings = f" (now {self.settings})" if self.settings else ""
            msg = (
                f"training diverged: {what} became non-finite (NaN or inf) for {who}{self._where()}. "
                "Lower the learning rate, clip gradients harder (a smaller max_grad_norm) or normalise "
                f"observations and rewards (norm_obs, norm_reward){settings}"
            )
        if "out_dir" in self.context:
            msg += f"; nothing was written to {self.context['out_dir']}"
        return msg + "."


def _first_true(bad: np.ndarray, never: int) -> np.ndarray:
    """Per column of ``bad`` [T, n]: the first row that is True, else ``never``."""
    return np.where(bad.any(0), bad.argmax(0), never)


def _bad_per_agent(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[T, n, ...]`` -> bool ``[T, n]``: where a step of an agent holds a non-finite value."""
    x = torch.as_tensor(x).detach().cpu()
    return (~torch.isfinite(x.reshape(x.shape[0], x.shape[1], -1))).any(-1).numpy()


def cpp_compiler() -> str | None:
    """The C++ compiler ``torch.compile`` (inductor) would build CPU kernels with, or None if none works."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler  # private: fall back if it moves
    except ImportError:
        return shutil.which(os.environ.get("CXX", "g++"))
    try:
        return get_cpp_compiler()
    except Exception:  # inductor raises its own InvalidCxxCompiler
        return None


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    cont: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the leading time axis; returns (advantages, returns).

    ``next_values[t]`` is V of the observation returned by step t. Bootstrapping stops only on
    ``terminated[t]`` (a true end); a truncated episode bootstraps from its final observation.
    ``cont[t]`` is 1 when A_t continues into A_{t+1}: step t did not end an episode and step t+1
    is a valid transition of the same agent.
    """
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values
    coef = gamma * lam * cont  # (gamma * lam) * cont[t], as in the textbook recursion below
    d, c = deltas.unbind(0), coef.unbind(0)
    last = torch.zeros_like(values[0])
    out = []
    for t in range(values.shape[0] - 1, -1, -1):
        last = d[t] + c[t] * last  # A_t = delta_t + gamma * lam * cont_t * A_{t+1}
        out.append(last)
    adv = torch.stack(out[::-1]) if out else torch.zeros_like(values)
    return adv, adv + values


class RunningMeanStd:
    """Per-agent running mean/variance (parallel algorithm, as SB3's RunningMeanStd), shape [n, *shape]."""

    def __init__(self, n: int, shape: tuple[int, ...] = ()) -> None:
        self.mean = torch.zeros(n, *shape, dtype=torch.float64)
        self.var = torch.ones(n, *shape, dtype=torch.float64)
        self.count = torch.full((n,), 1e-4, dtype=torch.float64)

    def update(self, x: torch.Tensor, mask: torch.Tensor) -> None:
        """x: [n, B, *shape]; mask: [n, B] bool — only masked-in samples count."""
        w = mask.to(torch.float64)
        extra = x.dim() - 2
        wv = w.view(*w.shape, *([1] * extra))
        cnt = w.sum(1)  # [n]
        c = cnt.clamp(min=1).view(-1, *([1] * extra))
        xd = x.to(torch.float64)
        bmean = (xd * wv).sum(1) / c
        bvar = (((xd - bmean.unsqueeze(1)) ** 2) * wv).sum(1) / c
        tot = self.count + cnt
        cv = cnt.view(-1, *([1] * extra))
        sc = self.count.view(-1, *([1] * extra))
        tv = tot.view(-1, *([1] * extra))
        delta = bmean - self.mean
        new_mean = self.mean + delta * cv / tv
        m2 = self.var * sc + bvar * cv + delta**2 * sc * cv / tv
        has = (cnt > 0).view(-1, *([1] * extra))
        self.mean = torch.where(has, new_mean, self.mean)
        self.var = torch.where(has, m2 / tv, self.var)
        self.count = torch.where(cnt > 0, tot, self.count)


def flatten_parameters(module: torch.nn.Module, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-home every parameter of ``module`` (agent axis first) into one flat buffer ``[n, P]``.

    Parameters and their gradients become views into ``flat`` and ``flat_grad``, so the optimiser,
    per-agent gradient clipping and sharing each touch one tensor instead of one per layer.
    Autograd accumulates into the existing ``.grad`` views in place; zero ``flat_grad`` between steps.
    """
    params = list(module.parameters())
    sizes = [p[0].numel() for p in params]
    flat = torch.zeros(n, sum(sizes), device=params[0].device)
    flat_grad = torch.zeros_like(flat)
    off = 0
    for p, size in zip(params, sizes, strict=True):
        flat[:, off : off + size] = p.data.reshape(n, size)
        p.data = flat[:, off : off + size].view(p.shape)
        p.grad = flat_grad[:, off : off + size].view(p.shape)
        off += size
    return flat, flat_grad


class BatchedAdam:
    """Adam over a flat parameter buffer ``[n, P]`` with per-agent step counts, learning rates and mask.

    Matches ``torch.optim.Adam`` for each agent (tested), but an agent whose mask is False in a
    step is left exactly unchanged (torch's Adam would still move it by its momentum).
    """

    def __init__(
        self, params: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5
    ) -> None:
        self.params = params
        self.betas, self.eps = betas, eps
        self.exp_avg = torch.zeros_like(params)
        self.exp_avg_sq = torch.zeros_like(params)
        self.step_count = torch.zeros(params.shape[0], dtype=torch.float64)

    @torch.no_grad()
    def step(self, grad: torch.Tensor, lr: torch.Tensor, active: torch.Tensor) -> None:
        """One Adam step with ``grad`` [n, P] for agents where ``active`` [n] is True, per-agent ``lr``."""
        b1, b2 = self.betas
        active = active.to(self.step_count.device)
        self.step_count += active.to(torch.float64)
        started = self.step_count > 0  # an agent that never stepped has no bias correction yet
        one = torch.ones_like(self.step_count)
        bc1 = torch.where(started, 1 - b1**self.step_count, one)
        bc2 = torch.where(started, 1 - b2**self.step_count, one)
        # per-agent step size lr / bc1 and sqrt(bc2), as torch.optim.Adam (non-capturable path)
        dev = self.params.device
        step_size = torch.where(active, lr.to(torch.float64).cpu() / bc1, torch.zeros_like(bc1))
        step_size = step_size.float()[:, None].to(dev)
        bc2_sqrt = bc2.sqrt().float()[:, None].to(dev)
        a = active.float()[:, None].to(dev)
        m, v = self.exp_avg, self.exp_avg_sq
        m.lerp_(grad, (1 - b1) * a)  # inactive agents: weight 0, m unchanged
        v.mul_(1 - (1 - b2) * a).addcmul_(grad * a, grad, value=1 - b2)
        denom = v.sqrt().div_(bc2_sqrt).add_(self.eps)  # in place on fresh tensors: same values
        self.params.sub_(torch.mul(step_size, m).div_(denom))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Optimiser state with the agent axis first."""
        return {"adam.m": self.exp_avg, "adam.v": self.exp_avg_sq, "adam.step": self.step_count}


@dataclass
class RolloutStats:
    """What one rollout of the population produced, per agent."""

    episode_returns: list[list[float]]  # counted training episodes' returns, per agent
    steps: np.ndarray  # [n] valid (learned-from) agent steps
    diagnostics: dict[str, np.ndarray]  # per-agent approx_kl and clipfrac of the update


class PopulationPPO:
    """n PPO agents trained together on a :class:`PopulationEnv` (one batched forward per step).

    ``seeds[a]`` seeds agent a's own ``torch.Generator``, from which it draws its initial weights,
    action noise and minibatch order, so an agent's randomness never depends on the other agents
    (``run_experiment`` passes ``derive_seed(seed, "agent", a)``).

    ``compile_loss=True`` runs the update's loss (:meth:`minibatch_loss`, forward and backward)
    through ``torch.compile`` with dynamic shapes: 1.0-1.2x faster training on the MLP
    environments, results that differ from the eager ones in the last bits (and then diverge), a
    first update that takes seconds to compile, and a C++ compiler on CPU. Compiled code is cached
    per process and shared between instances; ``run_experiment`` clears that cache first
    (``torch._dynamo.reset()``), so that an experiment's results depend only on its config and seed.
    """

    def __init__(
        self,
        spec: EnvSpec,
        cfg: PPOConfig,
        seeds: list[int],
        device: str | torch.device = "cpu",
        compile_loss: bool = False,
    ) -> None:
        self.spec, self.cfg, self.n = spec, cfg, len(seeds)
        self.device = torch.device(device)
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.net = PopulationActorCritic(spec, self.n, self.gens, cfg.hidden, cfg.log_std_init).to(
            self.device
        )
        self.flat, self.flat_grad = flatten_parameters(self.net, self.n)
        self.opt = BatchedAdam(self.flat)
        self.obs_rms = RunningMeanStd(self.n, spec.obs_shape) if cfg.norm_obs else None
        self.ret_rms = RunningMeanStd(self.n) if cfg.norm_reward else None
        self.lr = torch.full((self.n,), cfg.learning_rate)
        self._ret_acc: torch.Tensor | None = None  # running discounted return per env (env state)
        self._was_done: torch.Tensor | None = None  # per env: last step ended an episode
        self._obs: torch.Tensor | None = None
        # dynamic shapes from the first call: one graph for every minibatch size (a rollout cut
        # short by the quota has smaller minibatches), not a recompile per size
        self._loss = torch.compile(self.minibatch_loss, dynamic=True) if compile_loss else self.minibatch_loss

    # -- agent state -----------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor that makes up an agent (leading axis = agent); sharing copies exactly these."""
        d = {"params": self.flat, **self.opt.state_tensors()}
        for name, rms in (("obs_rms", self.obs_rms), ("ret_rms", self.ret_rms)):
            if rms is not None:
                d.update({f"{name}.mean": rms.mean, f"{name}.var": rms.var, f"{name}.count": rms.count})
        return d

    def _set_state(self, name: str, value: torch.Tensor) -> None:
        obj, _, attr = name.partition(".")
        if obj in ("obs_rms", "ret_rms"):
            setattr(getattr(self, obj), attr, value)
        else:
            self.state_tensors()[name].copy_(value)

    @torch.no_grad()
    def copy_agents(self, src: np.ndarray | list[int]) -> None:
        """Agent j takes agent ``src[j]``'s complete state, all at once (``src[j] == j``: unchanged)."""
        idx = torch.as_tensor(np.asarray(src), dtype=torch.long)
        for name, t in self.state_tensors().items():
            self._set_state(name, t[idx.to(t.device)].clone())

    def snapshot(self, a: int) -> dict[str, torch.Tensor]:
        """A copy of agent a's state, each tensor with a leading axis of 1."""
        return {k: t[a : a + 1].clone() for k, t in self.state_tensors().items()}

    @torch.no_grad()
    def load_snapshot(self, a: int, snap: dict[str, torch.Tensor]) -> None:
        """Put a snapshot into agent slot a."""
        for name, t in self.state_tensors().items():
            new = t.clone()
            new[a : a + 1] = snap[name].to(t.device)
            self._set_state(name, new)

    # -- acting ----------------------------------------------------------------------------------
    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-agent observation normalisation (identity without ``norm_obs``); obs [n, m, ...]."""
        return self._obs_normalizer()(obs)

    def _obs_normalizer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """:meth:`normalize_obs` with the current statistics computed once (for a whole rollout)."""
        device = self.device
        if self.obs_rms is None:
            return lambda obs: obs.to(device)
        mean = self.obs_rms.mean.float().unsqueeze(1)
        std = (self.obs_rms.var.float() + 1e-8).sqrt().unsqueeze(1)
        if device.type == "cpu":  # the statistics live on the CPU: no transfer to ask for
            return lambda obs: ((obs - mean) / std).clamp_(-10.0, 10.0)
        return lambda obs: ((obs - mean) / std).clamp_(-10.0, 10.0).to(device)

    def _masked(self, actor_out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Logits with illegal actions (``mask`` False) pushed to MASKED_LOGIT; unchanged without a mask."""
        if mask is None:
            if self.cfg.mask_actions:
                raise ValueError("ppo.mask_actions=True needs an environment made with action_masks=True")
            return actor_out
        return actor_out.masked_fill(~mask.to(actor_out.device), MASKED_LOGIT)

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, deterministic: bool = True, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Actions for obs [n, m, ...] (greedy/mean by default); ``mask`` [n, m, A]: legal actions."""
        out, _ = self.net(self.normalize_obs(obs))
        out = self._masked(out, mask) if self.spec.discrete else out
        log_std = getattr(self.net, "log_std", None)
        return sample_action(out, log_std, torch.zeros(()), self.spec.discrete, deterministic)[0]

    def _draw_noise(self, t: int, m: int) -> torch.Tensor:
        """Per-agent noise for a rollout: [T, n, m, A] from each agent's own generator."""
        shape = (t, m, self.spec.action_dim)
        if self.spec.discrete:
            u = [torch.rand(shape, generator=g).clamp_(1e-20, 1.0) for g in self.gens]
            noise = [-torch.log(-torch.log(x)) for x in u]
        else:
            noise = [torch.randn(shape, generator=g) for g in self.gens]
        return torch.stack(noise, dim=1).to(self.device)

    # -- training --------------------------------------------------------------------------------
    def collect_and_update(self, env: PopulationEnv, quota: np.ndarray) -> RolloutStats:
        """One rollout of ``num_steps`` (cut short once every agent met its quota), then one PPO update.

        ``quota[a]``: episodes agent a still needs in this round. An agent stops learning (its
        steps become invalid) once it completes its quota (episodes ending at the same step all
        count, so it may overshoot by up to ``num_envs - 1``); its environments keep stepping under its
        frozen policy and those steps are neither learned from nor counted. An episode ends where the
        environment's ``terminated | truncated`` says so. A NaN or infinity in the rollout (from the
        environment or the policy) or in the updated parameters raises :class:`NonFiniteError`.
        """
        cfg, n, m = self.cfg, self.n, env.m
        T = cfg.num_steps
        if self._obs is None:
            self._obs = env.reset()
            self._was_done = torch.zeros(n, m, dtype=torch.bool)
            self._ret_acc = torch.zeros(n, m, dtype=torch.float64)
        quota = np.asarray(quota, dtype=np.int64).copy()
        active = quota > 0
        obs_shape = self.spec.obs_shape
        pixel = self.spec.obs_kind == "pixels"
        normalize = self._obs_normalizer()
        # the rollout loop keeps per-step torch calls to the policy: what it records goes to
        # numpy buffers (env outputs) or lists stacked once after the loop (policy outputs)
        if self.obs_rms is None:  # the policy's input is the observation itself
            obs_buf = torch.zeros((T, n, m, *obs_shape), dtype=torch.uint8 if pixel else torch.float32)
            raw_buf = None
        else:  # the policy's input is a fresh normalised tensor; keep the raw obs for the statistics
            obs_buf, raw_buf = None, torch.zeros((T, n, m, *obs_shape))
        xs: list[torch.Tensor] = []
        acts: list[torch.Tensor] = []
        logps: list[torch.Tensor] = []
        vals: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        rew_np = np.zeros((T, n, m), dtype=np.float32)
        term_np = np.zeros((T, n, m), dtype=bool)
        done_np = np.zeros((T, n, m), dtype=bool)
        valid_np = np.zeros((T, n, m), dtype=bool)
        masking = self.cfg.mask_actions and self.spec.discrete
        noise = self._draw_noise(T, m).unbind(0)
        log_std = getattr(self.net, "log_std", None)
        returns: list[list[float]] = [[] for _ in range(n)]
        obs = self._obs
        was_done = self._was_done.numpy()
        used = T
        with torch.no_grad():
            for t in range(T):
                valid = active[:, None] & ~was_done
                x = normalize(obs)
                out, v = self.net(x)
                if masking:
                    mask = env.action_mask()
                    out = self._masked(out, mask)
                    masks.append(mask)
                action, logp = sample_action(out, log_std, noise[t], self.spec.discrete, False)
                if raw_buf is not None:
                    raw_buf[t] = obs
                    xs.append(x.cpu())
                else:  # x may be the environment's own tensor: copy it
                    obs_buf[t] = x.cpu()  # type: ignore[index]
                acts.append(action)
                logps.append(logp)
                vals.append(v)
                valid_np[t] = valid
                obs, r, term, trunc, ep_ret = env.step(action)
                rew_np[t] = r
                term_np[t] = term
                was_done = term | trunc
                done_np[t] = was_done
                ended = was_done & valid
                if ended.any():
                    # every episode that ends while its agent learns counts, also those that end
                    # at the same step as the one that met the quota (they were learned from)
                    for a, j in zip(*np.nonzero(ended), strict=True):
                        returns[a].append(float(ep_ret[a, j]))
                    quota -= ended.sum(1)
                    active = quota > 0
                if not active.any():
                    used = t + 1
                    break
            last_value = self.net.value(normalize(obs)).cpu()
        sl = slice(0, used)
        act_t = torch.stack(acts).cpu()
        logp_t = torch.stack(logps).cpu()
        val_t = torch.stack(vals).cpu()
        seen = None  # the observations acted on, where they can be non-finite (vectors)
        if self.spec.obs_kind == "vector":
            seen = raw_buf[sl] if raw_buf is not None else obs_buf[sl]  # type: ignore[index]
        self._check_rollout(seen, obs, act_t, logp_t, val_t, rew_np[sl])
        steps = valid_np[:used].sum((0, 2))
        self._was_done = torch.from_numpy(was_done)
        active_t = torch.from_numpy(active)
        self._obs = obs
        obs_t = torch.stack(xs) if obs_buf is None else obs_buf[sl]
        valid_buf = torch.from_numpy(valid_np[sl])
        done_f = torch.from_numpy(done_np[sl]).float()
        rew = torch.from_numpy(rew_np[sl])
        if self.ret_rms is not None:
            rew = self._normalize_rewards(rew, done_f, valid_buf)
        if self.obs_rms is not None and raw_buf is not None:
            flat = raw_buf[sl].transpose(0, 1).reshape(n, used * m, *obs_shape)
            self.obs_rms.update(flat, valid_buf.transpose(0, 1).reshape(n, used * m))
        next_values = torch.cat([val_t[1:used], last_value.unsqueeze(0)], dim=0)
        next_valid = torch.cat(
            [valid_buf[1:], active_t.view(1, n, 1).expand(1, n, m) & ~self._was_done.unsqueeze(0)]
        )
        cont = (1.0 - done_f) * next_valid.float()
        adv, ret = gae(
            rew, val_t, next_values, torch.from_numpy(term_np[sl]).float(), cont, cfg.gamma, cfg.gae_lambda
        )
        diagnostics = self.update(
            obs_t, act_t, logp_t, adv, ret, valid_buf, torch.stack(masks) if masks else None
        )
        return RolloutStats(returns, steps, diagnostics)

    def settings(self) -> str:
        """The PPO settings that decide whether training diverges, for error messages."""
        c = self.cfg
        return (
            f"learning_rate={c.learning_rate:g}, max_grad_norm={c.max_grad_norm:g}, "
            f"norm_obs={c.norm_obs}, norm_reward={c.norm_reward}"
        )

    def _check_rollout(
        self,
        obs: torch.Tensor | None,
        last_obs: torch.Tensor,
        actions: torch.Tensor,
        logp: torch.Tensor,
        values: torch.Tensor,
        rewards: np.ndarray,
    ) -> None:
        """Raise NonFiniteError if a rollout holds NaN/inf, blaming whoever produced the first one.

        ``obs`` [T, n, m, d]: the observations acted on (None where they cannot be non-finite:
        pixels, one-hot states), ``last_obs`` the one after the last step; ``actions``, ``logp``,
        ``values`` the policy's outputs and ``rewards`` [T, n, m]. Five whole-tensor checks; an
        agent's failure is the environment's if its first non-finite observation or reward came
        before the policy's first non-finite output (a NaN observation makes the action NaN too).
        """
        policy = [("log-probabilities", logp), ("values", values)]
        if not self.spec.discrete:
            policy.insert(0, ("actions", actions))
        ok = bool(np.isfinite(rewards).all()) and all(bool(torch.isfinite(x).all()) for _, x in policy)
        if obs is not None:
            ok = ok and bool(torch.isfinite(obs).all()) and bool(torch.isfinite(last_obs).all())
        if ok:
            return
        T, n = rewards.shape[:2]
        never = 2 * T + 3
        # event times: observation t at 2t, the policy's outputs at step t at 2t+1, reward t at 2t+2
        bad_obs = np.zeros((T + 1, n), dtype=bool)
        if obs is not None:
            bad_obs[:T] = _bad_per_agent(obs)
            bad_obs[T] = _bad_per_agent(last_obs.unsqueeze(0))[0]
        bad_rew = _bad_per_agent(rewards)
        bad_pol = {name: _bad_per_agent(x) for name, x in policy}
        t_env = np.minimum(2 * _first_true(bad_obs, never), 2 * _first_true(bad_rew, never) + 2)
        t_pol = 2 * _first_true(np.any(list(bad_pol.values()), axis=0), never) + 1
        env_agents = np.flatnonzero((t_env < 2 * never) & (t_env < t_pol))
        if len(env_agents):
            what = [
                k for k, bad in (("observations", bad_obs), ("rewards", bad_rew)) if bad[:, env_agents].any()
            ]
            raise NonFiniteError("environment", env_agents, what)
        agents = np.flatnonzero(t_pol < t_env)
        what = [k for k, bad in bad_pol.items() if bad[:, agents].any()]
        raise NonFiniteError("training", agents, ["policy " + ", ".join(what)], self.settings())

    def _check_parameters(
        self, loss_sum: torch.Tensor, grad_norm_sum: torch.Tensor, adv: torch.Tensor, ret: torch.Tensor
    ) -> None:
        """After an update: one ``isfinite`` over every agent's parameters; on failure raise
        NonFiniteError naming the agents and what went non-finite (the update's advantages/returns
        ``[n, B]``, its loss and gradient norms summed over minibatches, the parameters)."""
        if bool(torch.isfinite(self.flat).all()):
            return
        agents = np.flatnonzero((~torch.isfinite(self.flat).all(1)).cpu().numpy())
        what = []
        data_bad = ~(torch.isfinite(adv).all(1) & torch.isfinite(ret).all(1)).cpu().numpy()
        if data_bad[agents].any():
            what.append("advantages/returns")
        if not bool(torch.isfinite(loss_sum)):
            what.append("loss")
        if (~torch.isfinite(grad_norm_sum)).cpu().numpy()[agents].any():
            what.append("gradient norm")
        raise NonFiniteError("training", agents, [*what, "parameters"], self.settings())

    def _normalize_rewards(self, rew: torch.Tensor, done: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Scale rewards by the per-agent running std of the discounted return (SB3 VecNormalize)."""
        assert self.ret_rms is not None and self._ret_acc is not None
        rets = torch.zeros(rew.shape, dtype=torch.float64)
        acc = self._ret_acc
        for t in range(rew.shape[0]):
            acc = acc * self.cfg.gamma + rew[t].double()
            rets[t] = acc
            acc = acc * (1.0 - done[t].double())
        self._ret_acc = acc
        T, n, m = rew.shape
        self.ret_rms.update(rets.transpose(0, 1).reshape(n, T * m), valid.transpose(0, 1).reshape(n, T * m))
        std = (self.ret_rms.var.float() + 1e-8).sqrt().view(1, n, 1)
        return (rew / std).clamp(-10.0, 10.0)

    def update(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        logp_old: torch.Tensor,
        adv: torch.Tensor,
        ret: torch.Tensor,
        valid: torch.Tensor,
        masks: torch.Tensor | None = None,
    ) -> dict[str, np.ndarray]:
        """PPO epochs on a rollout laid out [T, n, m, ...]; each agent uses only its valid samples.

        ``masks`` [T, n, m, A] (with ``mask_actions``): the legal actions the rollout sampled from.

        Each agent draws its own minibatch permutation from its generator; the batch per agent is
        ``T*m`` samples split in ``num_minibatches``. Returns per-agent diagnostics of the last
        minibatch (approx_kl, clipfrac). Raises NonFiniteError when the update leaves an agent's
        parameters non-finite (one ``isfinite`` over all parameters per update).
        """
        cfg, n = self.cfg, self.n
        T, _, m = valid.shape
        B = T * m

        def flat(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(0, 1).reshape(n, B, *x.shape[3:]).to(self.device)

        b_obs, b_act, b_logp = flat(obs), flat(actions), flat(logp_old)
        b_adv, b_ret, b_w = flat(adv), flat(ret), flat(valid).float()
        b_mask = flat(masks) if masks is not None else None
        has_data = b_w.sum(1) > 0
        if not bool(has_data.any()):
            return {}
        mb = max(B // cfg.num_minibatches, 1)
        rows = torch.arange(n, device=self.device).unsqueeze(1)
        last: tuple[torch.Tensor, ...] | None = None
        # summed over minibatches, read only when the parameters check fails: NaN/inf stays
        loss_sum = torch.zeros((), device=self.device)
        grad_norm_sum = torch.zeros(n, device=self.device)
        for _ in range(cfg.update_epochs):
            perm = torch.stack([torch.randperm(B, generator=g) for g in self.gens]).to(self.device)
            # shuffle once per epoch (one gather per tensor); minibatches are then contiguous views
            e_obs, e_act, e_logp = b_obs[rows, perm], b_act[rows, perm], b_logp[rows, perm]
            e_adv, e_ret, e_w = b_adv[rows, perm], b_ret[rows, perm], b_w[rows, perm]
            e_mask = b_mask[rows, perm] if b_mask is not None else None
            for start in range(0, B, mb):
                sl = slice(start, start + mb)
                w = e_w[:, sl]
                cnt = w.sum(1)
                active = cnt > 0
                if not bool(active.any()):
                    continue
                c = cnt.clamp(min=1.0)
                m_sl = e_mask[:, sl] if e_mask is not None else None
                loss, ratio, logratio = self._loss(
                    e_obs[:, sl], e_act[:, sl], e_logp[:, sl], e_adv[:, sl], e_ret[:, sl], w, c, m_sl
                )
                self.flat_grad.zero_()
                loss.backward()
                grad_norm_sum += self._clip_grads()
                loss_sum += loss.detach()
                self.opt.step(self.flat_grad, self.lr, active)
                last = (ratio.detach(), logratio.detach(), w, c)
        if last is None:
            return {}
        self._check_parameters(loss_sum, grad_norm_sum, b_adv, b_ret)
        ratio, logratio, w, c = last  # diagnostics of the last minibatch, as CleanRL logs them
        clipped = ((ratio - 1).abs() > cfg.clip_coef).float()
        return {
            "approx_kl": ((((ratio - 1) - logratio) * w).sum(1) / c).cpu().numpy(),
            "clipfrac": ((clipped * w).sum(1) / c).cpu().numpy(),
        }

    def minibatch_loss(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        logp_old: torch.Tensor,
        adv: torch.Tensor,
        ret: torch.Tensor,
        w: torch.Tensor,
        c: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """PPO loss of one minibatch, summed over agents; also (ratio, logratio), all ``[n, mb]``.

        ``w`` [n, mb] weighs each sample (1 valid, 0 not), ``c`` [n] is each agent's count of valid
        samples (at least 1): each agent's loss is its own weighted mean, with advantages normalised
        per agent, so the sum's gradient for agent a is agent a's gradient alone.
        """
        cfg = self.cfg
        out, newv = self.net(obs)
        if mask is not None:
            out = self._masked(out, mask)
        log_std = getattr(self.net, "log_std", None)
        newlogp, ent = log_prob_entropy(out, log_std, actions, self.spec.discrete)
        logratio = newlogp - logp_old
        ratio = logratio.exp()
        a_mean = (adv * w).sum(1, keepdim=True) / c.unsqueeze(1)
        centred = adv - a_mean
        a_var = ((centred**2) * w).sum(1, keepdim=True) / (c - 1).clamp(min=1).unsqueeze(1)
        a = centred / (a_var.sqrt() + 1e-8)
        neg_a = -a
        pg = torch.max(neg_a * ratio, neg_a * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef))
        v_loss = 0.5 * (newv - ret) ** 2
        per_agent = ((pg - cfg.ent_coef * ent + cfg.vf_coef * v_loss) * w).sum(1) / c
        return per_agent.sum(), ratio, logratio

    @torch.no_grad()
    def _clip_grads(self) -> torch.Tensor:
        """Scale each agent's gradient so its global norm is at most ``max_grad_norm`` (as torch's clip);
        returns the norms before clipping, ``[n]``."""
        norm = self.flat_grad.norm(dim=1, keepdim=True)
        self.flat_grad.mul_((self.cfg.max_grad_norm / (norm + 1e-6)).clamp(max=1.0))
        return norm.squeeze(1)


@torch.no_grad()
def evaluate(agents: PopulationPPO, env: PopulationEnv, deterministic: bool = True) -> np.ndarray:
    """Run each environment of ``env`` for one episode with ``agents``' policies; returns [n, m] returns.

    ``env`` must have as many agents as ``agents``; it is reset first, and nothing is learned. At most
    ``env.max_decisions`` steps: every first episode ends within the environment's time limit.
    Non-finite observations or rewards from the environment, or non-finite actions from a policy,
    raise NonFiniteError (checked every step).
    """
    obs = env.reset()
    out = np.zeros((env.n, env.m))
    done = np.zeros((env.n, env.m), dtype=bool)
    vector, continuous = env.spec.obs_kind == "vector", not env.spec.discrete
    for _ in range(env.max_decisions):
        if vector and not bool(torch.isfinite(obs).all()):
            raise NonFiniteError(
                "environment", np.flatnonzero(_bad_per_agent(obs[None])[0]), ["observations"]
            )
        action = agents.act(obs, deterministic=deterministic, mask=env.action_mask())
        if continuous and not bool(torch.isfinite(action).all()):
            bad = np.flatnonzero(_bad_per_agent(action[None])[0])
            raise NonFiniteError("training", bad, ["policy actions"], agents.settings())
        obs, r, term, trunc, ep_ret = env.step(action)
        if not np.isfinite(r).all():
            raise NonFiniteError("environment", np.flatnonzero(_bad_per_agent(r[None])[0]), ["rewards"])
        new = (term | trunc) & ~done
        out[new] = ep_ret[new]
        done |= new
        if done.all():
            return out
    raise EpisodeLimitError(
        f"env_id={env.spec.env_id!r}: an evaluation episode did not end within {env.max_decisions} steps"
    )
