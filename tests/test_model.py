"""The model package: networks, presets, sample alignment, training, checkpoints, serialisation, prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from enso import grids, nino34, verify
from enso.model.convlstm import ConvLSTM, ConvLSTMCell
from enso.model import base
from enso.model.data import (MAX_INDEX_MISMATCH_SD, SampleTensors, base_features, build_samples, encode_field,
                             fit_linear_base, fit_statistics, model_table, prepare_data, trailing_climatology)
from enso.model.networks import AnomalyResidualNet, KeydanaNet
from enso.model.phases import MIN_SIGMA, calibrate_spread, forecast_oni, spread_at
from enso.model.predict import input_history_months, predict
from enso.model.presets import PRESETS, GridSpec, Preset, ResidualDesign, get_preset
from enso.model.train import TrainedModel, train
from enso.model.trained import build_network
from enso.months import Month, month_range
from enso.synthetic import synthetic_grids, synthetic_index_table

torch.set_num_threads(1)

TRAIN_END, VALID_END = "1979-12", "1984-12"
#: The synthetic climate on a 10° grid: 18 x 36 cells (6 x 36 in the tiny preset's 30°S-30°N).
RESOLUTION = 10.0
#: The reference network with few ConvLSTM channels, on the grid cropped to 70°S-70°N (14 x 36).
KEYDANA_SMALL = get_preset("keydana2021").replace(
    grid=GridSpec(lat_range=(-70.0, 70.0)), hidden_channels=(4, 4, 8), kernel_sizes=(3, 3, 5), max_epochs=2)


def synthetic(first: str = "1950-01", last: str = "1989-12", seed: int = 0) -> tuple[xr.DataArray, pd.DataFrame]:
    """The shared synthetic climate's SST cube and Niño 3.4 index table."""
    cube = grids.stack(list(synthetic_grids(first, last, seed=seed, resolution_deg=RESOLUTION)))
    return cube, synthetic_index_table(first, last, seed=seed, resolution_deg=RESOLUTION)


def month_encoded(first: str, last: str) -> tuple[xr.DataArray, pd.DataFrame]:
    """A cube whose every ocean cell, and an index whose Niño 3.4, hold the month's ordinal number."""
    cube, _ = synthetic(first, last)
    ordinal = np.array([Month.of(p.year, p.month).ordinal for p in cube.month.values], dtype=np.float64)
    values = np.where(np.isnan(cube.values), np.nan, ordinal[:, None, None]).astype(np.float32)
    months = pd.PeriodIndex(cube.month.values, freq="M")
    index = pd.DataFrame({"nino34": ordinal, "anomaly": np.zeros(ordinal.size), "oni": np.zeros(ordinal.size),
                          "phase": nino34.NEUTRAL}, index=months)
    return cube.copy(data=values), index


def assert_same_forecasts(frame: pd.DataFrame, other: pd.DataFrame) -> None:
    """Equal forecast frames, lead-1 maps included (NaN on land counts as equal)."""
    pd.testing.assert_frame_equal(frame.drop(columns="sst_anomaly_grid"), other.drop(columns="sst_anomaly_grid"))
    for grid, other_grid in zip(frame["sst_anomaly_grid"], other["sst_anomaly_grid"]):
        assert (grid is None) == (other_grid is None)
        if grid is not None:
            xr.testing.assert_identical(grid, other_grid)


@pytest.fixture(scope="module")
def data() -> tuple[xr.DataArray, pd.DataFrame]:
    return synthetic()


@pytest.fixture(scope="module")
def tiny_model(data: tuple[xr.DataArray, pd.DataFrame]) -> TrainedModel:
    cube, index = data
    return train("tiny", cube, index, train_end=TRAIN_END, valid_end=VALID_END, progress=False)


@pytest.fixture(scope="module")
def keydana_model(data: tuple[xr.DataArray, pd.DataFrame]) -> TrainedModel:
    cube, index = data
    return train(KEYDANA_SMALL, cube, index, train_end=TRAIN_END, valid_end=VALID_END, progress=False)


