"""Tasks for pbt_evo: what to train. Each builds members from genomes of its search space.

- ``tasks.digits``: small, fast image classification on scikit-learn's bundled digits (tests, demos).
- ``tasks.rl``: DrQ-v2 on DeepMind Control (the paper's RL setting).
- ``tasks.gan``: AdversarialNAS Gan / GanHard spaces scored by FID (the paper's GAN setting).
"""
