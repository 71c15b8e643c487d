"""One table of every optimizer × configuration; most tests are driven by it.

``oracle`` names what a case is checked against:
  "torch"  → torch.optim.<cls.__name__>(params, **kwargs) (kwargs use torch's names, so they pass as they are);
  "keras"  → keras.optimizers.<keras[0]>(**keras[1]) under KERAS_BACKEND=torch;
  "dezero" → the dezero package's optimizers (and a NumPy transcription of them), tests/test_dezero_conventions.py;
  "package" → the reference package's torch optimizer ``reference`` ("module.Class"), built with ``ref_kwargs``
             (default: the case's kwargs), tests/test_package_oracle.py.
Every case is also run through both engines (fused ≡ numpy).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import adamkit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from signum import Signum  # noqa: E402 (the README's "Add your own optimizer" example)


@dataclass(frozen=True)
class Case:
    id: str
    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    oracle: str = "torch"
    groups: bool = False  # run with two param groups of different lr as well
    keras: tuple[str, dict[str, Any]] | None = None  # Keras class name and its kwargs, for oracle="keras"
    keras_tol: float | None = None  # a looser float32 bar where the math is ill-conditioned (say why)
    torch_tol64: float | None = None  # a looser float64 bar vs torch (say why)
    reference: str | None = None  # "module.Class" of the reference optimizer, for oracle="package"
    ref_kwargs: dict[str, Any] | None = None  # its kwargs where the names differ from ours
    ref_skips_empty: bool = False  # the reference fails on empty tensors: it gets none of them (ours leaves them)
    elementwise: bool = True  # the step runs adamkit.engine's elementwise kernels (False: per-tensor kernels)
    ref_setup: str | None = None  # a method of the reference to call once it is built (e.g. "train")
    ref_tol: float | None = None  # the bar vs the package reference, both dtypes, where it computes less exactly
    slot_tol: float = 1e-10  # the bar for the saved state slots vs the reference's (float64)
    coupled: bool = False  # one global quantity over every tensor (a global grad norm): stepped apart ≠ together
    split: bool = False  # a host scalar differs per tensor (AdaNorm's e): later steps run each tensor's own kernel


CASES: list[Case] = [
    # --- SGD ---------------------------------------------------------------------------------------
    Case("sgd", adamkit.SGD, dict(lr=0.05)),
    Case("sgd-wd", adamkit.SGD, dict(lr=0.05, weight_decay=0.1)),
    Case("sgd-maximize", adamkit.SGD, dict(lr=0.05, maximize=True)),
    Case("sgd-momentum", adamkit.SGD, dict(lr=0.05, momentum=0.9), groups=True),
    Case("sgd-momentum-dampening", adamkit.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    Case("sgd-nesterov", adamkit.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    Case("sgd-nesterov-maximize", adamkit.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True)),
    # --- Adam / AMSGrad / AdamW ----------------------------------------------------------------------
    Case("adam", adamkit.Adam, dict(lr=0.01), groups=True),
    Case("adam-betas-eps", adamkit.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    Case("adam-wd", adamkit.Adam, dict(lr=0.01, weight_decay=0.05)),
    Case("adam-amsgrad", adamkit.Adam, dict(lr=0.01, amsgrad=True), groups=True),
    Case("adam-maximize", adamkit.Adam, dict(lr=0.01, maximize=True, weight_decay=0.01)),
    Case("adam-decoupled", adamkit.Adam, dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True)),
    Case("adamw", adamkit.AdamW, dict(lr=0.01), groups=True),
    Case("adamw-amsgrad", adamkit.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    Case("adamw-maximize", adamkit.AdamW, dict(lr=0.01, maximize=True)),
    Case(
        "adam-keras", adamkit.Adam, dict(lr=0.01, convention="keras"), "keras", keras=("Adam", dict(learning_rate=0.01))
    ),
    Case(
        "adam-keras-amsgrad",
        adamkit.Adam,
        dict(lr=0.01, amsgrad=True, convention="keras"),
        "keras",
        keras=("Adam", dict(learning_rate=0.01, amsgrad=True)),
    ),
    Case(
        "adamw-keras",
        adamkit.AdamW,
        dict(lr=0.01, convention="keras"),
        "keras",
        keras=("AdamW", dict(learning_rate=0.01)),
    ),
    Case(
        "adamw-keras-amsgrad",
        adamkit.AdamW,
        dict(lr=0.01, weight_decay=0.05, amsgrad=True, convention="keras"),
        "keras",
        keras=("AdamW", dict(learning_rate=0.01, weight_decay=0.05, amsgrad=True)),
    ),
    # --- SGD: Keras and DeZero forms -----------------------------------------------------------------
    Case("sgd-keras", adamkit.SGD, dict(convention="keras"), "keras", keras=("SGD", {})),
    Case(
        "sgd-keras-momentum",
        adamkit.SGD,
        dict(lr=0.02, momentum=0.9, weight_decay=0.01, convention="keras"),
        "keras",
        keras=("SGD", dict(learning_rate=0.02, momentum=0.9, weight_decay=0.01)),
    ),
    Case(
        "sgd-keras-nesterov",
        adamkit.SGD,
        dict(lr=0.02, momentum=0.8, nesterov=True, convention="keras"),
        "keras",
        keras=("SGD", dict(learning_rate=0.02, momentum=0.8, nesterov=True)),
    ),
    Case("sgd-dezero", adamkit.SGD, dict(convention="dezero"), "dezero"),
    Case("sgd-dezero-momentum", adamkit.SGD, dict(lr=0.02, momentum=0.9, convention="dezero"), "dezero"),
    # --- Adagrad -------------------------------------------------------------------------------------
    Case("adagrad", adamkit.Adagrad, dict(lr=0.05), groups=True),
    Case("adagrad-lr-decay", adamkit.Adagrad, dict(lr=0.05, lr_decay=0.01, weight_decay=0.05)),
    Case("adagrad-initial-acc", adamkit.Adagrad, dict(lr=0.05, initial_accumulator_value=0.3, eps=1e-6)),
    Case("adagrad-maximize", adamkit.Adagrad, dict(lr=0.05, maximize=True)),
    Case(
        "adagrad-keras",
        adamkit.Adagrad,
        dict(lr=0.01, convention="keras"),
        "keras",
        keras=("Adagrad", dict(learning_rate=0.01)),
    ),
    Case(
        "adagrad-keras-wd",
        adamkit.Adagrad,
        dict(lr=0.01, weight_decay=0.05, convention="keras"),
        "keras",
        keras=("Adagrad", dict(learning_rate=0.01, weight_decay=0.05)),
    ),
    Case(
        "adagrad-keras-initial-acc",
        adamkit.Adagrad,
        dict(lr=0.02, initial_accumulator_value=0.5, eps=1e-6, convention="keras"),
        "keras",
        keras=("Adagrad", dict(learning_rate=0.02, initial_accumulator_value=0.5, epsilon=1e-6)),
    ),
    Case("adagrad-dezero", adamkit.Adagrad, dict(lr=0.01, convention="dezero"), "dezero"),
    Case("adagrad-dezero-defaults", adamkit.Adagrad, dict(convention="dezero"), "dezero"),
    # --- RMSprop -------------------------------------------------------------------------------------
    Case("rmsprop", adamkit.RMSprop, dict(lr=0.01), groups=True),
    Case("rmsprop-centered", adamkit.RMSprop, dict(lr=0.01, centered=True, weight_decay=0.02)),
    Case("rmsprop-momentum", adamkit.RMSprop, dict(lr=0.01, momentum=0.9, alpha=0.9), groups=True),
    Case("rmsprop-centered-momentum", adamkit.RMSprop, dict(lr=0.01, centered=True, momentum=0.5, eps=1e-6)),
    Case("rmsprop-maximize", adamkit.RMSprop, dict(lr=0.01, maximize=True)),
    Case(
        "rmsprop-keras",
        adamkit.RMSprop,
        dict(lr=0.01, convention="keras"),
        "keras",
        keras=("RMSprop", dict(learning_rate=0.01)),
    ),
    Case(
        "rmsprop-keras-centered-momentum",
        adamkit.RMSprop,
        dict(lr=0.01, centered=True, momentum=0.8, weight_decay=0.01, convention="keras"),
        "keras",
        keras=("RMSprop", dict(learning_rate=0.01, centered=True, momentum=0.8, weight_decay=0.01)),
        # s − ḡ² cancels, amplifying the 1-ulp gap between Keras's ρ·ḡ + (1−ρ)·g and the lerp form: issue's 1e-5
        keras_tol=1e-5,
    ),
    Case("rmsprop-keras-defaults", adamkit.RMSprop, dict(convention="keras"), "keras", keras=("RMSprop", {})),
    Case(
        "rmsprop-keras-centered",
        adamkit.RMSprop,
        dict(lr=0.01, centered=True, convention="keras"),
        "keras",
        keras=("RMSprop", dict(learning_rate=0.01, centered=True)),
    ),
    Case(
        "rmsprop-keras-momentum",
        adamkit.RMSprop,
        dict(lr=0.01, momentum=0.9, convention="keras"),
        "keras",
        keras=("RMSprop", dict(learning_rate=0.01, momentum=0.9)),
    ),
    # --- Adadelta ------------------------------------------------------------------------------------
    Case("adadelta", adamkit.Adadelta, dict(lr=1.0), groups=True),
    Case("adadelta-options", adamkit.Adadelta, dict(lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.01)),
    Case("adadelta-maximize", adamkit.Adadelta, dict(lr=1.0, maximize=True)),
    Case(
        "adadelta-keras",
        adamkit.Adadelta,
        dict(lr=0.5, convention="keras"),
        "keras",
        keras=("Adadelta", dict(learning_rate=0.5)),
    ),
    Case("adadelta-keras-defaults", adamkit.Adadelta, dict(convention="keras"), "keras", keras=("Adadelta", {})),
    Case(
        "adadelta-keras-wd",
        adamkit.Adadelta,
        dict(lr=0.5, rho=0.9, weight_decay=0.02, convention="keras"),
        "keras",
        keras=("Adadelta", dict(learning_rate=0.5, rho=0.9, weight_decay=0.02)),
    ),
    Case("adadelta-dezero", adamkit.Adadelta, dict(convention="dezero"), "dezero"),
    # --- Adamax --------------------------------------------------------------------------------------
    Case("adamax", adamkit.Adamax, dict(lr=0.01), groups=True),
    Case("adamax-options", adamkit.Adamax, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.02)),
    Case("adamax-maximize", adamkit.Adamax, dict(lr=0.01, maximize=True)),
    Case(
        "adamax-keras",
        adamkit.Adamax,
        dict(lr=0.01, convention="keras"),
        "keras",
        keras=("Adamax", dict(learning_rate=0.01)),
    ),
    Case(
        "adamax-keras-wd",
        adamkit.Adamax,
        dict(lr=0.01, weight_decay=0.02, convention="keras"),
        "keras",
        keras=("Adamax", dict(learning_rate=0.01, weight_decay=0.02)),
    ),
    # --- NAdam ---------------------------------------------------------------------------------------
    Case("nadam", adamkit.NAdam, dict(lr=0.01), groups=True),
    Case(
        "nadam-options",
        adamkit.NAdam,
        dict(lr=0.01, betas=(0.8, 0.99), momentum_decay=0.01, weight_decay=0.02),
    ),
    Case(
        "nadam-decoupled",
        adamkit.NAdam,
        dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True),
    ),
    Case("nadam-maximize", adamkit.NAdam, dict(lr=0.01, maximize=True)),
    Case(
        "nadam-keras",
        adamkit.NAdam,
        dict(lr=0.01, convention="keras"),
        "keras",
        keras=("Nadam", dict(learning_rate=0.01)),
    ),
    Case(
        "nadam-keras-wd",
        adamkit.NAdam,
        dict(lr=0.01, weight_decay=0.02, convention="keras"),
        "keras",
        keras=("Nadam", dict(learning_rate=0.01, weight_decay=0.02)),
    ),
    # --- RAdam ---------------------------------------------------------------------------------------
    Case("radam", adamkit.RAdam, dict(lr=0.01), groups=True),
    Case("radam-options", adamkit.RAdam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.02)),
    Case("radam-decoupled", adamkit.RAdam, dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True)),
    Case("radam-maximize", adamkit.RAdam, dict(lr=0.01, maximize=True)),
    # --- Lion (lion-pytorch 0.2.5) --------------------------------------------------------------------
    Case("lion", adamkit.Lion, dict(lr=0.01), "package", groups=True, reference="lion_pytorch.Lion"),
    Case(
        "lion-options",
        adamkit.Lion,
        dict(lr=0.003, betas=(0.8, 0.95), weight_decay=0.5),
        "package",
        reference="lion_pytorch.Lion",
    ),
    # --- LAMB (pytorch_optimizer 4.1.0's Lamb) ------------------------------------------------------------
    Case("lamb", adamkit.LAMB, dict(lr=0.01), "package", groups=True, reference="pytorch_optimizer.Lamb"),
    Case(
        "lamb-wd",
        adamkit.LAMB,
        dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, eps=1e-8),
        "package",
        reference="pytorch_optimizer.Lamb",
    ),
    Case(
        "lamb-options",
        adamkit.LAMB,
        dict(lr=0.01, weight_decay=0.05, weight_decouple=False, grad_averaging=False, maximize=True),
        "package",
        reference="pytorch_optimizer.Lamb",
    ),
    Case(
        "lamb-fixed-decay-adam",
        adamkit.LAMB,
        dict(lr=0.01, weight_decay=0.01, fixed_decay=True, adam=True),
        "package",
        reference="pytorch_optimizer.Lamb",
    ),
    # LAMB's options, each on a stream where it shows (see test_modern.test_lamb_option_changes_the_trajectory).
    # pre_norm: the reference computes its clipping factor in float32, with torch's float32 sqrt (±1 ulp from the
    # correctly rounded root adamkit takes): the factors differ by up to 6e-8, so float64 agrees to 1e-6, not 1e-10
    # (test_modern.test_lamb_pre_norm_factor_is_the_references checks the factor itself to one float32 ulp).
    Case(
        "lamb-rectify",
        adamkit.LAMB,
        dict(lr=0.01, rectify=True, weight_decay=0.05),
        "package",
        groups=True,
        reference="pytorch_optimizer.Lamb",
    ),
    Case(
        "lamb-rectify-sgd-coupled",
        adamkit.LAMB,
        dict(lr=0.01, betas=(0.9, 0.99), rectify=True, degenerated_to_sgd=True, n_sma_threshold=20,
             weight_decay=0.1, weight_decouple=False, maximize=True),
        "package",
        reference="pytorch_optimizer.Lamb",
    ),  # fmt: skip
    Case(
        "lamb-pre-norm",
        adamkit.LAMB,
        dict(lr=0.01, pre_norm=True, max_grad_norm=3.0, weight_decay=0.01),
        "package",
        groups=True,
        reference="pytorch_optimizer.Lamb",
        ref_tol=1e-6,
        slot_tol=1e-6,
        coupled=True,
    ),
    Case(
        "lamb-pre-norm-rectify-debias",
        adamkit.LAMB,
        dict(lr=0.01, pre_norm=True, max_grad_norm=0.5, rectify=True, adam_debias=True, maximize=True, eps=1e-8),
        "package",
        reference="pytorch_optimizer.Lamb",
        ref_tol=1e-6,
        slot_tol=1e-6,
        coupled=True,
    ),
    Case(
        "lamb-adam-debias",
        adamkit.LAMB,
        dict(lr=0.01, adam_debias=True, weight_decay=0.02, grad_averaging=False),
        "package",
        reference="pytorch_optimizer.Lamb",
    ),
    Case(
        "lamb-adanorm",
        adamkit.LAMB,
        dict(lr=0.01, adanorm=True, weight_decay=0.05),
        "package",
        groups=True,
        reference="pytorch_optimizer.Lamb",
        split=True,
    ),
    Case(
        "lamb-adanorm-rectify-coupled",
        adamkit.LAMB,
        dict(lr=0.01, adanorm=True, adanorm_r=0.8, rectify=True, degenerated_to_sgd=True, n_sma_threshold=20,
             betas=(0.9, 0.99), weight_decay=0.1, weight_decouple=False, grad_averaging=False, maximize=True),
        "package",
        reference="pytorch_optimizer.Lamb",
        split=True,
    ),  # fmt: skip
    Case(
        "lamb-adanorm-coupled",
        adamkit.LAMB,
        dict(lr=0.01, adanorm=True, weight_decay=0.1, weight_decouple=False),
        "package",
        reference="pytorch_optimizer.Lamb",
        split=True,
    ),
    # --- Adafactor (torch.optim.Adafactor) ---------------------------------------------------------------
    Case(
        "adafactor",
        adamkit.Adafactor,
        dict(lr=0.01),
        "package",
        groups=True,
        reference="torch.optim.Adafactor",
        ref_skips_empty=True,
        elementwise=False,
    ),
    Case(
        "adafactor-options",
        adamkit.Adafactor,
        dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0, weight_decay=0.1, maximize=True),
        "package",
        reference="torch.optim.Adafactor",
        ref_skips_empty=True,
        elementwise=False,
    ),
    Case(
        "adafactor-clipped",
        adamkit.Adafactor,
        dict(lr=0.5, beta2_decay=-0.3, weight_decay=0.01),
        "package",
        reference="torch.optim.Adafactor",
        ref_skips_empty=True,
        elementwise=False,
    ),
    # --- Muon (torch.optim.Muon on 2-D tensors + torch.optim.AdamW on the rest) -----------------------------
    # torch runs Newton–Schulz in bfloat16 (8-bit mantissa), adamkit in the parameters' dtype: 2e-2 after 300
    # steps; tests/test_modern.py checks the 2-D update to 1e-10 against a float64 transcription of torch's code.
    Case(
        "muon",
        adamkit.Muon,
        dict(lr=0.02),
        "package",
        groups=True,
        reference="references.MuonWithAdamW",
        elementwise=False,
        ref_tol=2e-2,
    ),
    Case(
        "muon-options",
        adamkit.Muon,
        dict(
            lr=0.01, weight_decay=0.05, momentum=0.9, nesterov=False, adjust_lr_fn="match_rms_adamw",
            adamw_lr=0.003, adamw_betas=(0.8, 0.99), adamw_eps=1e-6, adamw_weight_decay=0.1,
        ),
        "package",
        reference="references.MuonWithAdamW",
        elementwise=False,
        ref_tol=2e-2,
    ),  # fmt: skip
    # --- Schedule-Free AdamW (schedulefree 1.4.1's AdamWScheduleFree) -------------------------------------
    Case(
        "schedulefree-adamw",
        adamkit.ScheduleFreeAdamW,
        dict(lr=0.01),
        "package",
        groups=True,
        reference="schedulefree.AdamWScheduleFree",
        ref_setup="train",
    ),
    Case(
        "schedulefree-adamw-options",
        adamkit.ScheduleFreeAdamW,
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, warmup_steps=20, r=0.5, weight_lr_power=1.0),
        "package",
        reference="schedulefree.AdamWScheduleFree",
        ref_setup="train",
    ),
    # --- README's "Add your own optimizer": examples/signum.py -------------------------------------------
    Case("signum", Signum, dict(lr=0.01, weight_decay=0.1), "package", reference="pytorch_optimizer.SignSGD"),
    # --- Adam: DeZero form ---------------------------------------------------------------------------
    Case("adam-dezero", adamkit.Adam, dict(lr=0.01, convention="dezero"), "dezero"),
]


def cases(oracle: str | None = None) -> list[Case]:
    return [c for c in CASES if oracle is None or c.oracle == oracle]