def _states_equal(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


# --------------------------------------------------------------------------- networks

def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_keydana_net_has_the_published_parameter_counts() -> None:
    stats = {"land": np.zeros((115, 360), dtype=bool), "lat": np.arange(115.0), "lon": np.arange(360.0)}
    net = build_network(get_preset("keydana2021"), stats)
    assert isinstance(net, KeydanaNet)
    assert _count(net) == 2_389_605
    components = {name: _count(child) for name, child in net.named_children()}
    assert components == {
        "convlstm": 182_080, "conv1": 801, "conv2": 25_632, "conv3": 25_632, "linear": 2_138_176,
        "batchnorm": 128, "index_hidden": 8_320, "phase_hidden": 8_320, "index_out": 129, "phase_out": 387,
    }
    grid, index, phase = KeydanaNet((20, 30), (2, 2, 4), (3, 3, 5))(torch.zeros(2, 6, 1, 20, 30))
    assert grid.shape == (2, 20, 30) and index.shape == (2,) and phase.shape == (2, 3)


def test_keydana_net_rejects_a_grid_too_small_for_its_heads() -> None:
    with pytest.raises(ValueError, match="10x60 is too small"):
        KeydanaNet((10, 60))


def test_cpu_small_network_is_the_small_convlstm_of_the_notes() -> None:
    net = AnomalyResidualNet(4, (8, 8), (3, 3), n_leads=12, head_channels=4, pool_size=(3, 12), dropout=0.5)
    # 9,904 parameters as in modeling-notes.md, plus one base weight per lead.
    assert _count(net) == 9_904 + 12


def test_convlstm_chains_layers_and_starts_from_zero_state() -> None:
    torch.manual_seed(0)
    stack = ConvLSTM(2, (3, 5), (3, 3))
    x = torch.randn(2, 4, 2, 6, 8)
    out, states = stack(x)
    assert out.shape == (2, 4, 5, 6, 8) and len(states) == 2
    # By hand: layer 1 over the sequence from zero state, its outputs feed layer 2.
    sequence = x
    for cell in stack.cells:
        state = cell.zero_state(sequence[:, 0])
        steps = []
        for t in range(sequence.shape[1]):
            state = cell(sequence[:, t], state)
            steps.append(state[0])
        sequence = torch.stack(steps, 1)
    assert torch.allclose(sequence, out)
    assert torch.equal(stack(x)[0], out)  # nothing carried over between sequences


def test_circular_padding_wraps_longitude_and_forget_bias_is_added() -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell(1, 2, 3, circular_lon=True)
    torch.manual_seed(0)
    plain = ConvLSTMCell(1, 2, 3, circular_lon=True, forget_bias=1.0)
    assert torch.allclose(plain.conv.bias - cell.conv.bias, torch.tensor([0, 0, 1, 1, 0, 0, 0, 0.0]))
    x = torch.randn(1, 1, 5, 12)
    h, _ = cell(x, cell.zero_state(x))
    h_rolled, _ = cell(torch.roll(x, 4, dims=-1), cell.zero_state(x))
    assert torch.allclose(torch.roll(h, 4, dims=-1), h_rolled, atol=1e-6)
    edged = ConvLSTMCell(1, 2, 3)
    h, _ = edged(x, edged.zero_state(x))
    h_rolled, _ = edged(torch.roll(x, 4, dims=-1), edged.zero_state(x))
    assert not torch.allclose(torch.roll(h, 4, dims=-1), h_rolled, atol=1e-6)


def test_residual_network_starts_exactly_at_its_linear_base() -> None:
    preset = get_preset("tiny")
    stats = {"land": np.zeros((6, 24), dtype=bool), "lat": np.arange(6.0), "lon": np.arange(0.0, 360.0, 15.0)}
    net = build_network(preset, stats)
    x = torch.randn(5, preset.n_timesteps, 4, 6, 24)
    linear = torch.randn(5, 12)
    for mode in (net.train, net.eval):
        mode()
        assert torch.equal(net(x, linear), linear)


# --------------------------------------------------------------------------- presets

def test_presets_round_trip_through_json() -> None:
    for preset in PRESETS.values():
        assert Preset.from_json(preset.to_json()) == preset
    assert get_preset("keydana2021").grid.lat_range == (-55.0, 60.0)
    with pytest.raises(ValueError, match="unknown model preset 'nope'"):
        get_preset("nope")


# --------------------------------------------------------------------------- samples

def test_keydana_samples_align_inputs_and_targets_with_months() -> None:
    """Every value encodes its month: window = init-5..init, grid target = init+1, lead L = init+L."""
    cube, index = month_encoded("1960-01", "1969-12")
    preset = KEYDANA_SMALL
    prepared = prepare_data(cube, index, preset.grid)
    stats = fit_statistics(preset, prepared, Month.parse("1969-12"))
    samples = build_samples(preset, prepared, stats)
    tensors = SampleTensors(preset, encode_field(preset, prepared, stats), stats, prepared, samples,
                            torch.device("cpu"))
    inputs = tensors.inputs(torch.arange(len(samples))).numpy()  # (n, 6, 1, H, W), what the network reads
    mean, sd = float(stats["sst_mean"]), float(stats["sst_std"])
    ocean = ~stats["land"]
    assert len(samples) == 120 - 5
    for i in range(len(samples)):
        init = prepared.month(int(samples.init_rows[i]))
        window = np.round(inputs[i, :, 0][:, ocean] * sd + mean).astype(int)
        assert (window == np.arange(init.ordinal - 5, init.ordinal + 1)[:, None]).all()
        assert (inputs[i, :, 0][:, ~ocean] == 0).all()
        if samples.grid_target[i] >= 0:
            grid = tensors.field[samples.grid_target[i]].numpy()[ocean] * sd + mean
            assert np.allclose(grid, (init + 1).ordinal, atol=1e-3)
        decoded = samples.target[i] * samples.target_scale + samples.target_offset[i]
        known = np.isfinite(decoded)
        assert np.allclose(decoded[known], init.ordinal + np.arange(1, 13)[known], atol=1e-2)
        assert known.sum() == min(12, (Month.parse("1969-12") - init))


def test_residual_samples_match_a_direct_computation() -> None:
    """Inputs and targets are anomalies against the same calendar month's mean over the preceding years."""
    cube, index = synthetic("1950-01", "1969-12", seed=3)
    preset = get_preset("tiny")
    years = preset.design.detrend_years
    preset = preset.replace(design=ResidualDesign(detrend_years=years, detrend_min_years=years))
    prepared = prepare_data(cube, index, preset.grid)
    stats = fit_statistics(preset, prepared, Month.parse("1969-12"))
    samples = build_samples(preset, prepared, stats)
    tensors = SampleTensors(preset, encode_field(preset, prepared, stats), stats, prepared, samples,
                            torch.device("cpu"))
    sst = grids.crop(cube, preset.grid.lat_range).values.astype(np.float64)
    n34 = index["nino34"].to_numpy()
    cal = index.index.month.to_numpy()

    def anomaly(values: np.ndarray, row: int) -> np.ndarray:
        return values[row] - np.mean([values[row - 12 * k] for k in range(1, years + 1)], axis=0)

    first_init = 12 * years + preset.n_timesteps - 1  # the first month with `years` earlier years for its window
    assert prepared.month(int(samples.init_rows[0])) == Month.parse("1950-01") + first_init
    inputs = tensors.inputs(torch.arange(len(samples))).numpy()
    ocean = ~stats["land"]
    for i in range(0, len(samples), 7):
        t = int(samples.init_rows[i])
        for step in range(preset.n_timesteps):
            m = t - preset.n_timesteps + 1 + step
            assert np.allclose(inputs[i, step, 0][ocean], anomaly(sst, m)[ocean], atol=1e-4)
            assert np.allclose(inputs[i, step, 2], np.sin(2 * np.pi * (cal[m] - 1) / 12), atol=1e-6)
            assert np.allclose(inputs[i, step, 3], np.cos(2 * np.pi * (cal[m] - 1) / 12), atol=1e-6)
        assert np.array_equal(inputs[i, 0, 1], stats["land"].astype(np.float32))
        assert np.isclose(samples.persistence[i], anomaly(n34, t), atol=1e-5)
        for lead in range(1, 13):
            if t + lead < len(n34):
                assert np.isclose(samples.target[i, lead - 1], anomaly(n34, t + lead), atol=1e-5)
                assert np.isclose(samples.target[i, lead - 1] + samples.target_offset[i, lead - 1], n34[t + lead])
            else:
                assert np.isnan(samples.target[i, lead - 1])


def test_trailing_climatology_matches_a_loop_and_skips_gaps() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=100)
    values[[5, 17, 29, 60]] = np.nan
    out = trailing_climatology(values, years=3, min_years=2)
    for m in range(100):
        earlier = [values[m - 12 * k] for k in range(3) if m - 12 * k >= 0]
        known = [v for v in earlier if np.isfinite(v)]
        expected = np.mean(known) if len(known) >= 2 else np.nan
        assert np.isclose(out[m], expected, equal_nan=True)


