"""Population PPO: n agents' learning state as tensors with a leading agent axis, one update for all.

An agent is everything indexed by ``a`` along the first axis of :meth:`PopulationPPO.state_tensors`:
network parameters, Adam moments and step counts, observation and return normalisation statistics.
Copying ``t[j] <- t[i]`` for all of them is a complete share (paper eq. 2, :mod:`collab.sharing`).
Environments, random generators and episode counters are not agent state and are never copied.

PPO follows CleanRL (``ppo.py``, ``ppo_continuous_action.py``): GAE, clipped surrogate, value loss
``0.5 * (V - R)^2``, entropy bonus, per-minibatch advantage normalisation, Adam (eps 1e-5) and
gradient-norm clipping, all *per agent*: each agent normalises its own advantages and clips its own
gradient norm, so agents never influence each other without sharing.

One iteration reads top to bottom from :meth:`PopulationPPO.collect_and_update`: (1) the rollout
(``_rollout``: act, step, record), (2) reward scaling and observation statistics, (3) GAE
(:func:`advantages`, :func:`gae`, below), (4) the update (``update``: epochs of minibatches,
``minibatch_loss``). Helpers that are concepts of their own live apart: the buffers
(:mod:`collab.buffers`), the running statistics (:mod:`collab.normalization`), the batched layers
(:mod:`collab.networks`), the flat parameters and batched Adam (:mod:`collab.optim`), and the
non-finite checks that stop training instead of letting a NaN spread (:mod:`collab.nonfinite`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from collab import numerics
from collab.buffers import Rollout, RolloutBuffer, RolloutStats, per_agent
from collab.config import PPOConfig
from collab.envs import EpisodeLimitError, PopulationEnv
from collab.networks import PopulationActorCritic, log_prob_entropy, sample_action
from collab.nonfinite import NonFiniteError, bad_per_agent, check_parameters, check_rollout
from collab.normalization import RunningMeanStd, scale_rewards
from collab.optim import BatchedAdam, clip_grad_norms, flatten_parameters
from collab.spaces import EnvSpec

#: Logit given to illegal actions with ``mask_actions`` (as sb3-contrib's MaskablePPO): their
#: probability underflows to exactly 0, and 0 * log p stays finite in the entropy.
MASKED_LOGIT = -1e8


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel draws: ``argmax(logp + noise)`` samples from ``softmax(logp)`` (Gumbel-max)."""
    u = torch.rand(shape, generator=generator).clamp_(1e-20, 1.0)
    return -numerics.log(-numerics.log(u))


