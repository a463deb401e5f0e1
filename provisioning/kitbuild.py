"""``havel kit build``: one guided run from a bare board to a registered, labelled node.

Steps: find the board, install MicroPython if needed, flash the signed bundle, check the wiring, register
(identity into config.json and the encrypted registry), print the label. Progress is kept in a state file
per kit, so after fixing a wiring fault the same command continues at the step that stopped. The only
input it asks for is yes/no (and the registry passphrase when no file or variable supplies it: twice when
the registry is created, so that a typo cannot lock the volunteer out of a new registry).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from havel.errors import ConfigError, HavelError, TransportError
from havel.provisioning import bundle, flash, identity, kitcheck, label, micropython_install, ports, signing
from havel.provisioning.checklist import Item, print_checklist
from havel.provisioning.kits import Kit, load_kit
from havel.provisioning.registry import Registry
from havel.provisioning.settings import Settings
from havel.provisioning.transport import Board as BoardLink

PROBE_TIMEOUT_S = 3.0  # a MicroPython board answers Ctrl-C Ctrl-A within a second
STEPS = ("board", "micropython", "flash", "check", "register", "label")


@dataclass
class BuildOptions:
    kit: str
    port: str = "auto"
    bundle_dir: Path | None = None
    unsigned: bool = False
    image: Path | None = None
    image_sha256: str | None = None
    state_file: Path | None = None
    trusted_keys: list[Path] = field(default_factory=list)  # instead of the settings' trusted_keys
    allow_downgrade: bool = False
    baud: int | None = None  # esptool's rate when installing MicroPython (default: the board file's)


@dataclass
class BuildResult:
    ok: bool
    steps: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    name: str = ""
    dev_eui: str = ""
    labels: list[str] = field(default_factory=list)
    checklist: list[Item] = field(default_factory=list)
    flash_report: flash.FlashReport | None = None


class State:
    """What was done for this kit on this board; a JSON file written after every step (no keys in it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, Any] = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.data = {}
        self.data.setdefault("done", [])

    def done(self, step: str) -> bool:
        return step in self.data["done"]

    def mark(self, step: str, **extra: Any) -> None:
        if step not in self.data["done"]:
            self.data["done"].append(step)
        self.data.update(extra)
        self.save()

    def reset(self, **keep: Any) -> None:
        self.data = {"done": [], **keep}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


def _trusted(settings: Settings, opts: BuildOptions) -> list[bundle.Ed25519PublicKey]:
    return [signing.load_public_key(p) for p in (opts.trusted_keys or settings.trusted_keys)]


def locate_bundle(kit: Kit, settings: Settings, opts: BuildOptions) -> Path:
    if opts.bundle_dir is not None:
        return opts.bundle_dir
    if settings.bundle_dir is not None:
        return settings.bundle_dir / kit.app
    raise ConfigError(
        "no firmware bundle configured",
        hint="pass --bundle DIR (a bundle signed by the city), or set bundle_dir in the settings",
    )


