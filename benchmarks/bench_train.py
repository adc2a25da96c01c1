"""Training throughput, peak memory and inference time of the model presets on this machine.

* Throughput: forward + backward + optimiser step at the preset's batch size, on
  random inputs of the preset's model grid (keydana2021: 1° over 55°S-60N, 115 x
  360; cpu-small: 6° over 30°S-30°N of the 2° ERSST grid), timed over a few
  batches after a warm-up; samples/s. On CUDA the forward runs under bf16
  autocast, as in training.
* Peak memory: the process's peak RSS after each preset (getrusage; cumulative,
  so the smaller preset goes first), or torch.cuda.max_memory_allocated per
  preset on a GPU.
* Inference: ``predict`` of leads 1..12 for one init month (untrained weights,
  inputs from the synthetic climate): cpu-small runs each ensemble member once,
  keydana2021 rolls its grid forward 12 times.
* With ``--gpu`` (automatic when CUDA is available): keydana2021 trained with
  ``train`` at 115 x 360 for 50 epochs in bf16 autocast on the synthetic 1°
  climate 1891-01..2020-08 (train_end 1989-12: 1,182 samples per epoch, batch 4;
  validation 1990-2020 as the reference), wall time in all and per epoch.

Results are also written to benchmarks/results/train.json. About 2 minutes on
2 CPU cores; the GPU training some minutes more.

    make bench-train             # or: python -m benchmarks.bench_train --gpu --gpu-epochs 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr

from enso import grids
from enso.model import TrainedModel, get_preset, predict, train
from enso.model.data import fit_statistics, prepare_data
from enso.model.predict import resolve_device
from enso.model.presets import FORECAST_LEADS, KeydanaDesign, Preset
from enso.model.trained import build_network
from enso.months import Month
from enso.nino34 import PHASES
from enso.synthetic import synthetic_climate

RESULTS = Path(__file__).resolve().parent / "results"
#: Preset, the synthetic climate's resolution (its source grid), in the order measured (smaller first).
PRESETS = (("cpu-small", 2.0), ("keydana2021", 1.0))
INIT_MONTH = Month.of(2001, 12)


def synthetic_data(resolution_deg: float, start: Month | str, end: Month | str,
                   seed: int = 0) -> tuple[xr.DataArray, pd.DataFrame]:
    """An SST cube and its Niño 3.4 index table from the synthetic climate."""
    climate = synthetic_climate(seed, resolution_deg)
    return grids.stack(list(climate.grids(start, end))), climate.index_table(start, end)


def untrained_model(preset: Preset, cube: xr.DataArray, index: pd.DataFrame) -> TrainedModel:
    """A model of the preset with freshly initialised weights and statistics of the cube (to time forecasts)."""
    data = prepare_data(cube, index, preset.grid)
    stats = fit_statistics(preset, data, data.last_month)
    if not isinstance(preset.design, KeydanaDesign):
        n_leads = len(FORECAST_LEADS)
        stats.update(damping=np.zeros((12, n_leads)), oni_error_sd=np.full(n_leads, 0.5))
    states = [build_network(preset, stats).state_dict() for _ in range(preset.n_members)]
    return TrainedModel(preset=preset, member_states=states, statistics=stats, data_window={}, validation={},
                        data_fingerprint=data.fingerprint(), seed=0)


def throughput(model: TrainedModel, device: torch.device, warmup: int, batches: int) -> float:
    """Samples/s of forward + backward + optimiser step on random inputs at the preset's batch size."""
    preset = model.preset
    torch.manual_seed(0)
    net = build_network(preset, model.statistics).to(device).train()
    optimizer = (torch.optim.AdamW if preset.optimizer == "adamw" else torch.optim.Adam)(
        net.parameters(), lr=preset.learning_rate, weight_decay=preset.weight_decay)
    b, shape = preset.batch_size, tuple(model.statistics["land"].shape)
    keydana = isinstance(preset.design, KeydanaDesign)
    channels = 1 if keydana else 4
    x = torch.randn(b, preset.n_timesteps, channels, *shape, device=device)
    persistence, calendar = torch.randn(b, device=device), torch.randint(0, 12, (b,), device=device)
    target_grid, target = torch.randn(b, *shape, device=device), torch.randn(b, len(FORECAST_LEADS), device=device)
    phase = torch.randint(0, len(PHASES), (b,), device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = net(x) if keydana else net(x, persistence, calendar)
        if keydana:
            grid, index, logits = out
            w_grid, w_index, w_phase = preset.design.loss_weights  # type: ignore[union-attr]
            loss = (w_grid * F.mse_loss(grid.float(), target_grid) + w_index * F.mse_loss(index.float(), target[:, 0])
                    + w_phase * F.cross_entropy(logits.float(), phase))
        else:
            loss = F.mse_loss(out.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(batches):
        step()
    synchronize(device)
    return batches * b / (time.perf_counter() - t0)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference_seconds(model: TrainedModel, cube: xr.DataArray, index: pd.DataFrame, device: torch.device,
                      repeats: int = 3) -> float:
    """Median wall time of ``predict`` for leads 1..12 of one init month (after one warm-up call)."""
    predict(model, cube, index, [INIT_MONTH], device=device)
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        predict(model, cube, index, [INIT_MONTH], device=device)
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_memory_mib(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA) or the process's peak RSS so far (CPU; ru_maxrss is KiB on Linux)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, resolution_deg: float, device: torch.device, warmup: int, batches: int) -> dict:
    """Throughput, peak memory and inference time of one preset."""
    preset = get_preset(name)
    history = preset.n_timesteps + (12 * preset.design.detrend_years if not isinstance(preset.design, KeydanaDesign)
                                    else 0)
    cube, index = synthetic_data(resolution_deg, INIT_MONTH - history, INIT_MONTH + 12)
    model = untrained_model(preset, cube, index)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rate = throughput(model, device, warmup, batches)
    peak = peak_memory_mib(device)
    seconds = inference_seconds(model, cube, index, device)
    net = build_network(preset, model.statistics)
    return {"grid": list(model.statistics["land"].shape), "source_resolution_deg": resolution_deg,
            "batch_size": preset.batch_size, "parameters": sum(p.numel() for p in net.parameters()),
            "members": preset.n_members, "train_samples_per_s": round(rate, 2),
            "peak_memory_mib": round(peak, 1),
            "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS so far",
            "inference_leads_1_12_s": round(seconds, 3)}


def gpu_training(device: torch.device, epochs: int, preset_name: str = "keydana2021",
                 resolution_deg: float = 1.0) -> dict:
    """Train a preset with ``train`` on the synthetic climate 1891-01..2020-08 (train_end 1989-12), timed."""
    preset = get_preset(preset_name)
    cube, index = synthetic_data(resolution_deg, "1891-01", "2020-08")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    t0 = time.perf_counter()
    model = train(preset, cube, index, train_end="1989-12", valid_end="2020-08", device=device, max_epochs=epochs)
    synchronize(device)
    seconds = time.perf_counter() - t0
    return {"preset": preset.name, "grid": list(model.statistics["land"].shape), "epochs": epochs,
            "samples_per_epoch": model.data_window["n_train"], "batch_size": preset.batch_size,
            "autocast": "bf16" if device.type == "cuda" else "none", "seconds": round(seconds, 1),
            "seconds_per_epoch": round(seconds / epochs, 2),
            "note": "train() wall time: the epochs, the validation loss after each, the final validation rollout",
            "last_epoch": model.history[0][-1], "peak_memory_mib": round(peak_memory_mib(device), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches before timing")
    parser.add_argument("--batches", type=int, default=5, help="timed batches")
    parser.add_argument("--gpu", action="store_true", help="also time keydana2021 for --gpu-epochs epochs "
                        "(default when CUDA is available)")
    parser.add_argument("--gpu-epochs", type=int, default=50)
    args = parser.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if args.gpu and not cuda:
        raise SystemExit("--gpu needs a CUDA device (torch.cuda.is_available() is False here)")
    device_text = (f"cuda ({torch.cuda.get_device_name(device)})" if cuda
                   else f"cpu ({platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()})")
    print(f"device {device_text}; torch {torch.__version__}")

    result: dict = {"device": device_text, "torch": torch.__version__, "warmup_batches": args.warmup,
                    "timed_batches": args.batches, "presets": {}}
    for name, resolution in PRESETS:
        figures = measure(name, resolution, device, args.warmup, args.batches)
        result["presets"][name] = figures
        print(f"{name:<12} grid {figures['grid'][0]}x{figures['grid'][1]}, batch {figures['batch_size']}, "
              f"{figures['parameters']:,} parameters: {figures['train_samples_per_s']:.1f} samples/s "
              f"(forward+backward), peak memory {figures['peak_memory_mib']:.0f} MiB "
              f"({figures['peak_memory_kind']}), leads 1-12 of one init month in "
              f"{figures['inference_leads_1_12_s']:.3f} s ({figures['members']} member(s))")
    keydana = result["presets"]["keydana2021"]
    epoch_samples = 1182
    print(f"keydana2021 at this rate: {epoch_samples / keydana['train_samples_per_s'] / 60:.1f} min per epoch of "
          f"{epoch_samples} samples (forward+backward only)")
    if args.gpu or cuda:
        result["gpu_training"] = gpu_training(device, args.gpu_epochs)
        run = result["gpu_training"]
        print(f"keydana2021 trained {run['epochs']} epochs at {run['grid'][0]}x{run['grid'][1]} "
              f"({run['samples_per_epoch']} samples/epoch, batch {run['batch_size']}, {run['autocast']} autocast): "
              f"{run['seconds']:.0f} s, {run['seconds_per_epoch']:.1f} s/epoch, peak {run['peak_memory_mib']:.0f} MiB")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {RESULTS / 'train.json'}")


if __name__ == "__main__":
    main()