def test_linear_base_is_a_ridge_on_training_eofs_that_never_sees_later_months(
        data: tuple[xr.DataArray, pd.DataFrame]) -> None:
    cube, index = data
    preset = get_preset("tiny")
    train_end = Month.parse(TRAIN_END)

    def fitted(sst: xr.DataArray) -> tuple[dict, np.ndarray, object]:
        prepared = prepare_data(sst, index, preset.grid, last=Month.parse(VALID_END))
        stats = fit_statistics(preset, prepared, train_end)
        samples = build_samples(preset, prepared, stats)
        row = prepared.row(train_end)
        train_set = samples.subset(samples.init_rows <= row).until(row).trainable(preset.design)
        select = samples.subset(samples.init_rows > row).until(prepared.row(Month.parse(VALID_END)))
        field = encode_field(preset, prepared, stats)
        return {**stats, **fit_linear_base(preset, field, stats, train_set, select)}, field, train_set

    stats, field, train_set = fitted(cube)
    assert stats["base_patterns"].shape[0] == preset.design.ridge_eofs
    # With the smallest penalty the coefficients are close to least squares on standardised features.
    x = base_features(preset, field, stats, train_set)
    tiny = fit_linear_base(preset, field, stats, train_set, None, alphas=np.full(12, 1e-9))
    xs = (x - tiny["base_mean"]) / tiny["base_sd"]
    known = np.isfinite(train_set.target[:, 2])
    design = np.column_stack([xs[known], np.ones(known.sum())])
    expected = np.linalg.lstsq(design, train_set.target[known, 2].astype(float), rcond=None)[0]
    assert np.allclose(tiny["base_coef"][2], expected, atol=1e-4)
    # Grids after the selection window change nothing; grids in it change the penalties only through selection.
    after = np.asarray(pd.PeriodIndex(cube.month.values, freq="M") > pd.Period(VALID_END, freq="M"))
    later = cube.copy(data=np.where(after[:, None, None], cube.values + 3.0, cube.values))
    other, _, _ = fitted(later)
    for key in ("base_patterns", "base_coef", "base_alpha", "base_mean"):
        assert np.array_equal(stats[key], other[key])


