"""Training: seeded, resumable, early-stopped on a validation period, an ensemble of members.

Periods are set by init month: training uses inits up to ``train_end`` and only
targets up to ``train_end``; validation (early stopping, model selection,
calibration of phase probabilities, reported scores) uses inits in
``train_end < month <= valid_end`` and only targets up to ``valid_end``. Data after
``valid_end`` is cut off before anything else happens, so the test period stays
unseen.

Each member is trained with its own seed (derived from ``seed``) and writes a
checkpoint after every epoch (weights, optimiser, random number generator
states, early-stopping state) into the run's own folder under
``checkpoint_dir`` (named by preset and a key of preset, seed, data and
periods); a later call with the same arguments resumes there and ends with the
same weights as an uninterrupted run (bit for bit on CPU), and any other run
uses another folder. The caller removes the folder once the model is stored
(``db.forecasting.train_and_register`` does). On CUDA the forward passes run
under bf16 autocast.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
from torch import Tensor, nn
from tqdm.auto import tqdm

from enso import verify
from enso.files import atomic_write
from enso.model.data import (ModelData, SampleTensors, Samples, build_samples, encode_field, fit_grid_damping,
                             fit_index_bias, fit_linear_base, fit_statistics, prepare_data)
from enso.model.phases import calibrate_spread
from enso.model.predict import CaseForecasts, forecast_cases, resolve_device
from enso.model.presets import FORECAST_LEADS, KeydanaDesign, Preset, ResidualDesign, get_preset
from enso.model.trained import TrainedModel, build_network
from enso.months import Month

__all__ = ["TrainedModel", "train"]


def train(preset: Preset | str, cube: xr.DataArray, index: pd.DataFrame, *, train_end: Month | str,
          valid_end: Month | str, device: str | torch.device = "auto", seed: int = 0,
          checkpoint_dir: str | Path | None = None, progress: bool = True,
          max_epochs: int | None = None, refit: bool | None = None) -> TrainedModel:
    """Train the preset's ensemble on ``cube`` (SST) and ``index`` (the model table, :func:`model_table`).

    Training cases have init and targets up to ``train_end``; selection cases have
    init after it and targets up to ``valid_end`` (early stopping, the linear base's
    penalties, the spread calibration and the validation scores come from them).
    With ``refit`` (default: the preset's), the model is then trained again on every
    case up to ``valid_end`` with each member's selected epoch count; its validation
    scores stay those of the selection. ``max_epochs`` overrides the preset's epoch
    limit. ``checkpoint_dir`` is a root: this run writes into its own folder there
    (``<preset>-<run key>``, :attr:`TrainedModel.checkpoint_folder`), which a rerun
    with the same arguments resumes and another run never touches.
    """
    preset = get_preset(preset)
    train_end, valid_end = Month.parse(train_end), Month.parse(valid_end)
    if valid_end <= train_end:
        raise ValueError(f"valid_end {valid_end} must come after train_end {train_end}")
    refit = preset.refit if refit is None else refit
    device = resolve_device(device)
    data = prepare_data(cube, index, preset.grid, last=valid_end)
    train_rows, valid_rows = data.row(train_end), data.row(valid_end)
    stats = fit_statistics(preset, data, train_end)
    stats["index_bias"] = fit_index_bias(data, train_end)
    everything = build_samples(preset, data, stats)
    train_set = everything.subset(everything.init_rows <= train_rows).until(train_rows).trainable(preset.design)
    valid_set = everything.subset(everything.init_rows > train_rows).until(valid_rows).trainable(preset.design)
    for name, part, last in (("training", train_set, train_end), ("selection", valid_set, valid_end)):
        if len(part) == 0:
            raise ValueError(f"no {name} sample with inputs and a target up to {last} "
                             f"(data {data.first_month}..{data.last_month}, preset {preset.name})")
    field = encode_field(preset, data, stats)
    if isinstance(preset.design, ResidualDesign):
        stats.update(fit_linear_base(preset, field, stats, train_set, valid_set))
        stats["grid_damping"] = fit_grid_damping(field, data, train_end)
    fingerprint = data.fingerprint()
    run_key = _run_key(preset, seed, fingerprint, train_end, valid_end, refit)
    epochs = max_epochs if max_epochs is not None else preset.max_epochs
    folder = Path(checkpoint_dir) / f"{preset.name}-{run_key[:16]}" if checkpoint_dir is not None else None

    states, history = _fit_ensemble(preset, stats, SampleTensors(preset, field, stats, data, train_set, device),
                                    SampleTensors(preset, field, stats, data, valid_set, device), seed=seed,
                                    epochs=[epochs] * preset.n_members, folder=folder, run_key=run_key,
                                    progress=progress, stage="")
    model = TrainedModel(
        preset=preset, member_states=states, statistics=stats,
        data_window=_data_window(preset, data, train_set, valid_set, train_end, valid_end),
        validation={}, data_fingerprint=fingerprint, seed=seed, history=history, checkpoint_folder=folder,
    )
    cases = forecast_cases(model, data, valid_set, device)
    anomaly_known = np.isfinite(valid_set.target)
    observed_anomaly = _observed(data, valid_set, data.anomaly, anomaly_known)
    model.validation = _validation_scores(cases, observed_anomaly, valid_set, data)
    if isinstance(preset.design, ResidualDesign):
        target_calendar = (valid_set.init_calendar[:, None] + np.asarray(FORECAST_LEADS)[None, :]) % 12
        oni_known = valid_set.phase >= 0
        stats["anomaly_error_sd"] = calibrate_spread(cases.anomaly, observed_anomaly, target_calendar)
        stats["oni_error_sd"] = calibrate_spread(
            cases.oni, _observed(data, valid_set, data.oni, oni_known), target_calendar)
    if refit:
        _refit(model, data, everything, field, device, progress)
    return model


def _refit(model: TrainedModel, data: ModelData, everything: Samples, field: np.ndarray, device: torch.device,
           progress: bool) -> None:
    """Train the model again on every case up to valid_end, each member for its selected epoch count.

    The statistics fitted on the training period (index bias, linear base, lead-1 map)
    are refitted on every month up to valid_end (the land mask is kept); the base keeps its selected
    penalties; the spread calibration and validation scores stay those of the selection.
    """
    preset = model.preset
    model.selected = (model.member_states, dict(model.statistics))
    stats = model.statistics = dict(model.statistics)
    valid_end = Month.parse(model.data_window["valid_end"])
    last = data.row(valid_end)
    # the land mask stays the training period's: the network's weights and the base's EOFs are shaped by it
    stats["index_bias"] = fit_index_bias(data, valid_end)
    all_set = everything.until(last).trainable(preset.design)
    if isinstance(preset.design, ResidualDesign):
        stats.update(fit_linear_base(preset, field, stats, all_set, None, alphas=stats["base_alpha"]))
        stats["grid_damping"] = fit_grid_damping(field, data, valid_end)
    selected = [_selected_epoch(h) for h in model.history]
    folder = model.checkpoint_folder / "refit" if model.checkpoint_folder is not None else None
    states, history = _fit_ensemble(preset, stats, SampleTensors(preset, field, stats, data, all_set, device), None,
                                    seed=model.seed, epochs=selected, folder=folder,
                                    run_key=f"refit-{model.data_fingerprint}-{model.seed}", progress=progress,
                                    stage="refit ")
    model.member_states = states
    model.data_window.update(refit=True, n_refit=len(all_set), refit_epochs=selected)
    model.history = [h + r for h, r in zip(model.history, history)]


def _selected_epoch(history: list[dict[str, float]]) -> int:
    """The epoch whose weights selection kept: the lowest validation loss (the last epoch if none was scored)."""
    scored = [h for h in history if h.get("valid_loss") is not None]
    return int(min(scored, key=lambda h: h["valid_loss"])["epoch"]) if scored else len(history)


def _fit_ensemble(preset: Preset, stats: dict[str, np.ndarray], train_t: SampleTensors,
                  valid_t: SampleTensors | None, *, seed: int, epochs: list[int], folder: Path | None,
                  run_key: str, progress: bool, stage: str) -> tuple[list[dict[str, Tensor]], list[list[dict]]]:
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    states, history = [], []
    for member in range(preset.n_members):
        checkpoint = folder / f"member-{member}.pt" if folder is not None else None
        state, member_history = _fit_member(preset, stats, train_t, valid_t, member=member, seed=seed,
                                            epochs=epochs[member], checkpoint=checkpoint, run_key=run_key,
                                            progress=progress, stage=stage)
        states.append(state)
        history.append(member_history)
    return states, history


def _observed(data: ModelData, samples: Samples, values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(n, 12) observed ``values`` at each target month, NaN where not ``known`` (e.g. after the period)."""
    rows = samples.init_rows[:, None] + np.asarray(FORECAST_LEADS)[None, :]
    return np.where(known, values[np.clip(rows, 0, data.n_rows - 1)], np.nan)


def _validation_scores(cases: CaseForecasts, observed: np.ndarray, samples: Samples,
                       data: ModelData) -> dict[str, Any]:
    scores = [(verify.acc(cases.anomaly[:, k], observed[:, k]), verify.rmse(cases.anomaly[:, k], observed[:, k]))
              for k in range(len(FORECAST_LEADS))]
    return {
        "lead": list(FORECAST_LEADS),
        "acc": [a.value for a, _ in scores],
        "rmse": [r.value for _, r in scores],
        "n": [a.n for a, _ in scores],
        "first_init": str(data.month(int(samples.init_rows[0]))),
        "last_init": str(data.month(int(samples.init_rows[-1]))),
    }


def _data_window(preset: Preset, data: ModelData, train_set: Samples, valid_set: Samples,
                 train_end: Month, valid_end: Month) -> dict[str, Any]:
    first_init = data.month(int(train_set.init_rows[0]))
    return {
        "first_input_month": str(first_init - (preset.n_timesteps - 1)),
        "train_first_init": str(first_init),
        "train_last_init": str(data.month(int(train_set.init_rows[-1]))),
        "train_end": str(train_end),
        "valid_first_init": str(data.month(int(valid_set.init_rows[0]))),
        "valid_last_init": str(data.month(int(valid_set.init_rows[-1]))),
        "valid_end": str(valid_end),
        "n_train": len(train_set),
        "n_valid": len(valid_set),
        "refit": False,
    }


def _run_key(preset: Preset, seed: int, fingerprint: str, train_end: Month, valid_end: Month, refit: bool) -> str:
    """Identifies a training run, so a checkpoint is only resumed by the run that wrote it."""
    text = json.dumps({"preset": preset.to_dict(), "seed": seed, "data": fingerprint, "refit": refit,
                       "train_end": str(train_end), "valid_end": str(valid_end)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _member_seed(seed: int, member: int) -> int:
    return seed * 1_000 + member


def _optimizer(preset: Preset, net: nn.Module) -> torch.optim.Optimizer:
    skip = set(getattr(net, "no_weight_decay", ()))
    decayed = [p for n, p in net.named_parameters() if n not in skip]
    undecayed = [p for n, p in net.named_parameters() if n in skip]
    groups = [{"params": decayed, "weight_decay": preset.weight_decay}]
    if undecayed:
        groups.append({"params": undecayed, "weight_decay": 0.0})
    optimizer_class = torch.optim.AdamW if preset.optimizer == "adamw" else torch.optim.Adam
    return optimizer_class(groups, lr=preset.learning_rate)


def _loss(preset: Preset, net: nn.Module, data: SampleTensors, idx: Tensor, *, training: bool,
          generator: torch.Generator | None = None) -> Tensor:
    """The design's loss on the cases ``idx`` (forward under bf16 autocast on CUDA, loss in float32)."""
    design = preset.design
    noise = design.input_noise if training and isinstance(design, ResidualDesign) else 0.0
    x = data.inputs(idx, noise, generator)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=data.device.type == "cuda"):
        if isinstance(design, KeydanaDesign):
            grid, index, logits = net(x)
        else:
            forecast = net(x, data.base[idx])
    if isinstance(design, KeydanaDesign):
        # The reference's grid loss: land was set to 0, and every cell whose target is 0 is skipped.
        target_grid = data.field[data.grid_target[idx]]
        cells = target_grid != 0
        grid_loss = F.mse_loss(grid.float()[cells], target_grid[cells])
        index_loss = F.mse_loss(index.float(), data.target[idx, 0])
        phase = data.phase[idx, 0]
        phase_loss = (F.cross_entropy(logits.float(), phase, ignore_index=-1) if (phase >= 0).any()
                      else grid_loss.new_zeros(()))
        w_grid, w_index, w_phase = design.loss_weights
        return w_grid * grid_loss + w_index * index_loss + w_phase * phase_loss
    target = data.target[idx]
    known = torch.isfinite(target)
    return F.mse_loss(forecast.float()[known], target[known])


def _batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[Tensor]:
    """A shuffled split into batches; a last batch of one case joins the previous one (batch norm needs two)."""
    order = torch.randperm(n, generator=generator, device=device)
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and batches[-1].numel() == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


@torch.no_grad()
def _evaluate(preset: Preset, net: nn.Module, data: SampleTensors, batch_size: int = 256) -> float:
    net.eval()
    total = 0.0
    for start in range(0, len(data), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(data)), device=data.device)
        total += float(_loss(preset, net, data, idx, training=False)) * idx.numel()
    return total / len(data)


def _fit_member(preset: Preset, stats: dict[str, np.ndarray], train_t: SampleTensors,
                valid_t: SampleTensors | None, *, member: int, seed: int, epochs: int, checkpoint: Path | None,
                run_key: str, progress: bool, stage: str = "") -> tuple[dict[str, Tensor], list[dict[str, float]]]:
    """Train one ensemble member (resuming from its checkpoint); return its selected weights and history.

    Without ``valid_t`` (a refit) it trains exactly ``epochs`` epochs and keeps the last.
    """
    device = train_t.device
    member_seed = _member_seed(seed, member)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(member_seed)
        net = build_network(preset, stats).to(device)
        optimizer = _optimizer(preset, net)
        generator = torch.Generator(device=device).manual_seed(member_seed)
        progress_state: dict[str, Any] = {"epoch": 0, "best_loss": math.inf, "best_state": None,
                                          "bad_epochs": 0, "stopped": False, "history": []}
        if checkpoint is not None and checkpoint.exists():
            progress_state = _resume(checkpoint, run_key, net, optimizer, generator, device)
        bar = tqdm(total=epochs, initial=min(progress_state["epoch"], epochs), disable=not progress,
                   desc=f"{stage}{preset.name} member {member + 1}/{preset.n_members}", unit="epoch")
        while progress_state["epoch"] < epochs and not progress_state["stopped"]:
            net.train()
            total = 0.0
            for idx in _batches(len(train_t), preset.batch_size, generator, device):
                loss = _loss(preset, net, train_t, idx, training=True, generator=generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * idx.numel()
            train_loss = total / len(train_t)
            valid_loss = _evaluate(preset, net, valid_t) if valid_t is not None else None
            _record_epoch(progress_state, net, preset, train_loss, valid_loss, select=valid_t is not None)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, run_key, net, optimizer, generator, device, progress_state)
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.4f}", **({} if valid_loss is None else {"valid": f"{valid_loss:.4f}"}))
        bar.close()
    keep_best = (valid_t is not None and preset.patience is not None
                 and progress_state["best_state"] is not None)
    final = progress_state["best_state"] if keep_best else net.state_dict()
    return {k: v.detach().cpu().clone() for k, v in final.items()}, progress_state["history"]


