"""The kit bench: ``havel kit build`` as a local web page for volunteers (``havel kit serve``).

The page picks a kit, shows the board found (or what to check), and runs :func:`kitbuild.build`, the same
function as the command, in a background thread; its progress events go to the page as server-sent
events. The two yes/no questions a build may ask (install MicroPython, create the registry) are asked in
the page. The registry passphrase is typed in the page and handed to the build: it is never put in an
event, a log line or an answer. One build at a time per board: a second volunteer gets a clear refusal.
Progress is kept in kitbuild's state file, so a new run (or a restarted server) continues where the last
one stopped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from havel.errors import HavelError
from havel.provisioning import kitbuild, ports
from havel.provisioning.kits import list_kits, load_kit
from havel.provisioning.settings import Settings
from havel.provisioning.web import wiring
from havel.web import HttpError, LocalApp, Request, Response

log = logging.getLogger("havel.provisioning.web")
ANSWER_TIMEOUT_S = 30 * 60.0  # an unanswered question counts as "no" after this long
STEP_TITLES = {
    "board": "Board",
    "micropython": "MicroPython",
    "flash": "Firmware",
    "check": "Wiring check",
    "register": "Registration",
    "label": "Label",
}


class _Question:
    def __init__(self, text: str) -> None:
        self.id = uuid.uuid4().hex
        self.text = text
        self.answered = threading.Event()
        self.yes = False


class KitBench:
    """The bench's state and API; ``self.app`` is the :class:`LocalApp` to serve."""

    def __init__(
        self,
        settings: Settings,
        base: kitbuild.BuildOptions | None = None,
        *,
        list_ports: Callable[[], list[Any]] = ports.list_ports,
    ) -> None:
        self.settings = settings
        self.base = base or kitbuild.BuildOptions(kit="")
        self.list_ports = list_ports
        self.app = LocalApp("Havel kit bench", "havel.provisioning.web")
        self._lock = threading.Lock()
        self._busy: dict[str, str] = {}  # board device -> kit being built on it
        self._questions: dict[str, _Question] = {}  # open questions by id (one per running build)
        self._labels: dict[str, Path] = {}  # node name -> its SVG label
        self.last: dict[str, Any] = {}
        r = self.app.route
        r("GET", "/api/kits")(self.kits)
        r("GET", "/api/kit")(self.kit)
        r("GET", "/api/wiring.svg")(self.wiring_svg)
        r("GET", "/api/board")(self.board)
        r("POST", "/api/build")(self.start)
        r("POST", "/api/answer")(self.answer)
        r("GET", "/api/label.svg")(self.label_svg)

    # ------------------------------------------------------------- reading
    def kits(self, req: Request) -> Any:
        out = []
        for name in list_kits():
            k = load_kit(name)
            parts = [str(s.get("part", s["id"])) for s in k.sensors]
            out.append({"name": name, "title": k.title, "board": k.board().title, "parts": parts})
        return out

    def _kit(self, req: Request) -> Any:
        name = req.arg("name")
        if name not in list_kits():
            raise HttpError(404, f"there is no kit called {name!r}", hint=f"kits: {', '.join(list_kits())}")
        return load_kit(name)

    def kit(self, req: Request) -> Any:
        k = self._kit(req)
        state = kitbuild.State(self.base.state_file or self.settings.state_dir / f"kit-{k.name}.json")
        return {
            "name": k.name,
            "title": k.title,
            "board": k.board().title,
            "wiring": wiring.table(k),
            "bom": k.bom,
            "done": list(state.data.get("done", [])),
            "registry_exists": self.settings.registry.exists(),
            "passphrase_needed": self.settings.passphrase() is None,
        }

    def wiring_svg(self, req: Request) -> Response:
        return Response(wiring.svg(self._kit(req)).encode(), "image/svg+xml")

    def board(self, req: Request) -> Any:
        found = self.list_ports()
        cands = ports.candidates(found)
        if cands:
            return {
                "found": [{"device": c.device, "chip": c.chip, "description": c.description} for c in cands],
                "advice": [],
                "busy": dict(self._busy),
            }
        return {
            "found": [],
            "advice": ports.nothing_found_advice(ports=found, in_dialout=ports.user_in_dialout()),
            "busy": {},
        }

    def label_svg(self, req: Request) -> Response:
        path = self._labels.get(req.arg("name"))
        if path is None or not path.is_file():
            raise HttpError(404, "no label made for that node on this bench yet")
        return Response(path.read_bytes(), "image/svg+xml")

    # ------------------------------------------------------------- building
    def start(self, req: Request) -> Any:
        body = req.body if isinstance(req.body, dict) else {}
        name = str(body.get("kit", ""))
        if name not in list_kits():
            raise HttpError(400, "pick a kit first")
        passphrase = body.get("passphrase")
        if passphrase is not None and not isinstance(passphrase, str):
            raise HttpError(400, "the passphrase must be text")
        try:
            cand = ports.choose_port(self.base.port, self.list_ports(), in_dialout=ports.user_in_dialout())
        except HavelError as e:
            raise HttpError(409, str(e.args[0]), hint=e.hint or "") from e
        with self._lock:
            if cand.device in self._busy:
                raise HttpError(
                    409,
                    f"another build ({self._busy[cand.device]} kit) is running on this board",
                    hint="one volunteer at a time per board: wait until it ends",
                )
            # asked twice for a new registry, as on the command line: a typo must not lock anyone out
            if not self.settings.registry.exists() and body.get("passphrase_again") != passphrase:
                raise HttpError(400, "the two passphrases differ: type the same one twice")
            self._busy[cand.device] = name
        self.app.events.clear()
        t = threading.Thread(
            target=self._run,
            args=(name, cand.device, passphrase or ""),
            name=f"kit-bench-{name}",
            daemon=True,
        )
        t.start()
        return {"started": True, "kit": name, "board": cand.device}

    def answer(self, req: Request) -> Any:
        body = req.body if isinstance(req.body, dict) else {}
        q = self._questions.get(str(body.get("id")))
        if q is None:
            raise HttpError(409, "that question is no longer open")
        q.yes = body.get("yes") is True
        q.answered.set()
        return {"ok": True}

    def _confirm(self, text: str) -> bool:
        q = _Question(text)
        self._questions[q.id] = q
        self.app.events.publish("question", {"id": q.id, "text": text})
        got = q.answered.wait(ANSWER_TIMEOUT_S)
        self._questions.pop(q.id, None)
        self.app.events.publish("answered", {"id": q.id, "yes": got and q.yes})
        return got and q.yes

    def _run(self, name: str, device: str, passphrase: str) -> None:
        ev = self.app.events
        k = load_kit(name)

        def on_event(kind: str, data: dict[str, Any]) -> None:
            if kind == "check_item" and data.get("status") == "fail":
                data = {**data, "wires": wiring.failing_wires(k, data["name"], data["advice"])}
            ev.publish(kind, data)

        def secret() -> str:
            if not passphrase:
                raise HavelError(
                    "the registry passphrase is needed", hint="type it in the page, then start again"
                )
            return passphrase

        opts = kitbuild.BuildOptions(**{**vars(self.base), "kit": name, "port": device})
        t0 = time.monotonic()
        ev.publish("started", {"kit": name, "board": device})
        ev.publish("step", {"step": "board", "status": "running", "detail": ""})
        try:
            res = kitbuild.build(
                opts,
                self.settings,
                confirm=self._confirm,
                passphrase=secret,
                new_passphrase=secret,
                console=Console(quiet=True),  # the page shows the events instead
                list_ports=self.list_ports,
                events=on_event,
            )
            if res.ok and res.labels:
                self._labels[res.name] = Path(res.labels[0])
            self.last = {"ok": res.ok, "seconds": res.seconds, "kit": name, "name": res.name}
            ev.publish(
                "finished",
                {"ok": res.ok, "seconds": round(res.seconds, 1), "name": res.name, "dev_eui": res.dev_eui},
            )
        except HavelError as e:
            self.last = {"ok": False, "seconds": time.monotonic() - t0, "kit": name, "error": str(e.args[0])}
            ev.publish("failed", {"error": str(e.args[0]), "hint": e.hint or ""})
        except Exception:  # a bug must end this build visibly, not the server
            log.exception("kit build failed")
            self.last = {"ok": False, "seconds": time.monotonic() - t0, "kit": name, "error": "internal"}
            ev.publish(
                "failed", {"error": "internal error", "hint": "see the terminal running havel kit serve"}
            )
        finally:
            with self._lock:
                self._busy.pop(device, None)