def test_linear_base_seasonal_persistence_terms_and_older_presets() -> None:
    """Persistence x sin/cos of the init month follow the PCs and persistence; a preset stored before the
    option existed (no ``ridge_seasonal`` key) rebuilds exactly the features it was trained with."""
    rng = np.random.default_rng(3)
    field = rng.normal(size=(40, 2, 3)).astype(np.float32)
    land = np.zeros((2, 3), dtype=bool)
    patterns = rng.normal(size=(4, 6))
    window = np.stack([np.arange(m, m + 3) for m in range(30)])
    persistence = rng.normal(size=30)
    calendar = np.arange(30) % 12
    plain = base.features(field, window, persistence, land, patterns, lags=2)
    seasonal = base.features(field, window, persistence, land, patterns, lags=2, init_calendar=calendar)
    assert plain.shape == (30, 2 * 4 + 1) and seasonal.shape == (30, 2 * 4 + 3)
    assert np.array_equal(seasonal[:, :9], plain)
    angle = 2 * np.pi * calendar / 12
    assert np.allclose(seasonal[:, 9], persistence * np.sin(angle))
    assert np.allclose(seasonal[:, 10], persistence * np.cos(angle))
    # January inits (calendar 0): the sine term vanishes and the cosine term is persistence itself.
    assert np.allclose(seasonal[calendar == 0, 9], 0) and np.allclose(seasonal[calendar == 0, 10],
                                                                       persistence[calendar == 0])
    assert PRESETS["cpu-small"].design.ridge_seasonal and PRESETS["cpu-small"].design.ridge_eofs == 16
    stored = PRESETS["cpu-small"].to_dict()
    del stored["design"]["ridge_seasonal"]
    assert Preset.from_dict(stored).design.ridge_seasonal is False