def _record_epoch(state: dict[str, Any], net: nn.Module, preset: Preset, train_loss: float,
                  valid_loss: float | None, *, select: bool = True) -> None:
    """Advance the epoch count, history and early-stopping state (model selection on validation loss)."""
    state["epoch"] += 1
    state["history"].append({"epoch": state["epoch"], "train_loss": train_loss, "valid_loss": valid_loss})
    if not select:
        return
    if valid_loss < state["best_loss"]:
        state["best_loss"], state["bad_epochs"] = valid_loss, 0
        state["best_state"] = copy.deepcopy({k: v.detach().cpu() for k, v in net.state_dict().items()})
    else:
        state["bad_epochs"] += 1
    state["stopped"] = preset.patience is not None and state["bad_epochs"] >= preset.patience


def _save_checkpoint(path: Path, run_key: str, net: nn.Module, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator, device: torch.device, state: dict[str, Any]) -> None:
    """Write atomically (:func:`enso.files.atomic_write`): a resumed run never reads half a checkpoint."""
    content = {
        "run_key": run_key,
        "net": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        **state,
    }
    atomic_write(path, lambda tmp: torch.save(content, tmp))


def _resume(path: Path, run_key: str, net: nn.Module, optimizer: torch.optim.Optimizer,
            generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Restore a member from its checkpoint; refuse one written by another run."""
    content = torch.load(path, map_location=device, weights_only=True)
    if content.get("run_key") != run_key:
        raise ValueError(f"checkpoint {path} belongs to another training run (other preset, seed, data or "
                         f"periods); use another checkpoint_dir or delete it")
    net.load_state_dict(content["net"])
    optimizer.load_state_dict(content["optimizer"])
    generator.set_state(content["generator"].cpu())
    torch.set_rng_state(content["cpu_rng"].cpu())
    if content["cuda_rng"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(content["cuda_rng"].cpu(), device)
    return {k: content[k] for k in ("epoch", "best_loss", "best_state", "bad_epochs", "stopped", "history")}
