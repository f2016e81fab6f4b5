"""DrQ-v2 on DeepMind Control with the PBT-NAS search spaces (``tasks.rl:RLTask``).

- :mod:`tasks.rl.env`: dm_control wrapper (pixels 84x84 x3 stacked, or flat states; action repeat).
- :mod:`tasks.rl.networks`: encoder / actor / twin-Q critic built from a decoded genome.
- :mod:`tasks.rl.spaces`: the paper's 36-variable pixel space and its state counterpart.
- :mod:`tasks.rl.agent`: the DrQ-v2 update; :mod:`tasks.rl.replay`: n-step numpy replay buffer.
- :mod:`tasks.rl.task`: :class:`RLTask`, the pbt_evo task.

Requires ``dm_control`` with ``mujoco<4`` (mujoco 4.x cannot load dm_control's tasks):
``pip install -e .[rl]``.
"""

from .task import RLMember, RLTask

__all__ = ["RLTask", "RLMember"]