def build(
    opts: BuildOptions,
    settings: Settings,
    *,
    confirm: Callable[[str], bool],
    passphrase: Callable[[], str],
    console: Console | None = None,
    list_ports: Callable[[], list[Any]] = ports.list_ports,
    new_passphrase: Callable[[], str] | None = None,
    events: Callable[[str, dict[str, Any]], None] | None = None,
) -> BuildResult:
    """Run (or resume) the kit build. Raises HavelError for anything that stops it before the check.

    ``passphrase`` opens an existing registry; ``new_passphrase`` (default: ``passphrase``) is asked when
    the registry is created, and should ask twice. ``events(kind, data)``, when given, is told the
    progress as it happens (for a page or another front end; no keys in it): ``step`` (``step``,
    ``status`` running/done/failed, ``detail``), ``flash`` (``done``, ``total`` bytes, ``path``),
    ``check_item`` (``name``, ``status``, ``advice``) and ``label`` (``paths``).
    """
    console = console or Console()
    t0 = time.monotonic()
    kit = load_kit(opts.kit)
    board_def = kit.board()
    state = State(opts.state_file or settings.state_dir / f"kit-{kit.name}.json")
    result = BuildResult(ok=False)
    say = console.print

    def emit(kind: str, **data: Any) -> None:
        if events is not None:
            events(kind, data)

    # 1. find the board
    cand = ports.choose_port(opts.port, list_ports(), in_dialout=ports.user_in_dialout())
    say(f"[bold]1/6 Board[/bold]: {cand.device} ({cand.chip})")
    result.steps["board"] = cand.device
    emit("step", step="board", status="done", detail=f"{cand.device} ({cand.chip})")
    emit("step", step="micropython", status="running", detail="")

    # 2. MicroPython present and recent enough?
    info = _board_info(cand.device)
    if micropython_install.needs_install(info.get("version") if info else None):
        what = "no MicroPython" if info is None else f"MicroPython {info.get('version')} (too old)"
        say(f"[bold]2/6 MicroPython[/bold]: the board has {what}.")
        _install_micropython(board_def, cand.device, opts, settings, confirm)
        info = _board_info(cand.device, wait=15.0)
        if info is None:
            raise TransportError(
                "MicroPython was written but does not answer",
                hint="press RESET on the board (or unplug and plug it in), then run this again",
            )
        result.steps["micropython"] = f"installed {info.get('version')}"
    else:
        assert info is not None
        result.steps["micropython"] = f"{info.get('version')} present"
        say(f"[bold]2/6 MicroPython[/bold]: {info.get('version')} present.")
    uid = str(info.get("unique_id") or "")
    if state.data.get("unique_id") not in (None, uid):
        say(f"A different board than last time is connected (was {state.data['unique_id']}); starting over.")
        state.reset(unique_id=uid, kit=kit.name)
    state.mark("board", unique_id=uid, kit=kit.name, port=cand.device)
    state.mark("micropython")
    emit("step", step="micropython", status="done", detail=result.steps["micropython"])

    link = BoardLink(cand.device)
    with link:
        # 3. flash
        bdir = locate_bundle(kit, settings, opts)
        manifest = bundle.verify_bundle(bdir, _trusted(settings, opts), allow_unsigned=opts.unsigned)
        if manifest.app != kit.app:
            raise ConfigError(f"the bundle in {bdir} is for app {manifest.app!r}, the kit needs {kit.app!r}")
        flash.check_radio(manifest, board_def)
        say(f"[bold]3/6 Flash[/bold]: {len(manifest.files)} files, {manifest.total_bytes} bytes")
        emit("step", step="flash", status="running", detail=f"{len(manifest.files)} files")
        with Progress(
            TextColumn("   {task.description}"),
            BarColumn(),
            DownloadColumn(),
            console=console,
            transient=True,
        ) as prog:
            task = prog.add_task("checking", total=None)

            def progress(done: int, total: int, path: str) -> None:
                prog.update(task, completed=done, total=total, description=path)
                emit("flash", done=done, total=total, path=path)

            rep = flash.flash_bundle(
                link, bdir, manifest, progress=progress, allow_downgrade=opts.allow_downgrade
            )
        flash.write_board_file(link, board_def)
        result.flash_report = rep
        result.steps["flash"] = f"{len(rep.copied)} copied, {len(rep.unchanged)} unchanged"
        say(f"   {result.steps['flash']} in {rep.seconds:.1f} s")
        state.mark("flash", bundle=str(bdir))
        emit("step", step="flash", status="done", detail=result.steps["flash"])

        # 4. check the wiring
        say("[bold]4/6 Wiring check[/bold]")
        emit("step", step="check", status="running", detail="")
        items = kitcheck.run_check(
            link,
            kit,
            board_def,
            on_item=lambda it: emit("check_item", name=it.name, status=it.status, advice=it.advice),
        )
        result.checklist = items
        print_checklist(items, console)
        if any(not it.passed for it in items):
            result.steps["check"] = "failed"
            emit("step", step="check", status="failed", detail="")
            say("Fix the parts marked ✘, then run the same command again: it continues at the check.")
            result.seconds = time.monotonic() - t0
            return result
        result.steps["check"] = "passed"
        state.mark("check")
        emit("step", step="check", status="done", detail="passed")
        emit("step", step="register", status="running", detail="")

        # 5. register
        reg = _open_registry(settings, passphrase, confirm, new_passphrase or passphrase)
        ident = reg.find_unique_id(uid)
        if ident is None:
            ident = _new_identity(kit, board_def.name, uid, reg, settings)
            reg.add(ident)
            reg.save()
        cfg = identity.board_config(ident, kit.settings, app=kit.app, board=board_def.name)
        link.call("fsutil", "hv_write_text", "config.json", json.dumps(cfg), idempotent=False)
        back = link.call("fsutil", "hv_read_text", "config.json")
        if back is None or json.loads(back) != cfg:
            raise TransportError("config.json did not read back as written", hint="run the command again")
        result.name, result.dev_eui = ident.name, identity.eui_hex(ident.dev_eui)
        result.steps["register"] = f"{ident.name} DevEUI {result.dev_eui}"
        say(f"[bold]5/6 Registered[/bold]: {ident.name}, DevEUI {result.dev_eui}")
        state.mark("register", name=ident.name, dev_eui=result.dev_eui)
        emit("step", step="register", status="done", detail=result.steps["register"])

    # 6. label
    paths = label.write_labels(
        settings.label_dir / ident.name, ident.name, ident.join_eui, ident.dev_eui, settings.profile_id
    )
    result.labels = [str(p) for p in paths]
    result.steps["label"] = ", ".join(p.name for p in paths)
    say(f"[bold]6/6 Label[/bold]: {paths[0]} (print it and stick it on the enclosure)")
    state.mark("label")
    emit("label", paths=result.labels, name=ident.name, dev_eui=result.dev_eui)
    emit("step", step="label", status="done", detail=result.steps["label"])
    result.ok = True
    result.seconds = time.monotonic() - t0
    print_summary(kit, result, console)
    return result


