"""Adapters for the engines and trainers users already run, each installed as an extra:
``ray`` (:mod:`siftdata.integrations.ray_scoring`), ``hf`` (:mod:`siftdata.integrations.hf`, the
Hugging Face ``SelectiveTrainer``) and ``lightning`` (:mod:`siftdata.integrations.lightning`).
None is imported by ``import siftdata``; the trainers' modules import their framework at the top
(they subclass its classes), the others lazily."""
