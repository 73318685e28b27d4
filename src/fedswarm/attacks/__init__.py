"""Byzantine participants for testing defences (SIMULATION and test tool).

``config`` is the ``[attack]`` table; ``selection`` picks the malicious participants from
the seed; ``data_poisoning`` and ``model_poisoning`` are what one malicious participant does
(on every backend alike); ``colluding`` crafts updates from the round's benign statistics at
the simulated coordinator; ``participants`` builds a malicious participant from config.
"""

from fedswarm.attacks.colluding import ColludingAttack, craft
from fedswarm.attacks.config import COLLUDING, AttackConfig, AttackKind
from fedswarm.attacks.data_poisoning import add_trigger, backdoor, backdoor_test, flip_labels
from fedswarm.attacks.model_poisoning import PoisonedApp, poison_update
from fedswarm.attacks.participants import malicious_app
from fedswarm.attacks.selection import malicious_clients

__all__ = [
    "COLLUDING",
    "AttackConfig",
    "AttackKind",
    "ColludingAttack",
    "PoisonedApp",
    "add_trigger",
    "backdoor",
    "backdoor_test",
    "craft",
    "flip_labels",
    "malicious_app",
    "malicious_clients",
    "poison_update",
]
