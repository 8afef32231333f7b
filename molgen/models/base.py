"""The generator contract every family implements, and nothing more.

A model holds a config dataclass (its hyperparameters), the chemistry policy it was trained under,
an injected representation (a tokenizer, or ``None`` for a family that holds another model), its
components as built modules (an encoder, a prior, a backbone: injected into the constructor, as
chemprop's ``MPNN(message_passing, agg, predictor)``) and, optionally, nested saved models declared by
role (:class:`NestedRole`: the GAN's ``autoencoder``). Capabilities are declared, not implied: a family
without a likelihood has no ``"log_likelihood"`` and asking for one raises :class:`CapabilityError`.

Configuration edge: the config records each component as a ``{name, args}`` spec; the family's
:meth:`GenerativeModel.build_components` turns the specs into modules, and :meth:`GenerativeModel.from_config`
(training, loading a saved model) and :meth:`GenerativeModel.build` (flat / dotted options) construct the
model with them. Nothing else reads a spec.

What a family writes (see docs/adding-a-family.md): ``Config``, ``_sample``, and where it has them
``build_components``, ``log_likelihood`` / ``likelihood_kind``, ``featurize`` / ``collate`` /
``item_length`` (data for training and scoring), ``training_step``, ``configure_optimizers`` and
``default_callbacks`` (training callbacks the family always wants: the VAE's safeguards and diagnostics,
the GAN's latent-bin tracking). Everything public (``sample``, ``score``, persistence, strict options,
labels) comes from here.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from molgen.chem import DEFAULT_POLICY, Policy
from molgen.conditioning import check_request
from molgen.errors import CapabilityError, ConfigError, check_choice, strict
from molgen.fragments import constrained_sample
from molgen.likelihood import LikelihoodLabel
from molgen.models.config import ModelConfig
from molgen.models.results import SampleResult, canonical_rows, check_sample_arguments
from molgen.persistence import load_pretrained, save_pretrained
from molgen.progress import progress_bar
from molgen.rowrandom import RowRandom
from molgen.scoring import score_smiles
from molgen.training.optim import OptimConfig

if TYPE_CHECKING:
    from molgen.models.autoregressive import Constrain

CAPABILITIES = frozenset({"sample", "log_likelihood", "encode", "decode", "conditional"})


@dataclass(frozen=True)
class NestedRole:
    """A saved model a family holds (the GAN's ``autoencoder``): given to the constructor under the role's
    name, stored in ``nested/<role>/`` and, in ``molgen train``, read from the option of the same name
    (``--autoencoder DIR``). ``requires``: the capabilities the held model must declare."""

    help: str = ""
    requires: frozenset[str] = frozenset()


def nested_roles(cls: type) -> dict[str, NestedRole]:
    """``cls.nested`` as ``{role: NestedRole}`` (a family may declare a plain tuple of role names)."""
    declared = getattr(cls, "nested", ()) or ()
    if isinstance(declared, Mapping):
        return dict(declared)
    return {str(name): NestedRole() for name in declared}


class GenerativeModel(L.LightningModule):
    """Base class: Lightning module + molgen's sampling / likelihood / persistence contract."""

    name: ClassVar[str] = "base"
    capabilities: ClassVar[frozenset[str]] = frozenset()
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: the representation kinds the family reads (:attr:`molgen.representation.Representation.kind`)
    representation_kinds: ClassVar[frozenset[str]] = frozenset({"tokens"})
    #: nested saved models this family holds, by role: ``{role: NestedRole}`` (constructor keyword and
    #: attribute; a tuple of role names is accepted too), e.g. the GAN's ``{"autoencoder": NestedRole(...)}``
    nested: ClassVar[Mapping[str, NestedRole] | tuple[str, ...]] = {}
    #: True when ``featurize`` returns plain id lists that the DataModule may cache on disk.
    featurize_cacheable: bool = True
    #: the training options (``molgen train --lr`` ...) that ``configure_optimizers`` reads from ``self.optim``;
    #: a family with its own optimiser settings in its config lists fewer, and giving the others is an error.
    optim_options: ClassVar[tuple[str, ...]] = ("lr", "weight_decay", "betas", "warmup_steps", "min_lr_ratio")
    #: the contract's public methods: wherever a class defines one (the base or a family's override) it is
    #: wrapped by :func:`~molgen.errors.strict`, so an unknown keyword lists the accepted ones in every family
    STRICT_METHODS: ClassVar[tuple[str, ...]] = (
        "__init__", "sample", "score", "log_likelihood", "likelihood_kind", "likelihood_label", "featurize", "collate",
        "item_length", "require", "save_pretrained", "from_pretrained", "encode", "decode", "set_sampling",
        "final_diagnostics", "build_components")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _make_strict(cls)

    def __init__(self, config: ModelConfig, *, representation: Any = None, policy: Policy = DEFAULT_POLICY) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}")
        if representation is not None:
            kind = getattr(representation, "kind", None)
            if kind not in self.representation_kinds:
                raise ConfigError(f"the {self.name} family reads {' or '.join(sorted(self.representation_kinds))} "
                                  f"representations; {getattr(representation, 'name', representation)!r} is a "
                                  f"{kind} representation")
            if not representation.is_fitted:
                raise ValueError("the tokenizer has no vocabulary: fit it on training SMILES first")
        self.config = config
        self.representation = representation
        self.policy = policy
        self.metadata: dict[str, Any] = {}
        self.optim = OptimConfig()
        self.progress: Any = None  # molgen.training.progress.TrainingProgress while training

    @classmethod
    def build(cls, options: dict[str, Any] | None = None, *, representation: Any = None,
              policy: Policy = DEFAULT_POLICY, **nested: GenerativeModel) -> GenerativeModel:
        """A fresh model from flat / dotted options (validated by the family's config dataclass)."""
        cls._check_nested(nested)
        return cls.from_config(cls.config_class.from_dict(options, what=f"model {cls.name!r}"),
                               representation=representation, policy=policy, **nested)

    @classmethod
    def from_config(cls, config: ModelConfig, *, representation: Any = None, policy: Policy = DEFAULT_POLICY,
                    **nested: GenerativeModel) -> GenerativeModel:
        """The model of a parsed config: its component specs built into modules (:meth:`build_components`)
        and injected into the constructor with the nested models (training and loading a saved model)."""
        cls._check_nested(nested)
        return cls(config, representation=representation, policy=policy,
                   **cls.build_components(config, representation), **nested)

    @classmethod
    def build_components(cls, config: ModelConfig, representation: Any) -> dict[str, Any]:
        """The constructor's component modules (keyword -> module) built from the config's ``{name, args}``
        specs, wired to the representation (vocabulary size, ...); none by default."""
        return {}

    @classmethod
    def _check_nested(cls, nested: Mapping[str, Any]) -> None:
        roles = nested_roles(cls)
        extra = set(nested) - set(roles)
        if extra:
            raise ConfigError(f"{cls.name} holds no nested model(s) {sorted(extra)}; it holds {list(roles)}")
        for role, spec in roles.items():
            model = nested.get(role)
            if model is not None and spec.requires and not spec.requires <= set(getattr(model, "capabilities", ())):
                raise ConfigError(f"model {cls.name!r} needs as its {role} a trained model with "
                                  f"{' and '.join(sorted(spec.requires))} ({spec.help or 'its role'}); got "
                                  f"{getattr(model, 'name', type(model).__name__)!r}")

    def default_callbacks(self) -> list[L.Callback]:
        """Lightning callbacks this family trains with (``molgen.train`` and fine-tuning add them): the VAE's
        safeguards and diagnostics, the GAN's latent-bin tracking; none by default. A Trainer of your own
        needs them too: ``L.Trainer(callbacks=model.default_callbacks())``."""
        return []

    @property
    def max_len(self) -> int:
        return int(self.config.max_len)

    @property
    def tokenizer(self):
        """The representation, for string families (a tokenizer)."""
        return self.representation

    # --- what families provide -----------------------------------------------------------------
    def _sample(self, n: int, *, temperature: float, rng: RowRandom, condition: dict[str, float] | None,
                guidance: float | None, constrain: Constrain | None = None) -> tuple[list[Any], Tensor | None]:
        """``n`` samples as SMILES strings or RDKit molecules, and their log p (or None).

        ``rng`` holds one random stream per row (``len(rng) == n``): every random draw of row i comes
        from row i's stream, each independent draw from its own stream number, so a molecule does not
        depend on the batch it is drawn in. ``constrain`` (autoregressive string families): a per-step
        edit of the next-token log-probs (:data:`molgen.models.autoregressive.Constrain`); a family
        that cannot honour it raises :class:`CapabilityError` (:meth:`_refuse_constrain`)."""
        raise CapabilityError(f"{self.name} cannot sample")

    def _refuse_constrain(self, constrain: Constrain | None) -> None:
        """For ``_sample`` of a family without token-level constraints: an error when one is given."""
        if constrain is not None:
            raise CapabilityError(f"model {self.name!r} cannot sample under a token constraint (fragment-constrained "
                                  "generation needs an autoregressive or infilling family: transformer, diffusion)")

    def log_likelihood(self, batch: dict[str, Any], *, kind: str | None = None) -> Tensor:
        """[B] log p(x) (or a lower bound, labelled by ``likelihood_label(kind)``) in nats per molecule.

        Deterministic per molecule: Monte-Carlo estimators seed their noise from the molecule itself.
        """
        raise CapabilityError(self._no_likelihood_reason())

    @classmethod
    def likelihood_kind(cls, config: ModelConfig, kind: str | None = None) -> str:
        """Resolve a requested kind (None: the family's default for this config) or raise listing the accepted."""
        raise CapabilityError(f"{cls.name} has no likelihood")

    def featurize(self, canonical_smiles: str) -> Any:
        """One model input for a canonical SMILES. Raises OOVError / TokenizeError / TooLongError."""
        raise CapabilityError(f"{self.name} takes no molecule inputs")

    def collate(self, items: Sequence[Any]) -> dict[str, Any]:
        raise CapabilityError(f"{self.name} takes no molecule inputs")

    def item_length(self, item: Any) -> int:
        """Size of one featurized item (tokens), used to batch items of similar length together."""
        return len(item)

    def configure_optimizers(self):  # each family owns its optimisation
        raise NotImplementedError(f"{self.name} must define configure_optimizers")

    # --- labels and capabilities ---------------------------------------------------------------
    def _no_likelihood_reason(self) -> str:
        return (f"model {self.name!r} has no likelihood (capabilities: {', '.join(sorted(self.capabilities))})"
                + (f": {self.no_likelihood_reason}" if getattr(self, "no_likelihood_reason", None) else ""))

    def require(self, capability: str) -> None:
        check_choice("capability", capability, sorted(CAPABILITIES))
        if capability not in self.capabilities:
            if capability == "log_likelihood":
                raise CapabilityError(self._no_likelihood_reason())
            raise CapabilityError(
                f"model {self.name!r} does not support {capability!r}; it supports {sorted(self.capabilities)}")

    @property
    def writes_in_order(self) -> bool:
        """True when ``_sample`` writes the string left to right, one position per step, and so accepts a
        ``constrain`` hook that edits each position's log-probs before its draw (fragment template
        completion). False unless a family says otherwise."""
        return False

    @property
    def sampler_name(self) -> str:
        """How ``sample`` draws at temperature 1, as recorded with every sample (``SampleResult.sampler``):
        ``ancestral`` (x ~ p(x), token by token or in one pass) unless a family says otherwise."""
        return "ancestral"

    def likelihood_label(self, kind: str | None = None) -> LikelihoodLabel | None:
        """What ``score`` / ``log_likelihood(kind=...)`` report: kind, object, unit (None: no likelihood)."""
        if "log_likelihood" not in self.capabilities:
            if kind is not None:
                raise CapabilityError(self._no_likelihood_reason())
            return None
        return LikelihoodLabel(self.likelihood_kind(self.config, kind), self.likelihood_object)

    @property
    def likelihood_object(self) -> str:
        return getattr(self.representation, "likelihood_object", "molecule")

    # --- public API ----------------------------------------------------------------------------
    @torch.no_grad()
    @strict
    def sample(self, n: int, *, temperature: float = 1.0, seed: int | None = None, batch_size: int | None = None,
               condition: dict[str, float] | None = None, guidance: float | None = None,
               progress: bool = False, start: int = 0, scaffold: str | None = None, linker: str | None = None,
               extend: str | None = None, extrapolate: bool = False) -> SampleResult:
        """Draw ``n`` molecules x ~ p(x) (temperature 1 is the model itself; the seed is recorded);
        ``progress``: a bar over the batches (:mod:`molgen.progress`).

        Molecule i is drawn from its own random stream keyed by ``(seed, start + i)``
        (:class:`~molgen.rowrandom.RowRandom`): ``sample(20, seed=s)`` is the first 20 of
        ``sample(50, seed=s)`` for any ``batch_size``, and ``sample(30, seed=s, start=20)`` the other 30
        (shards, :mod:`molgen.sharding`). ``scaffold`` / ``linker`` / ``extend``: fragment-constrained
        generation (:func:`molgen.fragments.constrained_sample`)."""
        self.require("sample")
        check_sample_arguments(n, temperature, batch_size)
        if not isinstance(start, (int, np.integer)) or isinstance(start, bool) or start < 0:
            raise ConfigError(f"start must be an integer >= 0 (the index of the first molecule), got {start!r}")
        if scaffold is not None or linker is not None or extend is not None:
            # fragment-constrained generation: its own module drives the family's constrained sampler
            if condition is not None or guidance is not None or start:
                raise ConfigError("scaffold / linker / extend cannot be combined with condition, guidance or start")
            return constrained_sample(self, n, scaffold=scaffold, linker=linker, extend=extend,
                                      temperature=temperature, seed=seed, batch_size=batch_size, progress=progress)
        condition, guidance = self.check_condition(condition, guidance, extrapolate=extrapolate)
        was_training = self.training
        self.eval()
        if seed is None:  # still reproducible afterwards: the drawn seed is recorded
            seed = int(torch.randint(0, 2**62, (1,)).item())
        bs = batch_size or 1024
        raw: list[Any] = []
        lls: list[Tensor] = []
        starts = range(0, n, bs)
        if progress and len(starts) > 1:
            starts = progress_bar(starts, desc="sampling", total=len(starts), unit="batch")
        try:
            for b0 in starts:
                b = min(bs, n - b0)
                rng = RowRandom(int(seed), range(int(start) + b0, int(start) + b0 + b), self.device)
                out, ll = self._sample(b, temperature=float(temperature), rng=rng, condition=condition,
                                       guidance=guidance)
                raw.extend(out)
                if ll is not None:
                    lls.append(ll.detach().double().cpu())
        finally:
            self.train(was_training)
        smiles, canonical = canonical_rows(raw, self.policy)
        ll = torch.cat(lls).numpy() if lls and sum(len(x) for x in lls) == n else None
        label = self.likelihood_label() if ll is not None else None
        sampler = self.sampler_name if temperature == 1.0 else f"{self.sampler_name}-T{temperature:g}"
        info: dict[str, Any] = {"model": self.name}
        if start:
            info["start"] = int(start)
        if condition is not None:
            info.update(condition=condition, guidance=guidance or 0.0)
            if guidance:  # a guided distribution is not the model's: say so, and no likelihood
                sampler += f"+cfg-w{guidance:g}"
        return SampleResult(smiles, canonical, ll, float(temperature), sampler, int(seed), label, info=info)

    @property
    def condition_space(self):
        """The :class:`~molgen.conditioning.ConditionSpace` of a conditional model (else None); a
        conditional family holds a :class:`~molgen.conditioning_nn.Conditioner` as ``self.conditioner``."""
        conditioner = getattr(self, "conditioner", None)
        return None if conditioner is None else conditioner.space

    @strict
    def check_condition(self, condition: dict[str, float] | None, guidance: float | None, *,
                        extrapolate: bool = False, cli: bool = False) -> tuple[dict[str, float] | None, float | None]:
        """Validated (condition, guidance): refused by unconditional models, unknown properties listed,
        out-of-range values warned about and far-out ones refused unless ``extrapolate``, guidance a
        number >= 0 that needs a condition (:func:`molgen.conditioning.check_request`); ``cli``: the
        messages speak command-line syntax (``--condition qed=0.9``)."""
        space = self.condition_space if "conditional" in self.capabilities else None
        return check_request(space, condition, guidance, extrapolate=extrapolate, cli=cli,
                             model=f"model {self.name!r}", capabilities=sorted(self.capabilities))

    @strict
    def score(self, smiles: Sequence[str | None], *, batch_size: int = 256, progress: bool = False,
              kind: str | None = None, condition: dict[str, float] | None = None, strip_stereo: bool = False,
              neutralize: bool = False, strip_isotopes: bool = False,
              standardize: str | None = None) -> pd.DataFrame:
        """Per-molecule log-likelihood table, one row per input, in order; never raises per row.

        A pandas Series keeps its index. ``kind`` picks another estimator where the family has
        several (e.g. ``"elbo"`` or ``"iwae-200"`` for the VAE); the rows say which one was used.
        ``condition`` (conditional models): log p(x | c) of the unguided model, in a ``condition`` column.

        By default the scored object is the input molecule (under the model's policy). To score what the
        model cannot write otherwise, ask explicitly: ``strip_stereo``, ``neutralize`` (RDKit's Uncharger:
        charged acids / amines made neutral; a quaternary ammonium stays), ``strip_isotopes``, or
        ``standardize="like-training"``: each of those the model's tokenizer vocabulary cannot express (no
        chiral token: strip stereo; no charged atom: neutralize; no isotope: strip isotopes), derived from
        the vocabulary, which every model carries. The ``standardized`` column says per row what changed
        (``""``, ``"stereo"``, ``"stereo,charge"``, ...); an ``oov_token`` note names the option that
        would score the row.
        """
        return score_smiles(self, smiles, batch_size=batch_size, progress=progress, kind=kind, condition=condition,
                            strip_stereo=strip_stereo, neutralize=neutralize, strip_isotopes=strip_isotopes,
                            standardize=standardize)

    def save_pretrained(self, path: str) -> None:
        save_pretrained(self, path)

    @classmethod
    def from_pretrained(cls, path: str, *, map_location: str = "cpu") -> GenerativeModel:
        model = load_pretrained(path, map_location=map_location)
        if cls is not GenerativeModel and not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def final_diagnostics(self, smiles: Sequence[str]) -> dict[str, Any]:
        """Family-specific numbers on the validation molecules that ``metadata.json["final"]`` keeps after
        training (the VAE: active units, I(x; z), reconstruction accuracy); none by default."""
        return {}

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def summary(self) -> dict[str, str]:
        """Family, parameters, representation, likelihood label and training data (for ``repr`` / notebooks)."""
        rep, meta = self.representation, self.metadata or {}
        data, training = meta.get("data") or {}, meta.get("training") or {}
        out = {"family": self.name, "parameters": f"{self.n_parameters() / 1e6:.2f}M",
               "representation": f"{rep.name} ({rep.describe()}, max_len {self.max_len})" if rep is not None
               else "none (holds " + ", ".join(self.nested) + ")",
               "likelihood": str(self.likelihood_label()) if "log_likelihood" in self.capabilities else "none"}
        if data:
            seen = training.get("molecules_seen")
            out["trained on"] = (f"{data.get('source')} ({data.get('n_train')} molecules"
                                 + (f", {seen:,} seen" if seen else "") + ")")
        if meta.get("finetune"):
            out["fine-tuned from"] = str(meta["finetune"]["parent"].get("path") or "a model in memory")
        return out

    def __repr__(self) -> str:  # short: the module tree is print(model.net) / ModelSummary
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v}" for k, v in self.summary().items()) + ")"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(v)}</td></tr>" for k, v in self.summary().items())
        return f"<table><caption>{type(self).__name__}</caption>{rows}</table>"


def _make_strict(cls: type) -> None:
    """Wrap the :attr:`GenerativeModel.STRICT_METHODS` that ``cls`` itself defines with ``strict`` (once)."""
    for name in cls.STRICT_METHODS:
        attr = vars(cls).get(name)
        wrapper = classmethod if isinstance(attr, classmethod) else staticmethod if isinstance(attr, staticmethod) \
            else None
        fn = attr.__func__ if wrapper is not None else attr
        if not callable(fn) or getattr(fn, "__strict__", False):
            continue
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
            continue  # forwards **kwargs to a strict callee
        setattr(cls, name, wrapper(strict(fn)) if wrapper is not None else strict(fn))


_make_strict(GenerativeModel)