def _board_info(port: str, wait: float = 0.0) -> dict[str, Any] | None:
    """hv_info() from the board, or None when no MicroPython REPL answers (a short probe, retried
    until ``wait`` seconds have passed, e.g. while a freshly installed MicroPython boots)."""
    deadline = time.monotonic() + wait
    while True:
        probe = BoardLink(port, timeout=PROBE_TIMEOUT_S, retries=1)
        try:
            probe.open()
            info: dict[str, Any] = probe.call("fsutil", "hv_info")
            return info
        except TransportError as exc:
            if "cannot open" in str(exc):
                raise
            if time.monotonic() >= deadline:
                return None
            time.sleep(1.0)
        finally:
            probe.close()


def _install_micropython(
    board_def: Any, port: str, opts: BuildOptions, settings: Settings, confirm: Callable[[str], bool]
) -> None:
    mp = board_def.micropython
    variant = str(mp.get("board") or mp.get("variant") or board_def.name)
    img_path = opts.image or (
        Path(settings.micropython_images[variant]["path"]) if variant in settings.micropython_images else None
    )
    if img_path is None:
        raise ConfigError(
            f"no MicroPython image for {variant} is configured",
            hint="download the image for this board from micropython.org and pass --image FILE",
        )
    sha = opts.image_sha256 or settings.micropython_images.get(variant, {}).get("sha256") or None
    image = micropython_install.check_image(img_path, sha)
    if not confirm(f"Install MicroPython ({img_path.name}) on the board? This erases it."):
        raise HavelError("MicroPython is needed; stopped without changing the board")
    if board_def.family == "rp2":
        micropython_install.install_uf2(image)
    else:
        micropython_install.install_esp32(board_def, port, image, baud=opts.baud)


def _open_registry(
    settings: Settings,
    passphrase: Callable[[], str],
    confirm: Callable[[str], bool],
    new_passphrase: Callable[[], str],
) -> Registry:
    if settings.registry.exists():
        return Registry.open(settings.registry, settings.passphrase() or passphrase())
    if not confirm(f"Create a new encrypted registry at {settings.registry}?"):
        raise HavelError("no registry; stopped before registering")
    return Registry.create(settings.registry, settings.passphrase() or new_passphrase())


def _new_identity(kit: Kit, board: str, uid: str, reg: Registry, settings: Settings) -> identity.Identity:
    if settings.eui_block:
        dev_eui = identity.dev_eui_from_block(settings.eui_block, reg.used_euis())
    else:
        dev_eui = identity.dev_eui_from_unique_id(bytes.fromhex(uid))
    return identity.Identity(
        name=identity.node_name(kit.name, dev_eui),
        dev_eui=dev_eui,
        join_eui=settings.join_eui,
        app_key=identity.new_app_key(),
        kit=kit.name,
        board=board,
        codec=kit.codec,
        unique_id=uid,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def print_summary(kit: Kit, result: BuildResult, console: Console) -> None:
    t = Table(title=f"Kit '{kit.name}' built in {result.seconds:.1f} s")
    t.add_column("Step")
    t.add_column("Result")
    for step in STEPS:
        t.add_row(step, result.steps.get(step, "-"))
    console.print(t)