# --------------------------------------------------------------------------- training

def test_training_on_synthetic_data_learns_and_records_its_provenance(tiny_model: TrainedModel) -> None:
    model = tiny_model
    assert model.name == "tiny" and len(model.member_states) == 2
    assert model.data_window["train_end"] == TRAIN_END and model.data_window["valid_end"] == VALID_END
    assert model.data_window["valid_first_init"] == "1980-01"
    assert Month.parse(model.data_window["train_last_init"]) <= Month.parse(TRAIN_END)
    assert model.validation["lead"] == list(range(1, 13))
    # The synthetic oscillation is very persistent at lead 1; its anomalies have sd ~1 °C.
    assert model.validation["acc"][0] > 0.85 and model.validation["rmse"][0] < 0.5
    assert all(2 <= len(h) <= 6 for h in model.history)  # selection epochs, then the refit's
    assert len(model.data_fingerprint) == 64
    for key in ("oni_error_sd", "anomaly_error_sd"):
        sigma = model.statistics[key]
        assert sigma.shape == (12, 12) and (np.diff(sigma, axis=1) >= 0).all() and (sigma >= MIN_SIGMA).all()
    # tiny refits on every month after selection, with each member's selected epoch count
    assert model.data_window["refit"] and model.data_window["n_refit"] > model.data_window["n_train"]
    assert all(1 <= e <= 3 for e in model.data_window["refit_epochs"])


def test_validation_scores_align_forecasts_with_their_target_months(
        data: tuple[xr.DataArray, pd.DataFrame]) -> None:
    """The scores stored with the model equal its forecasts joined with observations by target month.

    (Without the refit: a refitted model keeps the scores of the weights that selection saw.)"""
    cube, index = data
    tiny_model = train("tiny", cube, index, train_end=TRAIN_END, valid_end=VALID_END, progress=False, refit=False)
    assert not tiny_model.data_window["refit"]
    inits = month_range(tiny_model.validation["first_init"], tiny_model.validation["last_init"])
    frame = predict(tiny_model, cube, index, inits, device="cpu")
    frame = frame[frame["target_month"] <= pd.Period(VALID_END, freq="M")]
    observed = index["anomaly"].reindex(frame["target_month"]).to_numpy()
    for lead in (1, 4, 12):
        sel = (frame["lead"] == lead).to_numpy()
        score = verify.acc(frame["nino34_anomaly"].to_numpy()[sel], observed[sel])
        assert score.n == tiny_model.validation["n"][lead - 1]
        assert np.isclose(score.value, tiny_model.validation["acc"][lead - 1])


