"""A distillation run's folder: one writer at a time, settings recorded, atomic checkpoints, the model apart.

    <output_dir>/run.json        the settings that decide what is trained (a resumed run must match them)
    <output_dir>/checkpoints/    step_00000500/ ... (accelerate state + progress.json, written last)
    <output_dir>/logs/           metrics.jsonl, config.json, training_curves.png
    <output_dir>/model/          the exported model folder, and nothing else

A lock (`flock` on `.lock-rank<N>`, released by the kernel when the process dies, so a killed run never leaves
it stuck) keeps a second launch out while a run is writing; the training processes also stop when their
launcher dies (`PR_SET_PDEATHSIG`), so killing `accelerate launch` does not leave an orphan writing on.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import signal
import sys
from pathlib import Path

RUN_FILE = "run.json"


class RunFolderError(RuntimeError):
    """Starting here would lose or mix work (another writer, an earlier run, a folder that is not a run)."""

RUN_PARTS = ("checkpoints", "logs", "model", RUN_FILE)


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.logs = self.path / "logs"
        self.checkpoints = self.path / "checkpoints"
        self.model_dir = self.path / "model"
        self._lock_handle = None

    # ------------------------------------------------------------------------------------------- one writer

    @staticmethod
    def stop_with_launcher() -> None:
        """Under a launcher (`accelerate launch`, torchrun), ask the kernel to send SIGTERM to this process when
        the launcher dies (Linux only). A run started by plain `python` (say under nohup) is left alone."""
        launched = any(key.startswith(("ACCELERATE_", "TORCHELASTIC_")) for key in os.environ)
        if launched and sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            if os.getppid() == 1:  # the launcher died before the call above: do not run on as an orphan
                raise SystemExit("The launching process has already exited; not starting.")

    def lock(self, rank: int = 0) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / f".lock-rank{rank}", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise RunFolderError(f"Another run (pid {owner}) is writing to {self.path}; wait for it to finish or stop "
                               "it (a killed run releases the folder at once).") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle

    def unlock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    # ---------------------------------------------------------------------------------------------- settings

    def check_start(self, settings: dict, resume: str | None, overwrite: bool, targets_only: bool,
                    is_main: bool = True) -> None:
        """Refuse to start where it would lose or mix work; record the settings of a new run."""
        entries = {p.name for p in self.path.iterdir()} - {p.name for p in self.path.glob(".lock-rank*")}
        run_file = self.path / RUN_FILE
        if entries - set(RUN_PARTS) and not run_file.is_file():
            raise RunFolderError(f"{self.path} exists and is not an Asterisk run folder (no {RUN_FILE}; it holds "
                                  f"{', '.join(sorted(entries)[:5])}); choose a new --output_dir. Nothing was changed.")
        if run_file.is_file():
            recorded = json.loads(run_file.read_text())
            has_work = self.complete_checkpoints() or self.model_dir.exists()
            if resume:
                changed = sorted(k for k in set(recorded) | set(settings) if recorded.get(k) != settings.get(k))
                if changed and has_work:
                    details = "; ".join(f"{k}: {recorded.get(k)!r} -> {settings.get(k)!r}" for k in changed[:6])
                    raise RunFolderError(f"Cannot resume {self.path} with other settings ({details}); resume with the "
                                     "run's own settings (see run.json), or start a new --output_dir.")
            elif overwrite:
                if is_main:
                    for part in RUN_PARTS:
                        target = self.path / part
                        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
            elif has_work and not targets_only:
                count = len(self.complete_checkpoints())
                what = "a finished model" if self.model_dir.exists() else f"{count} checkpoints"
                raise RunFolderError(f"{self.path} holds an earlier run ({what}). Pass --resume_from_checkpoint latest "
                                      "to continue it, --overwrite_output_dir to start over, or choose a new "
                                      "--output_dir.")
        if is_main:
            partial = run_file.with_name(RUN_FILE + ".partial")
            partial.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
            os.replace(partial, run_file)

    # --------------------------------------------------------------------------------------------- checkpoints

    def complete_checkpoints(self) -> list[Path]:
        return sorted(p for p in self.checkpoints.glob("step_*") if p.is_dir() and (p / "progress.json").is_file())

    def find_checkpoint(self, which: str) -> Path:
        """`latest` = the newest complete checkpoint; anything else is a checkpoint folder."""
        if which != "latest":
            path = Path(which)
            if not (path / "progress.json").is_file():
                raise FileNotFoundError(f"{path} is not a complete checkpoint (no progress.json).")
            return path
        complete = self.complete_checkpoints()
        if not complete:
            raise FileNotFoundError(f"No complete checkpoint in {self.checkpoints} to resume from; run without "
                                    "--resume_from_checkpoint to start this run.")
        return complete[-1]

    def save_checkpoint(self, accelerator, progress: dict, keep: int) -> None:
        """save_state into a staging folder, then rename: `progress.json` is written last, marking it complete."""
        final = self.checkpoints / f"step_{progress['step']:08d}"
        staging = final.with_name(final.name + ".partial")
        if accelerator.is_main_process and staging.exists():
            shutil.rmtree(staging)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (staging / "progress.json").write_text(json.dumps(progress))
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
            for old in self.complete_checkpoints()[:-keep]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
