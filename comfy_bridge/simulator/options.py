"""What one simulator process pretends to be: its models, nodes, speed and faults."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path

# How much slower everything runs under the `slow` fault.
SLOW_FACTOR = 5.0


class FaultKind(enum.StrEnum):
    """Misbehaviours a test can ask the simulator for."""

    SLOW = "slow"
    DROP_SOCKET = "drop-socket"
    FAIL = "fail"
    DIE_AFTER = "die-after"
    NO_OUTPUTS = "no-outputs"
    IGNORE_TARGETED_INTERRUPT = "ignore-targeted-interrupt"
    DISGUISED_OUTPUT = "disguised-output"
    HTML_OUTPUT = "html-output"
    TRUNCATED_OUTPUT = "truncated-output"


@dataclass(frozen=True)
class Fault:
    """One requested fault; `count` is the N of `die-after N`."""

    kind: FaultKind
    count: int = 0

    @classmethod
    def parse(cls, text: str) -> Fault:
        """Read `kind`, `kind N`, `kind=N` or `kind:N`."""
        name, *rest = re.split(r"[\s=:]+", text.strip(), maxsplit=1)
        argument = rest[0] if rest else ""
        kind = FaultKind(name)
        if kind is FaultKind.DIE_AFTER:
            if not argument.strip().isdigit():
                raise ValueError(f"{name} needs a count, e.g. 'die-after 3': {text!r}")
            return cls(kind, int(argument))
        if argument.strip():
            raise ValueError(f"fault {name} takes no argument: {text!r}")
        return cls(kind)


@dataclass
class SimulatorOptions:
    """Settings of one simulated backend."""

    host: str = "127.0.0.1"
    port: int = 8188
    speed: float = 1.0
    step_seconds: float = 0.05
    models: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    claim_workflows: list[Path] = field(default_factory=list)
    vram_gb: float = 8.0
    faults: list[Fault] = field(default_factory=list)
    data_dir: Path | None = None
    history_limit: int = 10_000
    max_upload_size: int = 100 * 1024 * 1024

    def has_fault(self, kind: FaultKind) -> bool:
        return any(fault.kind is kind for fault in self.faults)

    def fault_count(self, kind: FaultKind) -> int | None:
        """The argument of the first fault of this kind, or None without one."""
        return next((f.count for f in self.faults if f.kind is kind), None)

    @property
    def slow_factor(self) -> float:
        """Multiplier the `slow` fault puts on every duration, test nodes included."""
        return SLOW_FACTOR if self.has_fault(FaultKind.SLOW) else 1.0

    @property
    def time_factor(self) -> float:
        """Multiplier on model stand-in durations (speed and the slow fault)."""
        return self.slow_factor / self.speed

    @property
    def model_step_s(self) -> float:
        """Duration of one step of a model stand-in (sampler step, load, decode)."""
        return self.step_seconds * self.time_factor