def test_training_is_seeded_and_resumes_from_a_checkpoint(data: tuple[xr.DataArray, pd.DataFrame],
                                                         tiny_model: TrainedModel, tmp_path) -> None:
    cube, index = data
    kwargs = dict(train_end=TRAIN_END, valid_end=VALID_END, progress=False)
    # Interrupted after one epoch, then resumed: the same weights as the uninterrupted run.
    first = train("tiny", cube, index, checkpoint_dir=tmp_path, max_epochs=1, **kwargs)
    assert all(len(h) == 2 for h in first.history)  # one epoch, then one epoch of refit
    resumed = train("tiny", cube, index, checkpoint_dir=tmp_path, **kwargs)
    assert _states_equal(resumed.member_states, tiny_model.member_states)
    assert resumed.history == tiny_model.history
    again = train("tiny", cube, index, **kwargs)
    assert _states_equal(again.member_states, tiny_model.member_states)
    other_seed = train("tiny", cube, index, seed=1, max_epochs=1, checkpoint_dir=tmp_path, **kwargs)
    assert not _states_equal(other_seed.member_states, first.member_states)
    # each run has its own checkpoint folder under the root: another run never trips on this one's files
    assert other_seed.checkpoint_folder != resumed.checkpoint_folder
    assert {p.name for p in tmp_path.iterdir()} == {resumed.checkpoint_folder.name, other_seed.checkpoint_folder.name}
    assert (resumed.checkpoint_folder / "refit" / "member-0.pt").exists()


def test_training_refuses_an_empty_validation_period(data: tuple[xr.DataArray, pd.DataFrame]) -> None:
    cube, index = data
    with pytest.raises(ValueError, match="no selection sample"):
        train("tiny", cube, index, train_end="1989-12", valid_end="1995-12", progress=False)


# --------------------------------------------------------------------------- prediction

def test_predict_gives_twelve_leads_with_probabilities(data: tuple[xr.DataArray, pd.DataFrame],
                                                       tiny_model: TrainedModel) -> None:
    cube, index = data
    frame = predict(tiny_model, cube, index, ["1987-06", "1985-01"], device="cpu")
    assert len(frame) == 24
    assert list(frame["lead"]) == list(range(1, 13)) * 2
    assert (frame["target_month"] == frame["init_month"] + frame["lead"]).all()
    assert str(frame["init_month"].iloc[0]) == "1985-01"
    probabilities = frame[["p_la_nina", "p_neutral", "p_el_nino"]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0) and (probabilities >= 0).all()
    assert set(frame["phase"]) <= set(nino34.PHASES)
    assert (frame["phase"] == [nino34.phase_of(v) for v in frame["oni"]]).all()
    climatology = (index["nino34"] - index["anomaly"]).groupby(index.index.month).mean()
    expected = climatology.reindex(frame["target_month"].dt.month).to_numpy()
    assert np.allclose(frame["nino34"] - frame["nino34_anomaly"], expected)
    lead1 = frame["lead"] == 1
    assert frame.loc[~lead1, "sst_anomaly_grid"].isna().all()
    assert all(isinstance(g, xr.DataArray) for g in frame.loc[lead1, "sst_anomaly_grid"])


def test_a_residual_model_maps_lead1_sst_by_damped_persistence(data: tuple[xr.DataArray, pd.DataFrame],
                                                               tiny_model: TrainedModel) -> None:
    cube, index = data
    grid = predict(tiny_model, cube, index, ["1987-06"], device="cpu")["sst_anomaly_grid"].iloc[0]
    assert grid.attrs["target_month"] == "1987-07"
    land = tiny_model.statistics["land"]
    assert np.isnan(grid.values[land]).all() and np.isfinite(grid.values[~land]).all()
    # The June 1987 anomaly against the Junes of the preceding detrend_years, straight from the cube.
    years = tiny_model.preset.design.detrend_years
    tropics = grids.coarsen(cube.sel(lat=slice(-30, 30)), tiny_model.preset.grid.resolution_deg)
    junes = tropics.sel(month=[f"{y}-06" for y in range(1987 - years, 1987)]).mean("month")
    anomaly = (tropics.sel(month="1987-06").squeeze() - junes).values
    damping = tiny_model.statistics["grid_damping"][5]
    assert np.allclose(grid.values[~land], (damping * anomaly)[~land], atol=1e-5)
    # The synthetic climate's anomalies persist from one month to the next, and decay.
    assert 0.3 < np.median(damping[~land]) < 1.0


