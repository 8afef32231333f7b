"""``molgen benchmark``: every family trained on the same data under the same budget, sampled at the
same n, scored on the same test molecules and evaluated with the one shared pipeline
(:class:`molgen.metrics.Evaluator`); one table (JSON + markdown) and plots a user would put in a paper.

The package, in the order its modules import one another (no circle):

- :mod:`molgen.benchmark.rows`: the row table and the published MOSES rows, read from the package data
  ``rows.yaml`` / ``published_moses.yaml`` and checked (light: ``molgen benchmark --help`` lists the rows);
- :mod:`molgen.benchmark.report`: the table rows from the runs, the markdown / JSON / manifest and plots;
- :mod:`molgen.benchmark.runner`: :func:`~molgen.benchmark.runner.run_benchmark` trains, samples, scores
  and evaluates every row and hands the payload to the report.

The options (defaults, help, choices) are declared once in :mod:`molgen.options.benchmark`. This file
imports nothing: ``molgen.options.benchmark`` reads the rows through it, and must not load torch.

Rows (``rows.yaml``; all but the last two by default):

==========================  ================================  ===========================================
row                         config (``--config-dir``)         what
==========================  ================================  ===========================================
``transformer-smiles``      ``transformer-smiles.yaml``       decoder-only transformer on SMILES (exact NLL)
``transformer-selfies``     ``transformer-selfies.yaml``      the same on SELFIES
``vae``                     ``vae.yaml``                      VAE, transformer decoder (from moses-transformer)
``vae-graph``               ``vae-graph.yaml``                MoG-prior VAE, GATv2 graph encoder
``flow``                    ``flow.yaml``                     categorical normalizing flow on SELFIES
``gan``                     ``gan.yaml``                      LatentGAN on the ``vae`` row's model (no NLL)
``diffusion-smiles``        ``diffusion.yaml``                masked diffusion on SMILES
``diffusion-selfies``       ``diffusion-selfies.yaml``        masked diffusion on SELFIES
``transformer-smiles-qed``  ``transformer-smiles.yaml`` + qed conditional transformer, evaluated unguided
``transformer-kekule``      ``quickstart.yaml``               the quick-start: the transformer on Kekulé SMILES
==========================  ================================  ===========================================

A config is looked up in the config folder (default: molgen's configs, :func:`molgen.configs.config_dir`)
as ``<row>.yaml`` first, then under the name above (``benchmarks/gpu/`` names its files by row).

Budget: ``budget_minutes`` is training wall clock per family (validation excluded; the config's
``max_time`` replaced, its ``max_molecules`` / ``max_steps`` / ``max_epochs`` caps removed, so the
clock decides), or ``budget_molecules`` (molecules seen: machine-independent; ``time_cap_minutes``
is a generous safety cap). A row that holds another row's model (the GAN: ``needs: vae``) is budgeted
for its own training only (its VAE is the ``vae`` row's model, reused frozen; ``autoencoder=`` gives
another). Every row records molecules seen, training molecules/s, training time, parameters and
precision. All rows train on the same subset of the same data with the same seed and the same
``val_size``, so they share one train / validation split.

Evaluation: ``n`` samples per row at temperature 1 (the sampler each model reports is recorded; never
argmax), evaluated by one ``Evaluator(reference, scaffold_reference=..., train=...)``; the NLL of
every likelihood family on one fixed seeded subset of the reference (``nll_n`` molecules, seed 0),
reported as the mean over the molecules *every* likelihood row scored (the common set, its size
stated) next to each row's own mean and count of unscored molecules, with the likelihood kind and
object each model reports. The rows that declare ``diffusion_steps`` (the masked-diffusion rows) sample
with ``diffusion_steps`` ancestral steps (default ``quarter``: N/4 of the canvas length N, 2.6x faster
than N at a small cost in validity, ``benchmarks/results/diffusion.md``; the sampler column says which),
the choice a CPU user makes.

Default budget (4 minutes of training per family, n = 1,000 samples, NLL on 500 test molecules):
measured at 66.8 minutes for the 8 default rows on a 2-core Intel Xeon with one torch thread
(``benchmarks/results/compare.md``): 32 min of training, the rest data preparation (per-row
tokenization / featurization of the 200k subset: the graph encoder's ~10 min is the largest),
validation outside the clock, sampling (the diffusion rows at N/4 steps, ~35 molecules/s), scoring and
evaluation. Larger n or budgets grow it roughly linearly; a first run on a fresh cache adds the MOSES
test-set statistics (~1 min).

Outputs: model directories ``OUT/<row>/seed<k>/`` (with ``samples.smi``, ``nll_test.csv``,
``evaluation.json``) and the manifest ``OUT/benchmark.json``; ``RESULTS/<name>.json`` (machine facts,
the exact command, every row and seed, the published rows apart), ``RESULTS/<name>.md`` (the table
and its footnotes) and ``RESULTS/<name>_<metric>.png`` (a bar chart per metric, NLL vs training time).
One row failing (an exception, a NaN loss) records its error in one line; the others continue.
"""