class PopulationPPO:
    """n PPO agents trained together on a :class:`PopulationEnv` (one batched forward per step).

    ``seeds[a]`` seeds agent a's own ``torch.Generator``, from which it draws its initial weights,
    action noise and minibatch order, so an agent's randomness never depends on the other agents
    (``run_experiment`` passes ``derive_seed(seed, "agent", a)``). ``lr`` and ``ent_coef`` ([n]
    tensors, from ``cfg``) are each agent's learning rate and entropy coefficient; a caller may
    replace them between updates (annealing, population based training).
    """

    def __init__(
        self, spec: EnvSpec, cfg: PPOConfig, seeds: list[int], device: str | torch.device = "cpu"
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
        self.ent_coef = torch.full((self.n,), cfg.ent_coef)
        self._ret_acc: torch.Tensor | None = None  # running discounted return per env (env state)
        self._was_done: torch.Tensor | None = None  # per env: last step ended an episode
        self._obs: torch.Tensor | None = None

    # -- one iteration: rollout, reward scaling, GAE, update ----------------------------------
    def collect_and_update(self, env: PopulationEnv, quota: np.ndarray) -> RolloutStats:
        """One rollout of ``num_steps`` (cut short once every agent met its quota), then one PPO update.

        ``quota[a]``: episodes agent a still needs in this round. An agent stops learning (its
        steps become invalid) once it completes its quota (episodes ending at the same step all
        count, so it may overshoot by up to ``num_envs - 1``); its environments keep stepping under its
        frozen policy and those steps are neither learned from nor counted. An episode ends where the
        environment's ``terminated | truncated`` says so. A NaN or infinity in the rollout (from the
        environment or the policy) or in the updated parameters raises :class:`NonFiniteError`.
        """
        cfg = self.cfg
        if self._obs is None:
            self._obs = env.reset()
            self._was_done = torch.zeros(self.n, env.m, dtype=torch.bool)
            self._ret_acc = torch.zeros(self.n, env.m, dtype=torch.float64)
        ro = self._rollout(env, quota)
        self._check_rollout(ro)
        self._obs, self._was_done = ro.last_obs, ro.was_done
        rewards = ro.rewards
        if self.ret_rms is not None:
            assert self._ret_acc is not None
            rewards, self._ret_acc = scale_rewards(
                rewards, ro.done, ro.valid, self._ret_acc, self.ret_rms, cfg.gamma
            )
        if self.obs_rms is not None and ro.raw_obs is not None:
            self.obs_rms.update(per_agent(ro.raw_obs), per_agent(ro.valid))
        adv, ret = advantages(ro, rewards, cfg.gamma, cfg.gae_lambda)
        self.update(ro.obs, ro.actions, ro.logp, adv, ret, ro.valid, ro.masks)
        return RolloutStats(ro.returns, ro.steps)

    @torch.no_grad()
    def _rollout(self, env: PopulationEnv, quota: np.ndarray) -> Rollout:
        """Step every agent's environments under its current policy for up to ``num_steps`` steps,
        stopping early once every agent has met its ``quota`` of episodes (see collect_and_update)."""
        n, m, T = self.n, env.m, self.cfg.num_steps
        assert self._obs is not None and self._was_done is not None
        quota = np.asarray(quota, dtype=np.int64).copy()
        active = quota > 0
        buf = RolloutBuffer(
            T, n, m, self.spec.obs_shape, self.spec.obs_kind == "pixels", keep_raw=self.obs_rms is not None
        )
        normalize = self._obs_normalizer()
        masking = self.cfg.mask_actions and self.spec.discrete
        noise = self._draw_noise(T, m).unbind(0)
        log_std = getattr(self.net, "log_std", None)
        obs, was_done, used = self._obs, self._was_done.numpy(), T
        for t in range(T):
            valid = active[:, None] & ~was_done
            x = normalize(obs)
            out, v = self.net(x)
            mask = env.action_mask() if masking else None
            if masking:
                out = self._masked(out, mask)
            action, logp = sample_action(out, log_std, noise[t], self.spec.discrete, False)
            buf.record_policy(t, obs, x, action, logp, v, mask)
            obs, r, term, trunc, ep_ret = env.step(action)
            was_done = term | trunc
            buf.record_step(t, valid, r, term, was_done)
            ended = was_done & valid
            if ended.any():
                # every episode that ends while its agent learns counts, also those that end
                # at the same step as the one that met the quota (they were learned from)
                for a, j in zip(*np.nonzero(ended), strict=True):
                    buf.returns[a].append(float(ep_ret[a, j]))
                quota -= ended.sum(1)
                active = quota > 0
            if not active.any():
                used = t + 1
                break
        last_value = self.net.value(normalize(obs)).cpu()
        return buf.finish(used, obs, last_value, active, was_done)

    def update(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        logp_old: torch.Tensor,
        adv: torch.Tensor,
        ret: torch.Tensor,
        valid: torch.Tensor,
        masks: torch.Tensor | None = None,
    ) -> None:
        """PPO epochs on a rollout laid out [T, n, m, ...]; each agent uses only its valid samples.

        ``masks`` [T, n, m, A] (with ``mask_actions``): the legal actions the rollout sampled from.

        Each agent draws its own minibatch permutation from its generator; the batch per agent is
        ``T*m`` samples split in ``num_minibatches``. Raises NonFiniteError when the update leaves an
        agent's parameters non-finite (one ``isfinite`` over all parameters per update).
        """
        cfg, n = self.cfg, self.n
        T, _, m = valid.shape
        B = T * m
        data = {"obs": obs, "actions": actions, "logp_old": logp_old, "adv": adv, "ret": ret, "w": valid}
        if masks is not None:
            data["mask"] = masks
        batch = {k: per_agent(x).to(self.device) for k, x in data.items()}
        batch["w"] = batch["w"].float()
        if not bool((batch["w"].sum(1) > 0).any()):
            return
        mb = max(B // cfg.num_minibatches, 1)
        rows = torch.arange(n, device=self.device).unsqueeze(1)
        stepped = False
        # summed over minibatches, read only when the parameters check fails: NaN/inf stays
        sums = {"loss": torch.zeros((), device=self.device), "grad_norm": torch.zeros(n, device=self.device)}
        for _ in range(cfg.update_epochs):
            perm = torch.stack([torch.randperm(B, generator=g) for g in self.gens]).to(self.device)
            # shuffle once per epoch (one gather per tensor); minibatches are then contiguous views
            epoch = {k: x[rows, perm] for k, x in batch.items()}
            for start in range(0, B, mb):
                mb_data = {k: x[:, start : start + mb] for k, x in epoch.items()}
                stepped = self._minibatch_step(mb_data, sums) or stepped
        if stepped:
            self._check_parameters(sums["loss"], sums["grad_norm"], batch["adv"], batch["ret"])

    def _minibatch_step(self, mb: dict[str, torch.Tensor], sums: dict[str, torch.Tensor]) -> bool:
        """One gradient step on minibatch ``mb`` ([n, mb] per key) for the agents with valid samples
        in it; adds its loss and gradient norms to ``sums``. False where no agent has a valid sample."""
        w = mb["w"]
        cnt = w.sum(1)
        active = cnt > 0
        if not bool(active.any()):
            return False
        c = cnt.clamp(min=1.0)
        loss, _, _ = self.minibatch_loss(
            mb["obs"], mb["actions"], mb["logp_old"], mb["adv"], mb["ret"], w, c, mb.get("mask")
        )
        self.flat_grad.zero_()
        with warnings.catch_warnings():
            # The gradients are views into one flat [n, P] buffer (collab.optim.flatten_parameters):
            # strided, so autograd warns that they break its layout contract. It still accumulates
            # into them in place (tests/test_ppo.py); the warning is about speed only.
            warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")
            loss.backward()
        sums["grad_norm"] += clip_grad_norms(self.flat_grad, self.cfg.max_grad_norm)
        sums["loss"] += loss.detach()
        self.opt.step(self.flat_grad, self.lr, active)
        return True

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
        ratio = numerics.exp(logratio)
        a_mean = (adv * w).sum(1, keepdim=True) / c.unsqueeze(1)
        centred = adv - a_mean
        a_var = ((centred**2) * w).sum(1, keepdim=True) / (c - 1).clamp(min=1).unsqueeze(1)
        a = centred / (numerics.sqrt(a_var) + 1e-8)
        neg_a = -a
        pg = torch.max(neg_a * ratio, neg_a * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef))
        v_loss = 0.5 * (newv - ret) ** 2
        ent_coef = self.ent_coef.to(ent.device)[:, None]
        per_agent_loss = ((pg - ent_coef * ent + cfg.vf_coef * v_loss) * w).sum(1) / c
        return per_agent_loss.sum(), ratio, logratio

    # -- acting --------------------------------------------------------------------------------
    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-agent observation normalisation (identity without ``norm_obs``); obs [n, m, ...]."""
        return self._obs_normalizer()(obs)

    def _obs_normalizer(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """:meth:`normalize_obs` with the current statistics computed once (for a whole rollout)."""
        device = self.device
        if self.obs_rms is None:
            return lambda obs: obs.to(device)
        mean = self.obs_rms.mean.float().unsqueeze(1)
        std = numerics.sqrt(self.obs_rms.var.float() + 1e-8).unsqueeze(1)
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
        self,
        obs: torch.Tensor,
        deterministic: bool = True,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Actions for obs [n, m, ...]; ``mask`` [n, m, A]: legal actions.

        ``deterministic``: the greedy action (discrete) or the mean (continuous). Otherwise sampled
        from the policy, with noise drawn from ``generator`` (default: torch's global generator),
        never from the agents' own generators: acting does not change training's random numbers.
        """
        out, _ = self.net(self.normalize_obs(obs))
        out = self._masked(out, mask) if self.spec.discrete else out
        log_std = getattr(self.net, "log_std", None)
        noise = torch.zeros(())
        if not deterministic:
            shape = (*out.shape[:-1], self.spec.action_dim)
            draw = gumbel_noise if self.spec.discrete else torch.randn
            noise = draw(shape, generator=generator).to(out.device)
        return sample_action(out, log_std, noise, self.spec.discrete, deterministic)[0]

    def _draw_noise(self, t: int, m: int) -> torch.Tensor:
        """Per-agent noise for a rollout: [T, n, m, A] from each agent's own generator."""
        shape = (t, m, self.spec.action_dim)
        if self.spec.discrete:
            noise = [gumbel_noise(shape, g) for g in self.gens]
        else:
            noise = [torch.randn(shape, generator=g) for g in self.gens]
        return torch.stack(noise, dim=1).to(self.device)

    # -- agent state: what a share copies ------------------------------------------------------
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

    def set_hyperparameters(self, **values: np.ndarray) -> None:
        """Per-agent learning rates (``lr``) and entropy coefficients (``ent_coef``), one value per agent."""
        for name, v in values.items():
            if name not in ("lr", "ent_coef"):
                raise ValueError(f"hyperparameter {name!r} is not allowed: lr or ent_coef")
            t = torch.as_tensor(np.asarray(v), dtype=torch.float32)
            if t.shape != (self.n,):
                raise ValueError(f"{name}: one value per agent ({self.n}), got shape {tuple(t.shape)}")
            setattr(self, name, t)

    def training_state(self) -> dict:
        """Everything the agents' training continues from, the environments aside: every agent's
        tensors (:meth:`state_tensors`), learning rates, entropy coefficients and generator states."""
        return {
            "tensors": self.state_tensors(),
            "lr": self.lr,
            "ent_coef": self.ent_coef,
            "generators": [g.get_state() for g in self.gens],
        }

    @torch.no_grad()
    def load_training_state(self, state: dict) -> None:
        """Continue from a :meth:`training_state` of agents made with the same settings."""
        for name, t in state["tensors"].items():
            self._set_state(name, t.to(self.state_tensors()[name].device))
        self.lr, self.ent_coef = state["lr"].clone(), state["ent_coef"].clone()
        for g, s in zip(self.gens, state["generators"], strict=True):
            g.set_state(s)

    def end_episodes(self) -> None:
        """Forget the episodes running in the training environments: the next rollout resets them
        (and their running discounted returns) as at an episode's end. Their steps so far were learned
        from, bootstrapped at the end of the last rollout (:func:`advantages`)."""
        self._obs = self._was_done = self._ret_acc = None

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

    # -- non-finite checks -----------------------------------------------------------------------
    def settings(self) -> str:
        """The PPO settings that decide whether training diverges, for error messages."""
        c = self.cfg
        return (
            f"learning_rate={c.learning_rate:g}, max_grad_norm={c.max_grad_norm:g}, "
            f"norm_obs={c.norm_obs}, norm_reward={c.norm_reward}"
        )

    def _check_rollout(self, ro: Rollout) -> None:
        """Raise NonFiniteError if the rollout holds NaN/inf (:func:`collab.nonfinite.check_rollout`)."""
        policy = [("log-probabilities", ro.logp), ("values", ro.values)]
        if not self.spec.discrete:
            policy.insert(0, ("actions", ro.actions))
        seen = ro.seen_obs(self.spec.obs_kind == "vector")
        check_rollout(seen, ro.last_obs, policy, ro.rewards.numpy(), self.settings())

    def _check_parameters(
        self, loss_sum: torch.Tensor, grad_norm_sum: torch.Tensor, adv: torch.Tensor, ret: torch.Tensor
    ) -> None:
        """Raise NonFiniteError if the update left parameters non-finite (:mod:`collab.nonfinite`)."""
        check_parameters(self.flat, loss_sum, grad_norm_sum, adv, ret, self.settings())


# -- generalised advantage estimation (step 3 of an iteration) --------------------------------------
def advantages(
    ro: Rollout, rewards: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE advantages and returns of a rollout with (possibly scaled) ``rewards``.

    A step's advantage continues into the next step when the step did not end an episode and the
    next step is valid; after the last step, when the agent is still learning and its environment
    did not just end an episode (the next rollout continues it).
    """
    n, m = ro.was_done.shape
    next_values = torch.cat([ro.values[1:], ro.last_value.unsqueeze(0)], dim=0)
    goes_on = ro.active.view(1, n, 1).expand(1, n, m) & ~ro.was_done.unsqueeze(0)
    next_valid = torch.cat([ro.valid[1:], goes_on])
    cont = (1.0 - ro.done) * next_valid.float()
    return gae(rewards, ro.values, next_values, ro.terminated, cont, gamma, lam)


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
            raise NonFiniteError("environment", np.flatnonzero(bad_per_agent(obs[None])[0]), ["observations"])
        action = agents.act(obs, deterministic=deterministic, mask=env.action_mask())
        if continuous and not bool(torch.isfinite(action).all()):
            bad = np.flatnonzero(bad_per_agent(action[None])[0])
            raise NonFiniteError("training", bad, ["policy actions"], agents.settings())
        obs, r, term, trunc, ep_ret = env.step(action)
        if not np.isfinite(r).all():
            raise NonFiniteError("environment", np.flatnonzero(bad_per_agent(r[None])[0]), ["rewards"])
        new = (term | trunc) & ~done
        out[new] = ep_ret[new]
        done |= new
        if done.all():
            return out
    raise EpisodeLimitError(
        f"env_id={env.spec.env_id!r}: an evaluation episode did not end within {env.max_decisions} steps"
    )
