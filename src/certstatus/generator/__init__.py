"""The generator: signs every known status ahead of time into the store (precomputed and cached modes).

:mod:`~certstatus.generator.run` runs passes over a pool of processes,
:mod:`~certstatus.generator.signing` is what each process does with a batch,
:mod:`~certstatus.generator.schedule` keeps passes coming while ``certstatus
serve`` runs, :mod:`~certstatus.cli.generate` is ``certstatus generate``.
"""
