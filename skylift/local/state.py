"""What a second process needs to reach a running ``skylift local up``: its state file.

``local up`` writes it; ``local trigger`` (another process) reads it to find the control
endpoint and its token, without importing the stack itself (moto, the gateway, the handlers).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from skylift.errors import SkyliftError
from skylift.local.gateway import CONTROL_TOKEN_HEADER

__all__ = ["CONTROL_TOKEN_HEADER", "STATE_FILE", "LocalStackError", "StackState"]

STATE_FILE = Path(".skylift") / "local.json"


class LocalStackError(SkyliftError):
    """The local stack cannot start, cannot be reached, or a wait on it timed out."""


@dataclass(frozen=True)
class StackState:
    """The running stack's process, endpoints and secrets."""

    pid: int
    endpoint_url: str
    api_url: str
    api_key: str
    control_url: str
    control_token: str

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)  # holds the API key and control token

    @classmethod
    def read(cls, path: Path) -> StackState:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise LocalStackError(
                f"{path}: no running local stack found (start one with `skylift local up`)"
            ) from None
        except (ValueError, TypeError) as exc:
            raise LocalStackError(f"{path}: unreadable local stack state ({exc})") from None