def test_predict_beyond_the_data_and_needs_every_input_month(data: tuple[xr.DataArray, pd.DataFrame],
                                                             tiny_model: TrainedModel) -> None:
    cube, index = data
    frame = predict(tiny_model, cube, index, ["1989-12"], device="cpu")
    assert frame["target_month"].iloc[-1] == pd.Period("1990-12", freq="M")
    assert frame["nino34_anomaly"].notna().all()
    gappy = cube.drop_sel(month=pd.Period("1986-03", freq="M"))
    with pytest.raises(ValueError, match="no SST grid for 1986-03"):
        predict(tiny_model, gappy, index, ["1986-04"], device="cpu")
    with pytest.raises(ValueError, match="no SST grid for 1990-01"):
        predict(tiny_model, cube, index, ["1990-01"], device="cpu")
    with pytest.raises(ValueError, match="no value for 1987-02"):
        predict(tiny_model, cube, index.drop(pd.Period("1987-02", freq="M")), ["1987-02"], device="cpu")
    with pytest.raises(ValueError, match="needs grids of at least"):
        predict(tiny_model, cube.sel(month=slice("1985-01", None)), index, ["1987-02"], device="cpu")
    with pytest.raises(ValueError, match="model grid"):
        predict(tiny_model, cube.isel(lon=slice(0, 30)), index, ["1987-02"], device="cpu")


def test_predict_reads_only_the_history_it_declares(data: tuple[xr.DataArray, pd.DataFrame],
                                                    tiny_model: TrainedModel) -> None:
    cube, index = data
    init = Month.parse("1987-06")
    first = init - input_history_months(tiny_model.preset)
    assert first > Month.parse("1950-01")
    short = cube.sel(month=slice(str(first), str(init)))
    assert_same_forecasts(predict(tiny_model, short, index, [init], device="cpu"),
                          predict(tiny_model, cube, index, [init], device="cpu"))


def test_serialised_model_gives_identical_predictions(data: tuple[xr.DataArray, pd.DataFrame],
                                                      tiny_model: TrainedModel) -> None:
    cube, index = data
    restored = TrainedModel.from_bytes(tiny_model.to_bytes())
    assert restored.preset == tiny_model.preset and restored.validation == tiny_model.validation
    assert restored.data_window == tiny_model.data_window and restored.data_fingerprint == tiny_model.data_fingerprint
    assert _states_equal(restored.member_states, tiny_model.member_states)
    inits = ["1985-01", "1988-07"]
    assert_same_forecasts(predict(restored, cube, index, inits, device="cpu"),
                          predict(tiny_model, cube, index, inits, device="cpu"))


