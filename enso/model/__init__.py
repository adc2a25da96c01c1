"""ConvLSTM forecasts of Niño 3.4: presets, training and prediction (pure domain code: no store, no Prefect).

Typical use::

    model = train("cpu-small", cube, index, train_end="1979-12", valid_end="1989-12")
    blob = model.to_bytes()                      # for the model registry
    frame = predict(TrainedModel.from_bytes(blob), cube, index, ["2010-12"])

``cube`` is an SST cube (see :mod:`enso.grids`), ``index`` the Niño 3.4 table
(monthly ``PeriodIndex``; columns ``nino34``, ``anomaly``, ``oni``, ``phase``).
"""

from enso.model.predict import predict
from enso.model.presets import PRESETS, Preset, get_preset
from enso.model.train import train
from enso.model.trained import TrainedModel

__all__ = ["PRESETS", "Preset", "TrainedModel", "get_preset", "predict", "train"]
