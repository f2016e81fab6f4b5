"""Tasks for pbt_evo: what to train. Each builds members from genomes of its search space.

- ``tasks.digits``: small, fast image classification on scikit-learn's bundled digits (tests, demos).
- ``tasks.mnist1d``: MNIST-1D, 1-D signals generated offline by the ``mnist1d`` package: CPU scale, and
  architectures differ a lot (operator studies).
- ``tasks.rl``: DrQ-v2 on DeepMind Control (the paper's RL setting).
- ``tasks.gan``: AdversarialNAS Gan / GanHard spaces scored by FID (the paper's GAN setting).
- ``tasks.w1``: the fixed workload of the overhead benchmark.
"""