def test_keydana_reference_trains_and_forecasts_grids(data: tuple[xr.DataArray, pd.DataFrame],
                                                      keydana_model: TrainedModel) -> None:
    cube, index = data
    model = TrainedModel.from_bytes(keydana_model.to_bytes())
    assert len(model.history[0]) == 2  # no early stopping: the last epoch's model, as the reference
    assert {"sst_mean", "sst_std", "nino34_mean", "nino34_std"} <= set(model.statistics)
    frame = predict(model, cube, index, ["1986-05"], device="cpu")
    assert len(frame) == 12
    probabilities = frame[["p_la_nina", "p_neutral", "p_el_nino"]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert (frame["phase"] == [nino34.PHASES[k] for k in probabilities.argmax(axis=1)]).all()
    grid = frame["sst_anomaly_grid"].iloc[0]
    assert isinstance(grid, xr.DataArray) and grid.shape == (14, 36)
    assert grid.attrs["target_month"] == "1986-06"
    assert np.array_equal(np.isnan(grid.values), model.statistics["land"])
    assert frame["sst_anomaly_grid"].iloc[1:].isna().all()
    assert_same_forecasts(frame, predict(keydana_model, cube, index, ["1986-05"], device="cpu"))


# --------------------------------------------------------------------------- phase probabilities

def test_forecast_oni() -> None:
    anomaly = np.array([[1.0, 2.0, 3.0] + [0.0] * 9])
    oni = forecast_oni(anomaly, np.array([0.0]))
    assert np.allclose(oni[0, :3], [1.0, 2.0, 5.0 / 3.0]) and np.isclose(oni[0, 11], 0.0)
    assert np.isclose(forecast_oni(anomaly, np.array([np.nan]))[0, 0], 1.5)


def test_spread_is_calibrated_per_target_month_and_lead() -> None:
    """Errors with a known sd that depends on the target month (a spring barrier) are recovered."""
    rng = np.random.default_rng(3)
    n = 600  # 50 years of monthly inits
    init_calendar = np.arange(n) % 12
    target_calendar = (init_calendar[:, None] + np.arange(1, 13)[None, :]) % 12
    season = 0.6 + 0.3 * np.cos(2 * np.pi * (target_calendar - 4) / 12)  # 0.9 in May, 0.3 in November
    true_sd = season * np.sqrt(np.arange(1, 13) / 12)[None, :]
    errors = rng.normal(0.0, true_sd)
    spread = calibrate_spread(errors, np.zeros_like(errors), target_calendar)
    assert spread.shape == (12, 12) and (np.diff(spread, axis=1) >= 0).all()
    at = spread_at(spread, target_calendar)
    # close to the truth in the middle of each season (neighbour pooling blurs the edges)
    for month, sd in ((4, 0.9), (10, 0.3)):
        sel = target_calendar[:, 11] == month
        assert abs(at[sel, 11].mean() - sd) < 0.15
    # calibrated probabilities of exceeding 1 sd are right; an over- or under-confident spread is not
    z = errors / at
    assert abs(np.mean(np.abs(z) > 1.0) - 0.317) < 0.03
    assert np.mean(np.abs(errors / (0.5 * at)) > 1.0) > 0.5 and np.mean(np.abs(errors / (2 * at)) > 1.0) < 0.1
    with pytest.raises(ValueError, match="no observed target at lead 1"):
        calibrate_spread(np.full((1, 12), np.nan), np.zeros((1, 12)), target_calendar[:1])


# --------------------------------------------------------------------------- the whole record

def test_the_grids_own_nino34_trains_on_the_whole_record_and_forecasts_in_the_index_convention(
        data: tuple[xr.DataArray, pd.DataFrame]) -> None:
    cube, index = data
    box = pd.Series(grids.box_mean(cube.values, cube.lat.values, cube.lon.values),
                    index=pd.PeriodIndex(cube.month.values, freq="M"))
    # an index that starts 15 years after the grids and reads 0.4 °C warmer than their box mean
    late = index[index.index >= pd.Period("1965-01", freq="M")].copy()
    late["nino34"] = box.reindex(late.index).to_numpy() + 0.4
    table = model_table(box, late)
    model = train("tiny", cube, table, train_end=TRAIN_END, valid_end=VALID_END, progress=False, max_epochs=1)
    short = train("tiny", cube, late, train_end=TRAIN_END, valid_end=VALID_END, progress=False, max_epochs=1)
    assert model.data_window["n_train"] > short.data_window["n_train"] + 100
    assert Month.parse(model.data_window["train_first_init"]) < Month.of(1965, 1)
    assert np.allclose(model.statistics["index_bias"], 0.4, atol=1e-6)
    frame = predict(model, cube, table, ["1986-03"], device="cpu")
    climatology = (late["nino34"] - late["anomaly"]).reindex(frame["target_month"]).to_numpy()
    assert np.allclose(frame["nino34"] - frame["nino34_anomaly"], climatology)
    # an index that does not measure the grids' Niño 3.4 is refused, naming the problem
    noisy = late.copy()
    noisy["nino34"] = noisy["nino34"] + np.random.default_rng(0).normal(0, 2 * MAX_INDEX_MISMATCH_SD, len(noisy))
    with pytest.raises(ValueError, match="do not measure the same thing"):
        train("tiny", cube, model_table(box, noisy), train_end=TRAIN_END, valid_end=VALID_END, progress=False)
